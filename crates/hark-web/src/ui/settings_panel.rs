//! "Settings and privacy": what to share (off unless chosen; two levels,
//! asked in plain words, changeable at any time), what sharing has done,
//! "delete what I sent", the web-search address, and "check for a new
//! model now".

use hark_telemetry::v2::ConsentLevel;
use hark_web::ToWorker;
use hark_web::outbox::{CONSENT_TEXT_VERSION, Consent};
use leptos::prelude::*;

use crate::engines::Engines;
use crate::settings;
use crate::telemetry::Telemetry;

/// The three choices: id, level, what the person is told.
const CHOICES: [(&str, Option<ConsentLevel>, &str); 3] = [
    ("consent-off", None, "Share nothing (the default). Nothing leaves this device."),
    (
        "consent-predictions",
        Some(ConsentLevel::Predictions),
        "Share what hark heard: the words, how sure it was, your corrections, and a summary of how the \
         audio sounded (loudness in 16 pitch bands, background noise, length). Never the audio itself.",
    ),
    (
        "consent-recordings",
        Some(ConsentLevel::Recordings),
        "Share that and the recordings: the audio of each spoken query (up to 30 s) and its features, so \
         hark can learn from real voices. Recordings are deleted from the server after 30 days.",
    ),
];

#[component]
pub fn SettingsPanel(telemetry: Telemetry, search_url: RwSignal<String>, engines: Engines) -> impl IntoView {
    let (search_url_error, set_search_url_error) = signal(None::<String>);
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
    let level = move || telemetry.consent.get().map(|c| c.level);
    let choices = CHOICES.map(|(id, choice, text)| {
        let choose =
            move |_| telemetry.set_consent(choice.map(|level| Consent { level, text_version: CONSENT_TEXT_VERSION }));
        view! {
            <label class="check">
                <input id=id type="radio" name="consent" prop:checked=move || level() == choice on:change=choose />
                " " {text}
            </label>
        }
    });
    let counts = telemetry.counts;
    let status = move || {
        let c = counts.get();
        let mut text = match level() {
            None => "Sharing is off: nothing leaves this device.".to_owned(),
            Some(ConsentLevel::Predictions) => "Sharing what hark heard.".to_owned(),
            Some(ConsentLevel::Recordings) => "Sharing what hark heard, with the recordings.".to_owned(),
        };
        text += &format!(" {} logs sent from this browser", c.sent);
        if telemetry.waiting.get() > 0 {
            text += &format!(", {} waiting to be sent", telemetry.waiting.get());
        }
        text += ".";
        if c.dropped_full + c.rejected + c.refused > 0 {
            text += &format!(
                " Not sent: {} (queue full), {} refused by the server.",
                c.dropped_full,
                c.rejected + c.refused
            );
        }
        if let Some(note) = telemetry.note.get() {
            text += &format!(" {note}");
        }
        text
    };
    view! {
        <details id="settings">
            <summary>"Settings and privacy"</summary>
            <fieldset id="consent" data-level=move || level().map(|l| l.as_str()).unwrap_or("off")>
                <legend>"Help improve hark? You can change this at any time; turning it off deletes what is still waiting on this device."</legend>
                {choices}
            </fieldset>
            <p
                id="telemetry-status"
                data-sent=move || counts.get().sent.to_string()
                data-waiting=move || telemetry.waiting.get().to_string()
                data-dropped=move || { let c = counts.get(); (c.dropped_full + c.rejected + c.refused).to_string() }
            >
                {status}
            </p>
            <Show when=move || { let c = counts.get(); c.sent + c.duplicates > 0 || telemetry.deletion.with(Option::is_some) }>
                <p>
                    <button id="delete-sent" type="button" on:click=move |_| telemetry.delete_sent()>
                        "Delete what I sent"
                    </button>
                    " "
                    <span id="deletion-status" role="status">{move || telemetry.deletion.get().unwrap_or_default()}</span>
                </p>
            </Show>
            <label for="search-url">"Web search address ({query} is replaced by your words)"</label>
            <input id="search-url" type="url" prop:value=search_url on:change=on_search_url />
            <Show when=move || search_url_error.with(Option::is_some)>
                <p class="error" role="alert">{move || search_url_error.get().unwrap_or_default()}</p>
            </Show>
            <p><button id="check-updates" type="button" on:click=move |_| engines.send(ToWorker::CheckForUpdates)>"Check for a new model now"</button></p>
        </details>
    }
}
