//! hark's browser app: a voice-search page whose recognition runs on the
//! device (WebGPU when the browser has an adapter, else CPU WebAssembly).
//!
//! Only this crate touches `web-sys`. It reads the model manifest through
//! `hark-registry`, the same schema the publishing side writes. Entry point:
//! [`App`], mounted by `main`.

mod gpu;

use hark_registry::{Channel, Manifest, Version};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::gpu::GpuProbe;

/// This app's version, compared with each model's `min_app_version`.
const APP_VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
    register_service_worker();
}

/// What the page knows about the published models.
#[derive(Debug, Clone, PartialEq)]
enum ModelStatus {
    Loading,
    NonePublished,
    Available { version: String },
    Failed(String),
}

#[component]
fn App() -> impl IntoView {
    let (gpu, set_gpu) = signal(GpuProbe::Checking);
    let (model, set_model) = signal(ModelStatus::Loading);
    let (query, set_query) = signal(String::new());
    let (history, set_history) = signal(Vec::<String>::new());

    spawn_local(async move { set_gpu.set(gpu::probe().await) });
    spawn_local(async move { set_model.set(fetch_model_status().await) });

    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let q = query.get_untracked().trim().to_owned();
        if !q.is_empty() {
            set_history.update(|h| {
                h.retain(|old| old != &q);
                h.insert(0, q);
                h.truncate(10);
            });
        }
    };

    view! {
        <main>
            <header>
                <h1>"hark"</h1>
                <p>"Private voice search. Speech is recognised on this device; nothing leaves the browser unless you opt in."</p>
            </header>
            <form class="search" role="search" on:submit=on_submit>
                <label for="query" class="visually-hidden">"Search query"</label>
                <input
                    id="query"
                    type="search"
                    placeholder="Search, or speak once a model is published"
                    autocomplete="off"
                    prop:value=query
                    on:input=move |ev| set_query.set(event_target_value(&ev))
                />
                <button type="submit">"Search"</button>
            </form>
            <dl class="status" aria-live="polite">
                <dt>"Recognition engine"</dt>
                <dd id="webgpu-status" data-state=move || gpu.get().state()>{move || gpu.get().describe()}</dd>
                <dt>"Speech model"</dt>
                <dd id="model-status" data-state=move || model_state(&model.get())>{move || describe_model(&model.get())}</dd>
            </dl>
            <Show when=move || !history.get().is_empty()>
                <section aria-label="Recent searches">
                    <h2>"Recent searches"</h2>
                    <ul id="history">
                        <For each=move || history.get() key=|q| q.clone() let(q)>
                            <li>{q}</li>
                        </For>
                    </ul>
                </section>
            </Show>
            <footer>"hark " {APP_VERSION} " — open, on-device speech recognition."</footer>
        </main>
    }
}

fn model_state(status: &ModelStatus) -> &'static str {
    match status {
        ModelStatus::Loading => "loading",
        ModelStatus::NonePublished => "none",
        ModelStatus::Available { .. } => "available",
        ModelStatus::Failed(_) => "failed",
    }
}

fn describe_model(status: &ModelStatus) -> String {
    match status {
        ModelStatus::Loading => "Checking for published models…".into(),
        ModelStatus::NonePublished => "No model has been published yet; typed search works.".into(),
        ModelStatus::Available { version } => format!("Model {version} is published."),
        ModelStatus::Failed(why) => format!("Could not read the model list: {why}"),
    }
}

async fn fetch_model_status() -> ModelStatus {
    let response = match gloo_net::http::Request::get("models/manifest.json").send().await {
        Ok(r) if r.ok() => r,
        Ok(r) => return ModelStatus::Failed(format!("HTTP {} for models/manifest.json", r.status())),
        Err(e) => return ModelStatus::Failed(e.to_string()),
    };
    let text = match response.text().await {
        Ok(t) => t,
        Err(e) => return ModelStatus::Failed(e.to_string()),
    };
    let manifest = match Manifest::parse(&text) {
        Ok(m) => m,
        Err(e) => return ModelStatus::Failed(e.to_string()),
    };
    let app: Version = APP_VERSION.parse().unwrap_or_default();
    match manifest.choose(app, Channel::Stable, 0) {
        Some(entry) => ModelStatus::Available { version: entry.version.to_string() },
        None => ModelStatus::NonePublished,
    }
}

/// Registers `sw.js` so the app shell works offline after the first visit.
fn register_service_worker() {
    let Some(window) = web_sys::window() else { return };
    let container = window.navigator().service_worker();
    // `serviceWorker` is undefined on insecure origins; never fail the page.
    if container.is_undefined() {
        return;
    }
    let promise = container.register("sw.js");
    spawn_local(async move {
        if let Err(e) = wasm_bindgen_futures::JsFuture::from(promise).await {
            leptos::logging::warn!("service worker registration failed: {e:?}");
        }
    });
}
