//! The installable app: the service worker (`sw.js`: app shell and the
//! current model offline), its "reload to update" prompt, and whether the
//! browser is online (coming back online also checks for model updates).

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// The page's view of app updates.
#[derive(Clone, Copy)]
pub struct Updates {
    /// A new version of the app is installed and waiting.
    pub ready: RwSignal<bool>,
    /// The person asked to update: reload once the new version controls the page.
    reload_on_controller_change: StoredValue<bool>,
}

impl Updates {
    /// Registers `sw.js` and watches for a new version of the app.
    pub fn register() -> Self {
        let updates = Self { ready: RwSignal::new(false), reload_on_controller_change: StoredValue::new(false) };
        updates.watch();
        updates
    }

    fn watch(self) {
        let Some(window) = web_sys::window() else { return };
        let container = window.navigator().service_worker();
        // `serviceWorker` is undefined on insecure origins; never fail the page.
        if JsValue::from(container.clone()).is_undefined() {
            return;
        }
        let on_controller_change = Closure::<dyn FnMut()>::new(move || {
            if self.reload_on_controller_change.try_get_value().unwrap_or(false) {
                reload();
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
                self.ready.set(true);
            }
            let watched = registration.clone();
            let on_update_found = Closure::<dyn FnMut()>::new(move || {
                let Some(installing) = watched.installing() else { return };
                let worker = installing.clone();
                let on_state = Closure::<dyn FnMut()>::new(move || {
                    // Installed while a previous version controls the page: an update.
                    if worker.state() == web_sys::ServiceWorkerState::Installed && has_controller() {
                        self.ready.set(true);
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
    pub fn activate(self) {
        let Some(window) = web_sys::window() else { return };
        let container = window.navigator().service_worker();
        spawn_local(async move {
            let Ok(registration) = wasm_bindgen_futures::JsFuture::from(container.get_registration()).await else {
                return;
            };
            let registration: web_sys::ServiceWorkerRegistration = registration.unchecked_into();
            match registration.waiting() {
                Some(waiting) => {
                    self.reload_on_controller_change.set_value(true);
                    let _ = waiting.post_message(&"skip-waiting".into());
                }
                None => reload(),
            }
        });
    }
}

fn reload() {
    if let Some(w) = web_sys::window() {
        let _ = w.location().reload();
    }
}

/// Whether the browser is online, kept current; `on_back_online` runs each
/// time it comes back.
pub fn online(on_back_online: impl Fn() + 'static) -> ReadSignal<bool> {
    let now = || web_sys::window().map(|w| w.navigator().on_line()).unwrap_or(true);
    let (online, set_online) = signal(now());
    let Some(window) = web_sys::window() else { return online };
    let update = Closure::<dyn FnMut(web_sys::Event)>::new(move |ev: web_sys::Event| {
        let up = ev.type_() == "online";
        set_online.set(up);
        if up {
            on_back_online();
        }
    });
    for name in ["online", "offline"] {
        let _ = window.add_event_listener_with_callback(name, update.as_ref().unchecked_ref());
    }
    update.forget();
    online
}
