//! hark's page: a voice-search box whose speech recognition runs on this
//! device, in the `hark-worker` Web Worker (see the `hark_web` library for
//! the protocol). This program is the UI only: microphone capture and
//! endpointing (cheap, 20 ms blocks), the search box and local catalogue
//! results, settings, consent and opt-in telemetry, and the service
//! worker's "reload to update" prompt.
//!
//! State has one owner each, made by [`App`] and handed to the components
//! ([`ui`]) that show it: the engine ([`engines::Engines`]), the microphone
//! and the utterance in flight ([`session::Mic`]), consent and the unsent
//! logs ([`telemetry::Telemetry`]), app updates ([`pwa::Updates`]).

mod client;
mod durable;
mod engines;
mod mic;
mod pwa;
mod session;
mod settings;
mod telemetry;
mod ui;

use hark_data::catalogue::Catalogue;
use hark_web::choice::{self, Choice};
use hark_web::{Activity, Backend, BackendPreference, FromWorker, GpuProbe, ModelStatus, Recognized, ToWorker};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::engines::{Engines, Utterance};
use crate::session::Mic;
use crate::telemetry::Telemetry;
use crate::ui::*;

const APP_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Searches kept in "Recent searches".
const HISTORY: usize = 10;
/// Catalogue hits shown per search.
const HITS: usize = 8;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

/// `performance.now()`: milliseconds since navigation start.
fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map(|p| p.now()).unwrap_or_else(js_sys::Date::now)
}

