//! hark's page: a voice-search box whose speech recognition runs on this
//! device, in the `hark-worker` Web Worker (see the `hark_web` library for
//! the protocol). This program is the UI only: microphone capture and
//! endpointing (cheap, 20 ms blocks), the search box and local catalogue
//! results, settings, consent and opt-in telemetry, and the service
//! worker's "reload to update" prompt.

mod client;
mod engines;
mod mic;
mod settings;
mod telemetry;

use std::cell::{Cell, RefCell};

use hark_data::catalogue::Catalogue;
use hark_recognizer::listen::{Heard, Listener, level_dbfs};
use hark_web::{Backend, BackendPreference, FromWorker, GpuProbe, ModelStatus, Recognized, ToWorker};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::engines::Choice;

const APP_VERSION: &str = env!("CARGO_PKG_VERSION");
/// A press on the microphone held at least this long is push-to-talk:
/// releasing it ends the utterance.
const HOLD_MS: f64 = 450.0;

thread_local! {
    static CAPTURE: RefCell<Option<mic::Capture>> = const { RefCell::new(None) };
    static LISTENER: RefCell<Option<Listener>> = const { RefCell::new(None) };
    static CATALOGUE: Catalogue = Catalogue::from_corpus(&hark_data::Corpus::load());
    /// The utterance being recognised: its id and when speech ended.
    static IN_FLIGHT: Cell<Option<(u32, f64)>> = const { Cell::new(None) };
    static NEXT_ID: Cell<u32> = const { Cell::new(1) };
    /// When the current press on the microphone began, if it started listening.
    static PRESS: Cell<Option<f64>> = const { Cell::new(None) };
    /// Bumped at every start and stop of listening: a microphone that opens
    /// after its session ended (slow `getUserMedia`) is closed at once.
    static SESSION: Cell<u32> = const { Cell::new(0) };
    static RELOAD_ON_CONTROLLER_CHANGE: Cell<bool> = const { Cell::new(false) };
}

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

/// `performance.now()`: milliseconds since navigation start.
fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map(|p| p.now()).unwrap_or_else(js_sys::Date::now)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum MicState {
    Idle,
    Listening,
    Recognizing,
}

