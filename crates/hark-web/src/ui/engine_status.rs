//! Which engine recognises (CPU or WebGPU, and why), the speech model's
//! state with download progress, and the active model's published figures.

use hark_web::choice::Choice;
use hark_web::model_card;
use hark_web::{GpuProbe, ModelStatus};
use leptos::prelude::*;

#[component]
pub fn EngineStatus(
    gpu_probe: ReadSignal<GpuProbe>,
    choice: ReadSignal<Choice>,
    model: ReadSignal<ModelStatus>,
    /// When the first model was ready (ms since navigation start).
    ready_ms: ReadSignal<Option<f64>>,
) -> impl IntoView {
    view! {
        <dl class="status" aria-live="polite">
            <dt>"Recognition engine"</dt>
            <dd id="webgpu-status" data-state=move || gpu_probe.with(GpuProbe::state)>{move || gpu_probe.with(GpuProbe::describe)}</dd>
            <dd id="engine" data-backend=move || choice.with(|c| c.active.map(|b| b.name()).unwrap_or_default())>{move || choice.with(Choice::describe)}</dd>
            <dt>"Speech model"</dt>
            <dd id="model-status" data-state=move || model.with(ModelStatus::state) data-ready-ms=move || ready_ms.get().map(|ms| format!("{ms:.0}")).unwrap_or_default()>{move || model.with(ModelStatus::describe)}</dd>
            <Show when=move || model.with(|m| m.progress().is_some())>
                <dd><progress id="model-progress" max="1" aria-label="Model download" prop:value=move || model.with(|m| m.progress().unwrap_or(0.0))></progress></dd>
            </Show>
        </dl>
    }
}

/// The active model's card: what its figures mean, headline first; the raw
/// published metrics one click further.
#[component]
pub fn AboutModel(model: ReadSignal<ModelStatus>) -> impl IntoView {
    let metrics = move || model.with(|m| m.active.as_ref().map(|a| a.metrics.clone()).unwrap_or_default());
    view! {
        <Show when=move || model.with(|m| m.active.is_some())>
            <details id="about-model">
                <summary>{move || format!("About model {}", model.with(|m| m.active.as_ref().map(|a| a.version.clone()).unwrap_or_default()))}</summary>
                <dl class="model-card">
                    <For each=move || model_card::figures(&metrics()) key=|f| f.label let(f)>
                        <dt>{f.label}</dt>
                        <dd><strong>{f.value}</strong>" — "{f.about}</dd>
                    </For>
                </dl>
                <details class="raw-figures">
                    <summary>"All published figures"</summary>
                    <table>
                        <For each=move || model_card::raw(&metrics()) key=|m| m.0.clone() let(m)>
                            <tr><td>{m.0}</td><td>{m.1}</td></tr>
                        </For>
                    </table>
                </details>
            </details>
        </Show>
    }
}
