//! Which engine recognises: the faster of the CPU and WebGPU by the
//! worker's warm-up benchmark, unless the person chose (`?backend=`), and
//! never WebGPU once it failed. Pure, so it is unit-tested natively; the
//! page holds one [`Choice`] and shows [`Choice::describe`].

use crate::{Backend, BackendPreference};

/// What the person sees about the engine choice.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Choice {
    /// The engine recognising now; `None` until one has a model.
    pub active: Option<Backend>,
    pub cpu_ms: Option<f64>,
    pub gpu_ms: Option<f64>,
    /// Why WebGPU is not used, when it was tried and failed.
    pub gpu_failure: Option<String>,
    /// The person chose the engine (`?backend=`) rather than the benchmark.
    pub forced: bool,
}

impl Choice {
    pub fn describe(&self) -> String {
        let Some(active) = self.active else { return "Starting the recognition engine…".into() };
        let mut text = format!("{} in a background worker", active.describe());
        let by = if self.forced { "as asked (?backend=)" } else { "chosen by a warm-up benchmark" };
        match (self.cpu_ms, self.gpu_ms) {
            (Some(c), Some(g)) => text += &format!(", {by}: CPU {c:.0} ms, WebGPU {g:.0} ms per 3 s of audio."),
            (Some(c), None) if self.gpu_failure.is_none() => {
                text += &format!(" (warm-up: {c:.0} ms per 3 s of audio).")
            }
            (None, Some(g)) => text += &format!(" (warm-up: {g:.0} ms per 3 s of audio)."),
            _ => text += ".",
        }
        if let Some(why) = &self.gpu_failure {
            text += &format!(" WebGPU is not used: {why}");
        }
        text
    }
}

/// The engine to use given the benchmarks so far.
pub fn choose(preference: BackendPreference, choice: &Choice) -> Option<Backend> {
    let gpu_ok = choice.gpu_failure.is_none();
    match (preference, choice.cpu_ms, choice.gpu_ms) {
        (BackendPreference::Webgpu, _, Some(_)) if gpu_ok => Some(Backend::Webgpu),
        (BackendPreference::Auto, Some(c), Some(g)) if gpu_ok && g < c => Some(Backend::Webgpu),
        (_, Some(_), _) => Some(Backend::Cpu),
        // Only WebGPU has a model so far (the CPU one comes soon).
        (BackendPreference::Auto | BackendPreference::Webgpu, None, Some(_)) if gpu_ok => Some(Backend::Webgpu),
        // WebGPU failed before the CPU engine had a model: it will have one.
        _ if !gpu_ok => Some(Backend::Cpu),
        _ => choice.active,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(cpu: Option<f64>, gpu: Option<f64>) -> Choice {
        Choice { active: None, cpu_ms: cpu, gpu_ms: gpu, gpu_failure: None, forced: false }
    }

    #[test]
    fn the_faster_engine_wins_unless_the_person_chose() {
        assert_eq!(choose(BackendPreference::Auto, &choice(Some(60.0), Some(300.0))), Some(Backend::Cpu));
        assert_eq!(choose(BackendPreference::Auto, &choice(Some(60.0), Some(20.0))), Some(Backend::Webgpu));
        assert_eq!(choose(BackendPreference::Auto, &choice(Some(60.0), None)), Some(Backend::Cpu));
        assert_eq!(choose(BackendPreference::Webgpu, &choice(Some(60.0), Some(300.0))), Some(Backend::Webgpu));
        assert_eq!(choose(BackendPreference::Cpu, &choice(Some(60.0), Some(20.0))), Some(Backend::Cpu));
        let mut failed = choice(Some(60.0), Some(20.0));
        failed.gpu_failure = Some("device lost".into());
        assert_eq!(choose(BackendPreference::Webgpu, &failed), Some(Backend::Cpu));
        // WebGPU was recognising while the CPU engine still loaded, then failed.
        let mut early = choice(None, Some(20.0));
        early.active = Some(Backend::Webgpu);
        assert_eq!(choose(BackendPreference::Auto, &early), Some(Backend::Webgpu));
        early.gpu_failure = Some("device lost".into());
        assert_eq!(choose(BackendPreference::Auto, &early), Some(Backend::Cpu));
    }
}