/// A search that was run: local catalogue hits and the web-search link.
#[derive(Debug, Clone, PartialEq)]
struct Results {
    query: String,
    hits: Vec<(String, &'static str)>,
    web: String,
}

#[component]
fn App() -> impl IntoView {
    let (gpu_probe, set_gpu_probe) = signal(GpuProbe::Checking);
    let (choice, set_choice) = signal(Choice::default());
    let (gpu_error, set_gpu_error) = signal(None::<String>);
    let (gpu_worker_died, set_gpu_worker_died) = signal(false);
    let (model, set_model) = signal(ModelStatus::default());
    let (ready_ms, set_ready_ms) = signal(None::<f64>);
    let (query, set_query) = signal(String::new());
    let (history, set_history) = signal(Vec::<String>::new());
    let (results, set_results) = signal(None::<Results>);
    let (mic_state, set_mic_state) = signal(MicState::Idle);
    let (mic_error, set_mic_error) = signal(None::<String>);
    let (level, set_level) = signal(-100.0f32);
    let (heard, set_heard) = signal(None::<(Recognized, f64)>);
    let (consent, set_consent) = signal(settings::consent());
    let (shared, set_shared) = signal(0usize);
    let (telemetry_note, set_telemetry_note) = signal(None::<String>);
    let (search_url, set_search_url) = signal(settings::search_url());
    let (search_url_error, set_search_url_error) = signal(None::<String>);
    let (update_ready, set_update_ready) = signal(false);
    let online = || web_sys::window().map(|w| w.navigator().on_line()).unwrap_or(true);
    let (is_online, set_online) = signal(online());

    // Re-chooses the engine after a benchmark or a failure.
    let rechoose = move || {
        set_choice.update(|c| {
            c.forced = settings::backend() != BackendPreference::Auto;
            c.active = engines::choose(settings::backend(), c);
        })
    };
    let on_event = move |msg: FromWorker, samples: Option<Vec<f32>>| match msg {
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
        FromWorker::Unavailable { backend: Backend::Cpu, why } => set_model.set(ModelStatus {
            activity: hark_web::Activity::Failed { why: format!("the CPU engine cannot run: {why}") },
            ..Default::default()
        }),
        FromWorker::Transcript(r) => {
            let Some((id, ended)) = IN_FLIGHT.get() else { return };
            if id != r.id {
                return;
            }
            IN_FLIGHT.set(None);
            let latency = now_ms() - ended;
            if settings::consent() {
                telemetry::observe(&r, samples, latency);
            }
            set_query.set(r.text.clone());
            set_heard.set(Some((r, latency)));
            set_mic_state.set(MicState::Idle);
        }
        FromWorker::Failed { id, error } => {
            if IN_FLIGHT.get().is_some_and(|(i, _)| i == id) {
                IN_FLIGHT.set(None);
                set_mic_error.set(Some(error));
                set_mic_state.set(MicState::Idle);
            }
        }
    };
    let on_worker_error = move |program: Backend, why: String| match program {
        Backend::Webgpu => {
            set_gpu_error.set(Some(format!("the WebGPU worker stopped: {why}")));
            set_gpu_worker_died.set(true);
        }
        Backend::Cpu => set_model.set(ModelStatus {
            activity: hark_web::Activity::Failed { why: format!("the recognition worker stopped: {why}") },
            ..Default::default()
        }),
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
        if !gpu_worker_died.get() || engines::program() != Some(Backend::Webgpu) {
            return;
        }
        engines::start(Backend::Cpu, on_event, on_worker_error);
        if let Some(utterance) = engines::take_last() {
            if IN_FLIGHT.get().is_some_and(|(i, _)| i == utterance.0) {
                engines::recognize(Backend::Cpu, utterance);
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
        engines::start(program, on_event, on_worker_error);
    });
    register_service_worker(set_update_ready);
    watch_connectivity(set_online);

    // A finished utterance goes to the worker.
    let recognize = move |samples: Vec<f32>| {
        set_mic_state.set(MicState::Recognizing);
        let id = NEXT_ID.get();
        NEXT_ID.set(id + 1);
        IN_FLIGHT.set(Some((id, now_ms())));
        let backend = choice.get_untracked().active.unwrap_or(Backend::Cpu);
        engines::recognize(backend, (id, samples, settings::consent()));
    };

    // Closes the microphone; returns the listener with what it buffered.
    let halt_capture = move || {
        SESSION.set(SESSION.get().wrapping_add(1));
        if let Some(c) = CAPTURE.with(|c| c.borrow_mut().take()) {
            c.stop();
        }
        set_level.set(-100.0);
        LISTENER.with(|l| l.borrow_mut().take())
    };

    // Stop (button or end of a hold): recognise what was heard so far.
    let stop_listening = move || match halt_capture().and_then(Listener::finish) {
        Some(samples) => recognize(samples),
        None => set_mic_state.set(MicState::Idle),
    };

    let start_listening = move || {
        set_mic_error.set(None);
        set_mic_state.set(MicState::Listening);
        let session = SESSION.get().wrapping_add(1);
        SESSION.set(session);
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
                Ok(c) => {
                    // Stopped (or a hold released) while the microphone was opening.
                    if mic_state.get_untracked() != MicState::Listening || SESSION.get() != session {
                        c.stop();
                    } else if let Some(old) = CAPTURE.with(|slot| slot.borrow_mut().replace(c)) {
                        old.stop();
                    }
                }
                Err(e) if SESSION.get() == session => {
                    set_mic_error.set(Some(mic::explain(&e)));
                    set_mic_state.set(MicState::Idle);
                }
                // A session already over: nothing to tell.
                Err(_) => {}
            }
        });
    };

    let toggle = move || match mic_state.get_untracked() {
        MicState::Idle => start_listening(),
        MicState::Listening => stop_listening(),
        MicState::Recognizing => {}
    };
    // Tap to start (the endpointer stops), tap again to stop, or hold to
    // talk: a press held past HOLD_MS ends the utterance on release.
    let on_pointer_down = move |ev: leptos::ev::PointerEvent| {
        if ev.button() != 0 {
            return;
        }
        let starts = mic_state.get_untracked() == MicState::Idle;
        PRESS.set(starts.then(js_sys::Date::now));
        toggle();
    };
    let on_pointer_up = move |_: leptos::ev::PointerEvent| {
        if let Some(began) = PRESS.take() {
            if js_sys::Date::now() - began >= HOLD_MS && mic_state.get_untracked() == MicState::Listening {
                stop_listening();
            }
        }
    };
    // Keyboard (Enter/Space) and scripted clicks arrive as clicks with no
    // pointer position; pointer presses were handled above.
    let on_click = move |ev: leptos::ev::MouseEvent| {
        if ev.detail() == 0 {
            toggle();
        }
    };

    let run_search = move |q: String| {
        let q = q.trim().to_owned();
        if q.is_empty() {
            return set_results.set(None);
        }
        set_history.update(|h| {
            h.retain(|old| old != &q);
            h.insert(0, q.clone());
            h.truncate(10);
        });
        let hits = CATALOGUE.with(|c| c.search(&q, 8).into_iter().map(|e| (e.name.clone(), e.kind)).collect());
        let web = settings::web_search_link(&search_url.get_untracked(), &q);
        set_results.set(Some(Results { query: q.clone(), hits, web }));
        if consent.get_untracked() {
            telemetry::searched(&q);
            spawn_local(async move {
                match telemetry::flush(settings::install_id()).await {
                    Ok(n) => {
                        set_shared.update(|s| *s += n);
                        set_telemetry_note.set(None);
                    }
                    Err(e) => set_telemetry_note.set(Some(format!("{e}; will retry with the next search."))),
                }
            });
        }
    };
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        run_search(query.get_untracked());
    };

    let on_consent = move |ev: leptos::ev::Event| {
        let granted = event_target_checked(&ev);
        settings::set_consent(granted);
        if !granted {
            telemetry::forget();
        }
        set_consent.set(granted);
    };
    let on_search_url = move |ev: leptos::ev::Event| {
        let value = event_target_value(&ev);
        match settings::set_search_url(&value) {
            Ok(()) => {
                set_search_url.set(value.trim().to_owned());
                set_search_url_error.set(None);
            }
            Err(e) => set_search_url_error.set(Some(e)),
        }
    };

    view! {
        <main>
            <header>
                <h1>"hark"</h1>
                <p>"Private voice search. Speech is recognised on this device; nothing leaves the browser unless you opt in."</p>
            </header>
            <Show when=move || update_ready.get()>
                <div id="update-banner" role="status" class="banner">
                    "A new version of hark is ready. "
                    <button id="reload" type="button" on:click=move |_| activate_waiting_service_worker()>"Reload to update"</button>
                </div>
            </Show>
            <form class="search" role="search" on:submit=on_submit>
                <label for="query" class="visually-hidden">"Search query"</label>
                <input
                    id="query"
                    type="search"
                    placeholder="Search, or tap the microphone and speak"
                    autocomplete="off"
                    prop:value=query
                    on:input=move |ev| set_query.set(event_target_value(&ev))
                />
                <button
                    id="mic"
                    type="button"
                    class="mic"
                    data-state=move || match mic_state.get() { MicState::Idle => "idle", MicState::Listening => "listening", MicState::Recognizing => "recognizing" }
                    aria-pressed=move || (mic_state.get() == MicState::Listening).to_string()
                    aria-label=move || match mic_state.get() { MicState::Listening => "Stop listening", MicState::Recognizing => "Recognising", _ => "Speak your search (tap, or hold to talk)" }
                    title="Tap to speak, or hold to talk"
                    on:pointerdown=on_pointer_down
                    on:pointerup=on_pointer_up
                    on:click=on_click
                >
                    {move || match mic_state.get() { MicState::Idle => "🎤", MicState::Listening => "■", MicState::Recognizing => "…" }}
                </button>
                <button id="search" type="submit">"Search"</button>
            </form>
            <meter id="level" min="-100" max="0" low="-60" high="-10" aria-label="Microphone level" prop:value=move || level.get() as f64></meter>
            <Show when=move || mic_error.get().is_some()>
                <p id="mic-error" role="alert" class="error">{move || mic_error.get().unwrap_or_default()}</p>
            </Show>
            <Show when=move || heard.get().is_some()>
                <p id="transcript"
                    data-decode-ms=move || heard.get().map(|(_, ms)| format!("{ms:.0}")).unwrap_or_default()
                    data-compute-ms=move || heard.get().map(|(r, _)| format!("{:.1}", r.timings.total_ms())).unwrap_or_default()
                    data-timings=move || heard.get().map(|(r, _)| format!("{:.1} {:.1} {:.1}", r.timings.features_ms, r.timings.model_ms, r.timings.search_ms)).unwrap_or_default()
                    data-model=move || heard.get().map(|(r, _)| r.model_version).unwrap_or_default()
                    data-id=move || heard.get().map(|(r, _)| r.id.to_string()).unwrap_or_default()
                    data-backend=move || heard.get().map(|(r, _)| r.backend.name()).unwrap_or_default()>
                    "Heard: "
                    <For each=move || heard.get().map(|(r, _)| r.words).unwrap_or_default().into_iter().enumerate() key=|(i, w)| (*i, w.0.clone()) let((_, w))>
                        <span class=if w.1 < 0.6 { "word low" } else { "word" } title=format!("confidence {:.0} %", 100.0 * w.1)>{w.0.clone()}" "</span>
                    </For>
                    <span class="hint">"(edit the box to correct it)"</span>
                </p>
            </Show>
            <Show when=move || results.get().is_some()>
                <section id="results" aria-label="Search results">
                    <h2>{move || results.get().map(|r| format!("Results for “{}”", r.query)).unwrap_or_default()}</h2>
                    <Show when=move || !is_online.get()>
                        <p id="offline-note">"You are offline: these results come from hark's own catalogue on this device."</p>
                    </Show>
                    <ul id="local-results">
                        <For each=move || results.get().map(|r| r.hits).unwrap_or_default() key=|h| h.0.clone() let(h)>
                            <li><span class="kind">{h.1}</span>" "{h.0}</li>
                        </For>
                    </ul>
                    <Show when=move || results.get().is_some_and(|r| r.hits.is_empty())>
                        <p class="muted">"Nothing in hark's catalogue matches."</p>
                    </Show>
                    <Show when=move || is_online.get()>
                        <p><a id="web-search" target="_blank" rel="noopener noreferrer" href=move || results.get().map(|r| r.web).unwrap_or_default()>
                            {move || results.get().map(|r| format!("Search the web for “{}”", r.query)).unwrap_or_default()}
                        </a></p>
                    </Show>
                </section>
            </Show>
            <dl class="status" aria-live="polite">
                <dt>"Recognition engine"</dt>
                <dd id="webgpu-status" data-state=move || gpu_probe.get().state()>{move || gpu_probe.get().describe()}</dd>
                <dd id="engine" data-backend=move || choice.get().active.map(|b| b.name()).unwrap_or_default()>{move || choice.get().describe()}</dd>
                <dt>"Speech model"</dt>
                <dd id="model-status" data-state=move || model.get().state() data-ready-ms=move || ready_ms.get().map(|ms| format!("{ms:.0}")).unwrap_or_default()>{move || model.get().describe()}</dd>
                <Show when=move || model.get().progress().is_some()>
                    <dd><progress id="model-progress" max="1" aria-label="Model download" prop:value=move || model.get().progress().unwrap_or(0.0)></progress></dd>
                </Show>
            </dl>
            <Show when=move || model.get().active.is_some()>
                <details id="about-model">
                    <summary>{move || format!("About model {}", model.get().active.map(|a| a.version).unwrap_or_default())}</summary>
                    <table>
                        <For each=move || model.get().active.map(|a| a.metrics.into_iter().collect::<Vec<_>>()).unwrap_or_default() key=|m| m.0.clone() let(m)>
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
                            <li><button type="button" class="link" on:click={ let q = q.clone(); move |_| { set_query.set(q.clone()); run_search(q.clone()) } }>{q.clone()}</button></li>
                        </For>
                    </ul>
                </section>
            </Show>
            <details id="settings">
                <summary>"Settings and privacy"</summary>
                <label class="check">
                    <input id="consent" type="checkbox" prop:checked=consent on:change=on_consent />
                    " Share prediction logs (what was heard, its confidence, your corrections and the audio features — never the audio itself) to help improve hark. Off unless you turn it on."
                </label>
                <p id="telemetry-status" data-shared=move || shared.get().to_string()>
                    {move || if consent.get() { format!("Sharing is on. {} logs sent this visit.", shared.get()) } else { "Sharing is off: nothing leaves this device.".into() }}
                    {move || telemetry_note.get().map(|n| format!(" {n}")).unwrap_or_default()}
                </p>
                <label for="search-url">"Web search address ({query} is replaced by your words)"</label>
                <input id="search-url" type="url" prop:value=search_url on:change=on_search_url />
                <Show when=move || search_url_error.get().is_some()>
                    <p class="error" role="alert">{move || search_url_error.get().unwrap_or_default()}</p>
                </Show>
                <p><button id="check-updates" type="button" on:click=move |_| engines::send(ToWorker::CheckForUpdates)>"Check for a new model now"</button></p>
            </details>
            <footer>"hark " {APP_VERSION} " — open, on-device speech recognition."</footer>
        </main>
    }
}

