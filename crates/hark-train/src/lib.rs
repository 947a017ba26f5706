//! Training hark's acoustic model.
//!
//! [`Example`]s are made from the dataset manifest with the one front end
//! (`hark-dsp`: 16 kHz, log-mel, per-utterance normalisation) and the one
//! alphabet (`hark-decode`); [`batches`] groups them by length so padding is
//! small; [`Trainer`] runs CTC loss and AdamW (linear warm-up, then inverse
//! square-root decay) on any Burn device with autodiff, and reports the loss
//! of every step. Entry points: [`load_examples`], [`Trainer::step`],
//! [`Trainer::greedy_wer`].
//!
//! Not yet here (issue 4): SpecAugment in the loop, exact resume of optimizer
//! state, early stopping on dev WER, the loss/WER plot and the speed work
//! against PyTorch.

use std::path::Path;

use burn::module::Module;
use burn::nn::loss::{CTCLoss, CTCLossConfig};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use hark_data::manifest::Utterance;
use hark_decode::Alphabet;
use hark_dsp::{LogMel, LogMelConfig};
use hark_eval::ErrorCounts;
use hark_model::{AcousticModel, AcousticModelConfig};

/// One utterance ready for the model.
#[derive(Debug, Clone)]
pub struct Example {
    pub id: String,
    /// Normalised log-mel, row-major `[frames, n_mels]`.
    pub features: Vec<f32>,
    pub frames: usize,
    pub targets: Vec<u32>,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Wav(#[from] hark_dsp::wav::WavError),
    #[error(transparent)]
    Resample(#[from] hark_dsp::ResampleError),
    #[error("{id}: {source}")]
    Text { id: String, source: hark_decode::UnknownChar },
}

/// Features and targets for `utterances`, audio paths relative to `root`.
/// Utterances too short for their transcript under CTC are left out (their
/// ids are returned) rather than poisoning the loss with infinities.
pub fn load_examples(root: &Path, utterances: &[Utterance]) -> Result<(Vec<Example>, Vec<String>), TrainError> {
    let mut mel = LogMel::new(LogMelConfig::default());
    let n_mels = mel.config().n_mels;
    let (mut out, mut dropped) = (Vec::new(), Vec::new());
    for u in utterances {
        let audio = hark_dsp::wav::read(&root.join(&u.audio))?;
        let samples = hark_dsp::resample(&audio.samples, audio.sample_rate, hark_dsp::SAMPLE_RATE)?;
        let mut features = mel.compute(&samples);
        hark_dsp::normalize_utterance(&mut features, n_mels);
        let frames = features.len() / n_mels;
        let targets = Alphabet::encode(&u.text).map_err(|source| TrainError::Text { id: u.id.clone(), source })?;
        // CTC needs at least one output frame per target (plus repeats).
        if AcousticModel::output_frames(frames) < targets.len() + 1 {
            dropped.push(u.id.clone());
            continue;
        }
        out.push(Example { id: u.id.clone(), features, frames, targets, text: u.text.clone() });
    }
    Ok((out, dropped))
}

/// Indices of `examples` in batches of up to `size`, sorted by length so each
/// batch pads little.
pub fn batches(examples: &[Example], size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| (examples[i].frames, i));
    order.chunks(size.max(1)).map(<[usize]>::to_vec).collect()
}

/// `[batch, n_mels, frames]` features (zero-padded) and their frame counts.
fn feature_tensor(examples: &[&Example], device: &Device) -> (Tensor<3>, Vec<usize>) {
    let n_mels = LogMelConfig::default().n_mels;
    let max = examples.iter().map(|e| e.frames).max().unwrap_or(0);
    let mut data = vec![0.0f32; examples.len() * n_mels * max];
    for (b, e) in examples.iter().enumerate() {
        for t in 0..e.frames {
            for m in 0..n_mels {
                data[(b * n_mels + m) * max + t] = e.features[t * n_mels + m];
            }
        }
    }
    let lengths = examples.iter().map(|e| e.frames).collect();
    (Tensor::from_data(TensorData::new(data, [examples.len(), n_mels, max]), device), lengths)
}

/// Optimiser settings.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub peak_lr: f64,
    pub warmup_steps: usize,
    pub weight_decay: f32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self { peak_lr: 3e-3, warmup_steps: 200, weight_decay: 1e-3 }
    }
}

/// Model + optimizer + schedule on one autodiff device.
pub struct Trainer {
    pub model: AcousticModel,
    optim: ModuleOptimizer,
    loss: CTCLoss,
    config: TrainConfig,
    device: Device,
    pub step: usize,
}

