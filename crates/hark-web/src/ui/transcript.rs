//! What was heard: the words, each shaded by its confidence, with the
//! timings the end-to-end tests and benchmarks read from its attributes.

use hark_web::Recognized;
use leptos::prelude::*;

/// Words below this confidence are marked for the person to check.
const LOW_CONFIDENCE: f32 = 0.6;

/// `heard`: the last transcript and its latency (end of speech → words), ms.
#[component]
pub fn Transcript(heard: ReadSignal<Option<(Recognized, f64)>>) -> impl IntoView {
    let attr = move |f: fn(&Recognized, f64) -> String| {
        move || heard.with(|h| h.as_ref().map(|(r, ms)| f(r, *ms))).unwrap_or_default()
    };
    view! {
        <Show when=move || heard.with(Option::is_some)>
            <p id="transcript"
                data-decode-ms=attr(|_, ms| format!("{ms:.0}"))
                data-compute-ms=attr(|r, _| format!("{:.1}", r.timings.total_ms()))
                data-timings=attr(|r, _| format!("{:.1} {:.1} {:.1}", r.timings.features_ms, r.timings.model_ms, r.timings.search_ms))
                data-model=attr(|r, _| r.model_version.clone())
                data-id=attr(|r, _| r.id.to_string())
                data-backend=attr(|r, _| r.backend.name().to_owned())>
                "Heard: "
                <For each=move || heard.get().map(|(r, _)| r.words).unwrap_or_default().into_iter().enumerate() key=|(i, w)| (*i, w.0.clone()) let((_, w))>
                    <span class=if w.1 < LOW_CONFIDENCE { "word low" } else { "word" } title=format!("confidence {:.0} %", 100.0 * w.1)>{w.0.clone()}" "</span>
                </For>
                <span class="hint">"(edit the box to correct it)"</span>
            </p>
        </Show>
    }
}
