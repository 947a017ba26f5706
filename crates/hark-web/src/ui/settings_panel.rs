//! "Settings and privacy": consent to share prediction logs (off unless
//! chosen), what sharing has done this visit, the web-search address, and
//! "check for a new model now".

use hark_web::ToWorker;
use leptos::prelude::*;

use crate::engines::Engines;
use crate::settings;
use crate::telemetry::Telemetry;

#[component]
pub fn SettingsPanel(telemetry: Telemetry, search_url: RwSignal<String>, engines: Engines) -> impl IntoView {
    let (search_url_error, set_search_url_error) = signal(None::<String>);
    let on_consent = move |ev: leptos::ev::Event| telemetry.set_consent(event_target_checked(&ev));
    let on_search_url = move |ev: leptos::ev::Event| {
        let value = event_target_value(&ev);
        match settings::set_search_url(&value) {
            Ok(()) => {
                search_url.set(value.trim().to_owned());
                set_search_url_error.set(None);
            }
            Err(e) => set_search_url_error.set(Some(e)),
        }
    };
    let shared = telemetry.shared;
    view! {
        <details id="settings">
            <summary>"Settings and privacy"</summary>
            <label class="check">
                <input id="consent" type="checkbox" prop:checked=move || telemetry.consent() on:change=on_consent />
                " Share prediction logs (what was heard, its confidence, your corrections and the audio features — never the audio itself) to help improve hark. Off unless you turn it on."
            </label>
            <p id="telemetry-status" data-shared=move || shared.get().to_string()>
                {move || if telemetry.consent() { format!("Sharing is on. {} logs sent this visit.", shared.get()) } else { "Sharing is off: nothing leaves this device.".into() }}
                {move || telemetry.note.get().map(|n| format!(" {n}")).unwrap_or_default()}
            </p>
            <label for="search-url">"Web search address ({query} is replaced by your words)"</label>
            <input id="search-url" type="url" prop:value=search_url on:change=on_search_url />
            <Show when=move || search_url_error.with(Option::is_some)>
                <p class="error" role="alert">{move || search_url_error.get().unwrap_or_default()}</p>
            </Show>
            <p><button id="check-updates" type="button" on:click=move |_| engines.send(ToWorker::CheckForUpdates)>"Check for a new model now"</button></p>
        </details>
    }
}