#[component]
fn App() -> impl IntoView {
    let engines = Engines::new();
    let mic = Mic::new();
    let telemetry = Telemetry::new();
    let updates = pwa::Updates::register();
    let online = pwa::online(move || engines.send(ToWorker::CheckForUpdates));
    let catalogue = StoredValue::new_local(Catalogue::from_corpus(&hark_data::Corpus::entity_lists()));

    let (gpu_probe, set_gpu_probe) = signal(GpuProbe::Checking);
    let (choice, set_choice) = signal(Choice::default());
    let (gpu_error, set_gpu_error) = signal(None::<String>);
    let (gpu_worker_died, set_gpu_worker_died) = signal(false);
    let (model, set_model) = signal(ModelStatus::default());
    let (ready_ms, set_ready_ms) = signal(None::<f64>);
    let (query, set_query) = signal(String::new());
    let (history, set_history) = signal(Vec::<String>::new());
    let (results, set_results) = signal(None::<SearchResults>);
    let (heard, set_heard) = signal(None::<(Recognized, f64)>);
    let search_url = RwSignal::new(settings::search_url());

    // Re-chooses the engine after a benchmark or a failure.
    let rechoose = move || {
        set_choice.update(|c| {
            c.forced = settings::backend() != BackendPreference::Auto;
            c.active = choice::choose(settings::backend(), c);
        })
    };
    let failed = |why: String| ModelStatus { activity: Activity::Failed { why }, ..Default::default() };
    let on_event = move |msg: FromWorker, features: Option<Vec<f32>>| match msg {
        FromWorker::Hello => {}
        FromWorker::Model(m) => {
            // Cold load: navigation start → first model ready.
            if m.active.is_some() && ready_ms.get_untracked().is_none() {
                set_ready_ms.set(Some(now_ms()));
                // The CPU copy is ready first; benchmarks may move to WebGPU.
                if choice.get_untracked().active.is_none() {
                    set_choice.update(|c| c.active = Some(Backend::Cpu));
                }
            }
            set_model.set(m)
        }
        FromWorker::Benchmark { backend, ms } => {
            set_choice.update(|c| match backend {
                Backend::Cpu => c.cpu_ms = Some(ms),
                Backend::Webgpu => c.gpu_ms = Some(ms),
            });
            rechoose();
        }
        FromWorker::Unavailable { backend: Backend::Webgpu, why } => set_gpu_error.set(Some(why)),
        FromWorker::Unavailable { backend: Backend::Cpu, why } => {
            set_model.set(failed(format!("the CPU engine cannot run: {why}")))
        }
        FromWorker::Transcript(r) => {
            let Some(latency) = mic.finish_utterance(r.id, now_ms()) else { return };
            telemetry.observe(&r, features, latency);
            set_query.set(r.text.clone());
            set_heard.set(Some((r, latency)));
        }
        FromWorker::Failed { id, error, backend, model_version, audio_s } => {
            if mic.fail_utterance(id, error.clone()) {
                let backend = backend.or(engines.program()).unwrap_or(Backend::Cpu);
                telemetry.failed(&error, backend, model_version.as_deref(), audio_s);
            }
        }
    };
    let on_worker_error = move |program: Backend, why: String| match program {
        Backend::Webgpu => {
            set_gpu_error.set(Some(format!("the WebGPU worker stopped: {why}")));
            set_gpu_worker_died.set(true);
        }
        Backend::Cpu => set_model.set(failed(format!("the recognition worker stopped: {why}"))),
    };
    // WebGPU cannot run (no device, device lost): the CPU from now on.
    Effect::new(move |_| {
        let Some(why) = gpu_error.get() else { return };
        set_choice.update(|c| c.gpu_failure = Some(why));
        rechoose();
    });
    // The WebGPU worker itself died: the CPU worker takes over, with the
    // utterance in flight.
    Effect::new(move |_| {
        if !gpu_worker_died.get() || engines.program() != Some(Backend::Webgpu) {
            return;
        }
        engines.start(Backend::Cpu, on_event, on_worker_error);
        if let Some(utterance) = engines.take_last() {
            if mic.in_flight() == Some(utterance.id) {
                engines.recognize(Backend::Cpu, utterance);
            }
        }
    });
    // One worker: the one with WebGPU where the browser offers an adapter
    // (unless the person asked for the CPU), else the CPU-only one.
    spawn_local(async move {
        let probe = match settings::backend() {
            BackendPreference::Cpu => GpuProbe::Absent { why: "the CPU was asked for (?backend=cpu)".into() },
            _ => hark_web::gpu::probe().await,
        };
        let program = if matches!(probe, GpuProbe::Found { .. }) { Backend::Webgpu } else { Backend::Cpu };
        set_gpu_probe.set(probe);
        engines.start(program, on_event, on_worker_error);
    });

    // A finished utterance goes to the worker.
    let recognize = move |samples: Vec<f32>| {
        let Some(id) = mic.begin_utterance(now_ms()) else { return };
        let backend = choice.get_untracked().active.unwrap_or(Backend::Cpu);
        telemetry.utterance(id, &samples);
        let share = telemetry.level_untracked();
        engines.recognize(backend, Utterance { id, samples, share, device_rate: mic.device_rate() });
    };

    let run_search = move |q: String| {
        let q = q.trim().to_owned();
        if q.is_empty() {
            return set_results.set(None);
        }
        set_history.update(|h| {
            h.retain(|old| old != &q);
            h.insert(0, q.clone());
            h.truncate(HISTORY);
        });
        let hits = catalogue
            .try_with_value(|c| c.search(&q, HITS).into_iter().map(|e| (e.name.clone(), e.kind)).collect())
            .unwrap_or_default();
        let web = settings::web_search_link(&search_url.get_untracked(), &q);
        set_results.set(Some(SearchResults { query: q.clone(), hits, web }));
        telemetry.searched(&q);
    };
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        run_search(query.get_untracked());
    };
    let pick = move |q: String| {
        set_query.set(q.clone());
        run_search(q);
    };

    view! {
        <main>
            <header>
                <h1>"hark"</h1>
                <p>"Private voice search. Speech is recognised on this device; nothing leaves the browser unless you opt in."</p>
            </header>
            <UpdateBanner updates />
            <form class="search" role="search" on:submit=on_submit>
                <label for="query" class="visually-hidden">"Search query"</label>
                <input
                    id="query"
                    type="search"
                    placeholder="Search, or tap the mic to speak"
                    autocomplete="off"
                    prop:value=query
                    on:input=move |ev| set_query.set(event_target_value(&ev))
                />
                <MicButton mic on_utterance=recognize />
                <button id="search" type="submit">"Search"</button>
            </form>
            <LevelMeter mic />
            <MicError mic />
            <Transcript heard />
            <Results results online />
            <EngineStatus gpu_probe choice model ready_ms />
            <AboutModel model />
            <History history on_pick=pick />
            <SettingsPanel telemetry search_url engines />
            <footer>"hark " {APP_VERSION} " — open, on-device speech recognition."</footer>
        </main>
    }
}
