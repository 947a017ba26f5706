//! The microphone button (tap to speak, tap again to stop, or hold to
//! talk), its input-level meter, and why the microphone could not be used.

use leptos::prelude::*;

use crate::session::{Mic, MicState};

#[component]
pub fn MicButton<F>(mic: Mic, on_utterance: F) -> impl IntoView
where
    F: Fn(Vec<f32>) + Copy + 'static,
{
    let on_pointer_down = move |ev: leptos::ev::PointerEvent| {
        if ev.button() == 0 {
            mic.press(on_utterance);
        }
    };
    let on_pointer_up = move |_: leptos::ev::PointerEvent| mic.release(on_utterance);
    // Keyboard (Enter/Space) and scripted clicks arrive as clicks with no
    // pointer position; pointer presses were handled above.
    let on_click = move |ev: leptos::ev::MouseEvent| {
        if ev.detail() == 0 {
            mic.toggle(on_utterance);
        }
    };
    let state = mic.state;
    view! {
        <button
            id="mic"
            type="button"
            class="mic"
            data-state=move || state.get().name()
            aria-pressed=move || (state.get() == MicState::Listening).to_string()
            aria-label=move || match state.get() {
                MicState::Listening => "Stop listening",
                MicState::Recognizing => "Recognising",
                MicState::Idle => "Speak your search (tap, or hold to talk)",
            }
            title="Tap to speak, or hold to talk"
            on:pointerdown=on_pointer_down
            on:pointerup=on_pointer_up
            on:click=on_click
        >
            // Inline SVG, not an emoji: it renders where no emoji font is installed.
            {move || match state.get() {
                MicState::Idle => view! {
                    <svg viewBox="0 0 24 24" aria-hidden="true"><path fill="currentColor" d="M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.92V21h2v-3.08A7 7 0 0 0 19 11h-2z"/></svg>
                }.into_any(),
                MicState::Listening => view! {
                    <svg viewBox="0 0 24 24" aria-hidden="true"><rect fill="currentColor" x="6" y="6" width="12" height="12" rx="2"/></svg>
                }.into_any(),
                MicState::Recognizing => view! { <span aria-hidden="true">"…"</span> }.into_any(),
            }}
        </button>
    }
}

#[component]
pub fn LevelMeter(mic: Mic) -> impl IntoView {
    view! {
        <meter id="level" min="-100" max="0" low="-60" high="-10" aria-label="Microphone level" prop:value=move || mic.level.get() as f64></meter>
    }
}

#[component]
pub fn MicError(mic: Mic) -> impl IntoView {
    view! {
        <Show when=move || mic.error.get().is_some()>
            <p id="mic-error" role="alert" class="error">{move || mic.error.get().unwrap_or_default()}</p>
        </Show>
    }
}
