//! hark's browser app: a voice-search page whose recognition runs on the
//! device (WebGPU when the browser has an adapter, else CPU WebAssembly).
//!
//! Only this crate touches `web-sys`. It reads the model manifest through
//! `hark-registry`, the same schema the publishing side writes. Entry point:
//! [`App`], mounted by `main`.

mod engine;
mod gpu;
mod mic;

use std::cell::RefCell;

use hark_recognizer::Recognizer;
use hark_recognizer::listen::{Heard, Listener, level_dbfs};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::engine::APP_VERSION;
use crate::gpu::GpuProbe;

thread_local! {
    /// The active recognizer (swapped whole when a new model is loaded).
    static ENGINE: RefCell<Option<Recognizer>> = const { RefCell::new(None) };
    static CAPTURE: RefCell<Option<mic::Capture>> = const { RefCell::new(None) };
    static LISTENER: RefCell<Option<Listener>> = const { RefCell::new(None) };
}

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
    register_service_worker();
}

/// What the page knows about the speech model.
#[derive(Debug, Clone, PartialEq)]
enum ModelStatus {
    Loading,
    NonePublished,
    Downloading {
        version: String,
    },
    /// `refused`: newer models whose download failed its check ("" if none).
    Ready {
        version: String,
        metrics: Vec<(String, f64)>,
        refused: String,
    },
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum MicState {
    Idle,
    Listening,
    Recognizing,
}

#[component]
fn App() -> impl IntoView {
    let (gpu, set_gpu) = signal(GpuProbe::Checking);
    let (model, set_model) = signal(ModelStatus::Loading);
    let (query, set_query) = signal(String::new());
    let (history, set_history) = signal(Vec::<String>::new());
    let (mic_state, set_mic_state) = signal(MicState::Idle);
    let (mic_error, set_mic_error) = signal(None::<String>);
    let (level, set_level) = signal(-100.0f32);
    let (words, set_words) = signal(Vec::<(String, f32)>::new());
    let (decode_ms, set_decode_ms) = signal(None::<f64>);

    spawn_local(async move { set_gpu.set(gpu::probe().await) });
    spawn_local(async move {
        let manifest = match engine::fetch_manifest().await {
            Ok(m) => m,
            Err(e) => return set_model.set(ModelStatus::Failed(e)),
        };
        let candidates = engine::candidates(&manifest);
        if candidates.is_empty() {
            return set_model.set(ModelStatus::NonePublished);
        }
        let mut refused: Vec<String> = Vec::new();
        for entry in candidates {
            let version = entry.version.to_string();
            set_model.set(ModelStatus::Downloading { version: version.clone() });
            match engine::load(&entry).await {
                Ok(recognizer) => {
                    ENGINE.with(|e| *e.borrow_mut() = Some(recognizer));
                    let metrics = entry.metrics.iter().map(|(k, v)| (k.clone(), *v)).collect();
                    return set_model.set(ModelStatus::Ready { version, metrics, refused: refused.join("; ") });
                }
                // Fall back to the previous model rather than none.
                Err(e) => refused.push(format!("model {version} was not loaded: {e}")),
            }
        }
        set_model.set(ModelStatus::Failed(refused.join("; ")));
    });

    // Runs the recognizer on a finished utterance and fills the search box.
    let recognize = move |samples: Vec<f32>| {
        set_mic_state.set(MicState::Recognizing);
        spawn_local(async move {
            let started = js_sys::Date::now();
            let taken = ENGINE.with(|e| e.borrow_mut().take());
            let Some(mut recognizer) = taken else {
                set_mic_error.set(Some("No speech model is loaded yet; type your search.".into()));
                set_mic_state.set(MicState::Idle);
                return;
            };
            let (features, frames) = recognizer.features(&samples);
            let result = recognizer.log_probs_async(&features, frames).await;
            let transcript = result.map(|lp| recognizer.decode(&lp));
            ENGINE.with(|e| {
                // A model swapped in meanwhile wins.
                let mut slot = e.borrow_mut();
                if slot.is_none() {
                    *slot = Some(recognizer);
                }
            });
            match transcript {
                Ok(t) => {
                    set_words.set(t.words.iter().map(|w| (w.text.clone(), w.confidence)).collect());
                    set_query.set(t.text);
                    set_decode_ms.set(Some(js_sys::Date::now() - started));
                }
                Err(e) => set_mic_error.set(Some(format!("Recognition failed: {e}"))),
            }
            set_mic_state.set(MicState::Idle);
        });
    };

    // Closes the microphone; returns the listener with what it buffered.
    let halt_capture = move || {
        if let Some(c) = CAPTURE.with(|c| c.borrow_mut().take()) {
            c.stop();
        }
        set_level.set(-100.0);
        LISTENER.with(|l| l.borrow_mut().take())
    };

    // The stop button: recognise what was heard so far.
    let stop_listening = move || match halt_capture().and_then(Listener::finish) {
        Some(samples) => recognize(samples),
        None => set_mic_state.set(MicState::Idle),
    };

    let start_listening = move || {
        set_mic_error.set(None);
        set_mic_state.set(MicState::Listening);
        spawn_local(async move {
            let on_block = move |rate: u32, samples: Vec<f32>| {
                set_level.set(level_dbfs(&samples));
                let heard = LISTENER.with(|l| {
                    let mut l = l.borrow_mut();
                    if l.is_none() {
                        *l = Listener::new(rate).ok();
                    }
                    l.as_mut().map(|l| l.push(&samples)).unwrap_or_default()
                });
                for h in heard {
                    if let Heard::Utterance(u) = h {
                        halt_capture();
                        recognize(u);
                    }
                }
            };
            match mic::Capture::start(on_block).await {
                Ok(c) => CAPTURE.with(|slot| *slot.borrow_mut() = Some(c)),
                Err(e) => {
                    set_mic_error.set(Some(mic::explain(&e)));
                    set_mic_state.set(MicState::Idle);
                }
            }
        });
    };

    let on_mic = move |_| match mic_state.get_untracked() {
        MicState::Idle => start_listening(),
        MicState::Listening => stop_listening(),
        MicState::Recognizing => {}
    };

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
                    placeholder="Search, or tap the microphone and speak"
                    autocomplete="off"
                    prop:value=query
                    on:input=move |ev| {
                        set_words.set(Vec::new());
                        set_query.set(event_target_value(&ev))
                    }
                />
                <button
                    id="mic"
                    type="button"
                    class="mic"
                    data-state=move || match mic_state.get() { MicState::Idle => "idle", MicState::Listening => "listening", MicState::Recognizing => "recognizing" }
                    aria-pressed=move || (mic_state.get() == MicState::Listening).to_string()
                    aria-label=move || match mic_state.get() { MicState::Listening => "Stop listening", _ => "Speak your search" }
                    on:click=on_mic
                >
                    {move || match mic_state.get() { MicState::Idle => "🎤", MicState::Listening => "■", MicState::Recognizing => "…" }}
                </button>
                <button type="submit">"Search"</button>
            </form>
            <meter id="level" min="-100" max="0" low="-60" high="-10" aria-label="Microphone level" prop:value=move || level.get() as f64></meter>
            <Show when=move || mic_error.get().is_some()>
                <p id="mic-error" role="alert" class="error">{move || mic_error.get().unwrap_or_default()}</p>
            </Show>
            <Show when=move || !words.get().is_empty()>
                <p id="transcript" data-decode-ms=move || decode_ms.get().map(|m| format!("{m:.0}")).unwrap_or_default()>
                    "Heard: "
                    <For each=move || words.get().into_iter().enumerate() key=|(i, w)| (*i, w.0.clone()) let((_, w))>
                        <span class=if w.1 < 0.6 { "word low" } else { "word" } title=format!("confidence {:.0} %", 100.0 * w.1)>{w.0.clone()}" "</span>
                    </For>
                </p>
            </Show>
            <dl class="status" aria-live="polite">
                <dt>"Recognition engine"</dt>
                <dd id="webgpu-status" data-state=move || gpu.get().state()>{move || gpu.get().describe()}</dd>
                <dt>"Speech model"</dt>
                <dd id="model-status" data-state=move || model_state(&model.get())>{move || describe_model(&model.get())}</dd>
            </dl>
            <Show when=move || matches!(model.get(), ModelStatus::Ready { .. })>
                <details id="about-model">
                    <summary>"About this model"</summary>
                    <table>
                        <For each=move || match model.get() { ModelStatus::Ready { metrics, .. } => metrics, _ => Vec::new() } key=|m| m.0.clone() let(m)>
                            <tr><td>{m.0.replace('_', " ")}</td><td>{format!("{:.1} %", 100.0 * m.1)}</td></tr>
                        </For>
                    </table>
                </details>
            </Show>
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
        ModelStatus::Downloading { .. } => "downloading",
        ModelStatus::Ready { .. } => "ready",
        ModelStatus::Failed(_) => "failed",
    }
}

fn describe_model(status: &ModelStatus) -> String {
    match status {
        ModelStatus::Loading => "Checking for published models…".into(),
        ModelStatus::NonePublished => "No model has been published yet; typed search works.".into(),
        ModelStatus::Downloading { version } => format!("Downloading model {version}…"),
        ModelStatus::Ready { version, refused, .. } if refused.is_empty() => {
            format!("Model {version} is ready (CPU, WebAssembly).")
        }
        ModelStatus::Ready { version, refused, .. } => {
            format!("Model {version} is ready (CPU, WebAssembly). Refused: {refused}")
        }
        ModelStatus::Failed(why) => format!("Speech model unavailable: {why}"),
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