impl Trainer {
    /// `device` must have autodiff enabled (`Device::flex().autodiff()`).
    pub fn new(model: AcousticModelConfig, config: TrainConfig, device: Device) -> Self {
        let optim = AdamWConfig::new().with_weight_decay(config.weight_decay).init();
        Self {
            model: model.init(&device),
            optim,
            loss: CTCLossConfig::new().with_zero_infinity(true).init(),
            config,
            device,
            step: 0,
        }
    }

    /// Learning rate of the next step: linear warm-up, then 1/√step decay.
    pub fn learning_rate(&self) -> f64 {
        let s = (self.step + 1) as f64;
        let w = self.config.warmup_steps.max(1) as f64;
        self.config.peak_lr * (s / w).min((w / s).sqrt())
    }

    /// One optimisation step on `examples`; returns the mean CTC loss.
    pub fn step(&mut self, examples: &[&Example]) -> f32 {
        let (features, lengths) = feature_tensor(examples, &self.device);
        // [batch, frames, vocab] -> [frames, batch, vocab] as CTCLoss wants.
        let log_probs = self.model.forward(features).swap_dims(0, 1);
        let max_target = examples.iter().map(|e| e.targets.len()).max().unwrap_or(0);
        let mut targets = vec![0i64; examples.len() * max_target];
        for (b, e) in examples.iter().enumerate() {
            for (j, &t) in e.targets.iter().enumerate() {
                targets[b * max_target + j] = t as i64;
            }
        }
        let int = |v: Vec<i64>, shape: Vec<usize>| Tensor::<1, Int>::from_data(TensorData::new(v, shape), &self.device);
        let input_lengths =
            int(lengths.iter().map(|&f| AcousticModel::output_frames(f) as i64).collect(), vec![examples.len()]);
        let target_lengths = int(examples.iter().map(|e| e.targets.len() as i64).collect(), vec![examples.len()]);
        let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [examples.len(), max_target]), &self.device);
        let loss = self.loss.forward(log_probs, targets, input_lengths, target_lengths).mean();
        let value: f32 = loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        let lr = self.learning_rate();
        self.model = self.optim.step(lr, self.model.clone(), grads);
        self.step += 1;
        value
    }

    /// Greedy-decoding word error counts of the current model on `examples`.
    pub fn greedy_wer(&self, examples: &[&Example]) -> ErrorCounts {
        let model = self.model.valid();
        let device = self.device.clone().without_autodiff();
        let mut counts = ErrorCounts::default();
        for e in examples {
            let (features, _) = feature_tensor(&[e], &device);
            let out: Vec<f32> = model.forward(features).into_data().try_to_vec::<f32>().unwrap_or_default();
            counts += ErrorCounts::words(&e.text, &hark_decode::greedy(&out).text);
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(id: &str, frames: usize, text: &str) -> Example {
        // Features that differ per text, so the model can tell them apart.
        let seed = text.len() as f32;
        let features = (0..frames * 80).map(|i| (i as f32 * 0.37 + seed).sin()).collect();
        Example { id: id.into(), features, frames, targets: Alphabet::encode(text).unwrap(), text: text.into() }
    }

    #[test]
    fn batches_group_similar_lengths() {
        let ex: Vec<Example> =
            [50, 300, 60, 310, 55, 305].iter().enumerate().map(|(i, &f)| example(&i.to_string(), f, "a")).collect();
        let b = batches(&ex, 3);
        assert_eq!(b.len(), 2);
        assert!(b[0].iter().all(|&i| ex[i].frames < 100) && b[1].iter().all(|&i| ex[i].frames > 100));
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        let mut t = Trainer::new(
            AcousticModelConfig::new().with_channels(16).with_blocks(1),
            TrainConfig { peak_lr: 1e-3, warmup_steps: 10, weight_decay: 0.0 },
            Device::flex().autodiff(),
        );
        let lr0 = t.learning_rate();
        t.step = 9;
        let peak = t.learning_rate();
        t.step = 39;
        let later = t.learning_rate();
        assert!(lr0 < peak && later < peak && (peak - 1e-3).abs() < 1e-12, "{lr0} {peak} {later}");
    }

    #[test]
    fn training_steps_reduce_the_ctc_loss() {
        let examples = [example("a", 120, "yes"), example("b", 130, "no"), example("c", 110, "stop")];
        let refs: Vec<&Example> = examples.iter().collect();
        let mut t = Trainer::new(
            AcousticModelConfig::new().with_channels(32).with_blocks(2),
            TrainConfig { peak_lr: 5e-3, warmup_steps: 1, weight_decay: 0.0 },
            Device::flex().autodiff(),
        );
        let first = t.step(&refs);
        let mut last = first;
        for _ in 0..40 {
            last = t.step(&refs);
        }
        assert!(first.is_finite() && last < 0.5 * first, "loss {first} -> {last}");
        let wer = t.greedy_wer(&refs);
        assert_eq!(wer.reference, 3);
    }
}