/// Keeps `online` current; coming back online also checks for model updates.
fn watch_connectivity(set_online: WriteSignal<bool>) {
    let Some(window) = web_sys::window() else { return };
    let update = Closure::<dyn FnMut(web_sys::Event)>::new(move |ev: web_sys::Event| {
        let up = ev.type_() == "online";
        set_online.set(up);
        if up {
            engines::send(ToWorker::CheckForUpdates);
        }
    });
    for name in ["online", "offline"] {
        let _ = window.add_event_listener_with_callback(name, update.as_ref().unchecked_ref());
    }
    update.forget();
}

/// Registers `sw.js` (app shell + current model offline) and raises the
/// "reload to update" prompt when a new version of the app is waiting.
fn register_service_worker(set_update_ready: WriteSignal<bool>) {
    let Some(window) = web_sys::window() else { return };
    let container = window.navigator().service_worker();
    // `serviceWorker` is undefined on insecure origins; never fail the page.
    if JsValue::from(container.clone()).is_undefined() {
        return;
    }
    let on_controller_change = Closure::<dyn FnMut()>::new(move || {
        if RELOAD_ON_CONTROLLER_CHANGE.get() {
            if let Some(w) = web_sys::window() {
                let _ = w.location().reload();
            }
        }
    });
    container.set_oncontrollerchange(Some(on_controller_change.as_ref().unchecked_ref()));
    on_controller_change.forget();
    let promise = container.register("sw.js");
    spawn_local(async move {
        let registration = match wasm_bindgen_futures::JsFuture::from(promise).await {
            Ok(r) => r.unchecked_into::<web_sys::ServiceWorkerRegistration>(),
            Err(e) => return leptos::logging::warn!("service worker registration failed: {e:?}"),
        };
        let has_controller =
            move || web_sys::window().and_then(|w| w.navigator().service_worker().controller()).is_some();
        // An update found on an earlier visit may already be waiting.
        if registration.waiting().is_some() && has_controller() {
            set_update_ready.set(true);
        }
        let watched = registration.clone();
        let on_update_found = Closure::<dyn FnMut()>::new(move || {
            let Some(installing) = watched.installing() else { return };
            let worker = installing.clone();
            let on_state = Closure::<dyn FnMut()>::new(move || {
                // Installed while a previous version controls the page: an update.
                if worker.state() == web_sys::ServiceWorkerState::Installed && has_controller() {
                    set_update_ready.set(true);
                }
            });
            installing.set_onstatechange(Some(on_state.as_ref().unchecked_ref()));
            on_state.forget();
        });
        registration.set_onupdatefound(Some(on_update_found.as_ref().unchecked_ref()));
        on_update_found.forget();
    });
}

/// The person agreed: the waiting service worker takes over, then the page reloads.
fn activate_waiting_service_worker() {
    let Some(window) = web_sys::window() else { return };
    let container = window.navigator().service_worker();
    spawn_local(async move {
        let Ok(registration) = wasm_bindgen_futures::JsFuture::from(container.get_registration()).await else {
            return;
        };
        let registration: web_sys::ServiceWorkerRegistration = registration.unchecked_into();
        match registration.waiting() {
            Some(waiting) => {
                RELOAD_ON_CONTROLLER_CHANGE.set(true);
                let _ = waiting.post_message(&"skip-waiting".into());
            }
            None => {
                if let Some(w) = web_sys::window() {
                    let _ = w.location().reload();
                }
            }
        }
    });
}
