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
//! Training state — weights, AdamW moments, step counter — round-trips
//! through bytes ([`Trainer::state`], [`Trainer::restore`]), and everything
//! random in a step (SpecAugment masks, batch order) is derived from the seed
//! and the step or epoch number, so a run split over several sittings takes
//! the same steps as one run.

use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::nn::loss::{CTCLoss, CTCLossConfig};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Bytes;
use burn::tensor::{Device, Int, Tensor, TensorData};
use hark_data::augment::{FeatureWarpConfig, RenoiseConfig, SpecAugmentConfig, renoise, spec_augment, warp_features};
use hark_data::manifest::Utterance;
use hark_decode::{Alphabet, Lexicon, Units};
use hark_dsp::{LogMel, LogMelConfig};
use hark_eval::ErrorCounts;
use hark_model::{AcousticModel, AcousticModelConfig};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

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
    // `problem`, not `source`: the message already says it, and a `source`
    // would be printed a second time by a plain error chain (anyhow's `{:#}`;
    // the CLI's `report::chain` skips such repeats, other callers may not).
    #[error("{id}: {problem}")]
    Text { id: String, problem: hark_decode::UnknownChar },
    #[error("{id}: {problem}")]
    Pronunciation { id: String, problem: hark_decode::MissingWord },
    #[error(transparent)]
    Weights(#[from] hark_model::WeightsError),
    #[error("optimizer state is not readable: {0}")]
    Optimizer(String),
}

/// Training-time noise for [`load_examples`]: [`RenoiseConfig`] with the
/// seed that, with each utterance's id, fixes what every utterance gets, so a
/// resumed run loads the same data.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Renoise {
    pub config: RenoiseConfig,
    pub seed: u64,
}

impl Renoise {
    /// Noise for `u`'s `samples` if `u` is clean and drawn, else `None`.
    fn apply(&self, u: &Utterance, samples: &[f32]) -> Option<Vec<f32>> {
        if u.tags.get("noise").is_some_and(|n| n != "clean") {
            return None;
        }
        // Stable across builds and platforms, as `hark data synth` seeds each utterance.
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed ^ hark_data::corpus::stable_hash(&u.id));
        renoise(samples, &self.config, &mut rng).map(|(mix, _)| mix)
    }
}

/// How transcripts become CTC targets: letters, or phones through a
/// pronunciation lexicon.
#[derive(Debug, Clone, Default)]
pub enum Targets {
    #[default]
    Letters,
    Phones(Lexicon),
}

impl Targets {
    pub fn units(&self) -> Units {
        match self {
            Targets::Letters => Units::Letters,
            Targets::Phones(_) => Units::Phones,
        }
    }

    /// The targets of utterance `id`'s normalised `text`.
    pub fn encode(&self, id: &str, text: &str) -> Result<Vec<u32>, TrainError> {
        match self {
            Targets::Letters => Alphabet::encode(text).map_err(|problem| TrainError::Text { id: id.into(), problem }),
            Targets::Phones(lexicon) => {
                lexicon.encode(text).map_err(|problem| TrainError::Pronunciation { id: id.into(), problem })
            }
        }
    }
}

/// Features and targets for `utterances`, audio paths relative to `root`,
/// with `renoise` applied to clean utterances if given (training only: dev
/// and test are measured as recorded). Utterances too short for their
/// transcript under CTC are left out (their ids are returned) rather than
/// poisoning the loss with infinities. Loads on all cores; the order of the
/// result follows `utterances`.
pub fn load_examples(
    root: &Path,
    utterances: &[Utterance],
    renoise: Option<&Renoise>,
    targets: &Targets,
) -> Result<(Vec<Example>, Vec<String>), TrainError> {
    let n_mels = LogMelConfig::default().n_mels;
    let loaded: Vec<Result<Option<Example>, TrainError>> = utterances
        .par_iter()
        .map_init(
            || LogMel::new(LogMelConfig::default()),
            |mel, u| {
                let audio = hark_dsp::wav::read(&root.join(&u.audio))?;
                let mut samples = hark_dsp::resample(&audio.samples, audio.sample_rate, hark_dsp::SAMPLE_RATE)?;
                if let Some(mix) = renoise.and_then(|r| r.apply(u, &samples)) {
                    samples = mix;
                }
                let features = mel.model_features(&samples);
                let frames = features.len() / n_mels;
                let targets = targets.encode(&u.id, &u.text)?;
                // CTC needs at least one output frame per target (plus repeats).
                if AcousticModel::output_frames(frames) < targets.len() + 1 {
                    return Ok(None);
                }
                Ok(Some(Example { id: u.id.clone(), features, frames, targets, text: u.text.clone() }))
            },
        )
        .collect();
    let (mut out, mut dropped) = (Vec::new(), Vec::new());
    for (u, example) in utterances.iter().zip(loaded) {
        match example? {
            Some(e) => out.push(e),
            None => dropped.push(u.id.clone()),
        }
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

/// The order to visit `batches` in epoch `epoch` (0-based): shortest first in
/// the first epoch (a curriculum that helps CTC find its alignments), then a
/// shuffle seeded by `seed` and the epoch.
pub fn epoch_order(batches: usize, epoch: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..batches).collect();
    if epoch > 0 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        order.shuffle(&mut rng);
    }
    order
}

/// `[batch, n_mels, frames]` features (zero-padded) and their frame counts.
fn feature_tensor(examples: &[&Example], device: &Device) -> (Tensor<3>, Vec<usize>) {
    let features: Vec<&[f32]> = examples.iter().map(|e| e.features.as_slice()).collect();
    let lengths = examples.iter().map(|e| e.frames).collect();
    (AcousticModel::input(&features, LogMelConfig::default().n_mels, device), lengths)
}

/// Optimiser settings.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub peak_lr: f64,
    pub warmup_steps: usize,
    /// AdamW's settings (weight decay; Burn's defaults otherwise).
    pub optimizer: AdamWConfig,
    /// Masks applied to a copy of each example's features at every step.
    pub spec_augment: Option<SpecAugmentConfig>,
    /// Voice/tempo warp applied (before the masks) at every step.
    pub warp: Option<FeatureWarpConfig>,
    pub seed: u64,
    /// Each step's batch is split into this many shards whose forward and
    /// backward passes run in parallel (on the rayon pool), their gradients
    /// summed: the same step as one pass over the whole batch, up to float
    /// rounding and padding (each shard is padded to its own longest
    /// utterance). Burn's `flex` runs element-wise operations on one
    /// thread, so on the CPU this is what keeps every core busy; 1 on a GPU.
    /// Part of a run's identity: resume with the same value.
    pub shards: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            peak_lr: 3e-3,
            warmup_steps: 500,
            optimizer: AdamWConfig::new().with_weight_decay(1e-3),
            spec_augment: Some(SpecAugmentConfig::default()),
            warp: Some(FeatureWarpConfig::default()),
            seed: 0,
            shards: 1,
        }
    }
}

/// Everything needed to continue training exactly where it stopped.
#[derive(Debug, Clone)]
pub struct TrainState {
    /// Model weights (burnpack).
    pub weights: Vec<u8>,
    /// AdamW moments (burnpack).
    pub optimizer: Vec<u8>,
    pub step: usize,
}

/// Ids of the model's float parameters, in visiting order.
fn param_ids(model: &AcousticModel) -> Vec<u64> {
    struct Ids(Vec<u64>);
    impl ModuleVisitor for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.id.val());
        }
    }
    let mut ids = Ids(Vec::new());
    model.visit(&mut ids);
    ids.0
}

/// Gives parameters the given ids, in visiting order.
struct SetIds(std::vec::IntoIter<u64>);

impl ModuleMapper for SetIds {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let id = self.0.next().map(ParamId::from).unwrap_or(id);
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// Gives every float parameter a fresh autodiff leaf (same values, same
/// [`ParamId`]): shards running in parallel then build separate graphs
/// (Burn merges graphs that share a leaf, and one graph is differentiated
/// under one lock).
struct FreshLeaves;

impl ModuleMapper for FreshLeaves {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, tensor.detach().require_grad(), mapper)
    }
}

/// Adds the gradients in `from` to those in `into`, parameter by parameter.
struct AddGradients<'a> {
    into: &'a mut GradientsParams,
    from: &'a mut GradientsParams,
}

impl ModuleVisitor for AddGradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.from.remove::<D>(param.id) {
            let sum = match self.into.remove::<D>(param.id) {
                Some(acc) => acc + g,
                None => g,
            };
            self.into.register(param.id, sum);
        }
    }
}

/// CTC loss of one shard, scaled so that shards' losses (and gradients) add
/// up to the mean over the whole batch of `batch` utterances, with its
/// gradients.
fn shard_gradients(
    model: AcousticModel,
    ctc: &CTCLoss,
    examples: &[&Example],
    batch: usize,
    device: &Device,
) -> (f32, GradientsParams) {
    let model = model.map(&mut FreshLeaves);
    let (features, lengths) = feature_tensor(examples, device);
    // [batch, frames, vocab] -> [frames, batch, vocab] as CTCLoss wants.
    let log_probs = model.forward(features).swap_dims(0, 1);
    let max_target = examples.iter().map(|e| e.targets.len()).max().unwrap_or(0);
    let mut targets = vec![0i64; examples.len() * max_target];
    for (b, e) in examples.iter().enumerate() {
        for (j, &t) in e.targets.iter().enumerate() {
            targets[b * max_target + j] = t as i64;
        }
    }
    let int = |v: Vec<i64>, shape: Vec<usize>| Tensor::<1, Int>::from_data(TensorData::new(v, shape), device);
    let input_lengths =
        int(lengths.iter().map(|&f| AcousticModel::output_frames(f) as i64).collect(), vec![examples.len()]);
    let target_lengths = int(examples.iter().map(|e| e.targets.len() as i64).collect(), vec![examples.len()]);
    let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [examples.len(), max_target]), device);
    let loss = ctc.forward(log_probs, targets, input_lengths, target_lengths).sum() / batch as f32;
    let value: f32 = loss.clone().into_scalar();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    (value, grads)
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
        let optim = config.optimizer.init();
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

    /// Weights, optimizer moments and step, as bytes.
    ///
    /// AdamW's moments are keyed by parameter id, and ids are random per
    /// process, while weights load by name. So the optimizer bytes start
    /// with the model's parameter ids in visiting order (`u32` count, then
    /// `u64`s, little-endian); [`Trainer::restore`] gives the freshly loaded
    /// model those ids again.
    pub fn state(&self) -> Result<TrainState, TrainError> {
        let moments = self.optim.into_bytes().map_err(|e| TrainError::Optimizer(e.to_string()))?;
        let ids = param_ids(&self.model);
        let mut optimizer = Vec::with_capacity(4 + 8 * ids.len() + moments.len());
        optimizer.extend_from_slice(&(ids.len() as u32).to_le_bytes());
        for id in ids {
            optimizer.extend_from_slice(&id.to_le_bytes());
        }
        optimizer.extend_from_slice(&moments);
        Ok(TrainState { weights: self.model.to_bytes()?, optimizer, step: self.step })
    }

    /// Continue from `state` (made by [`Trainer::state`] for the same model
    /// shape).
    pub fn restore(&mut self, model: &AcousticModelConfig, state: TrainState) -> Result<(), TrainError> {
        let bad = |what: &str| TrainError::Optimizer(format!("{what}; the checkpoint is damaged"));
        let bytes = state.optimizer;
        let count =
            u32::from_le_bytes(bytes.get(..4).ok_or_else(|| bad("no parameter ids"))?.try_into().expect("4 bytes"));
        let ids_end = 4 + 8 * count as usize;
        let ids: Vec<u64> = bytes
            .get(4..ids_end)
            .ok_or_else(|| bad("parameter ids cut short"))?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let loaded = AcousticModel::from_bytes(model, state.weights, &self.device)?;
        if param_ids(&loaded).len() != ids.len() {
            return Err(bad("parameter count differs from the model's"));
        }
        self.model = loaded.map(&mut SetIds(ids.into_iter()));
        let moments = bytes[ids_end..].to_vec();
        let fresh = self.config.optimizer.init();
        let optim = std::mem::replace(&mut self.optim, fresh);
        self.optim =
            optim.from_bytes(Bytes::from_bytes_vec(moments)).map_err(|e| TrainError::Optimizer(e.to_string()))?;
        self.step = state.step;
        Ok(())
    }

    /// One optimisation step on `examples`; returns the mean CTC loss.
    pub fn step(&mut self, examples: &[&Example]) -> f32 {
        let augmented: Vec<Example>;
        let examples: Vec<&Example> = if self.config.spec_augment.is_some() || self.config.warp.is_some() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(
                self.config.seed ^ (self.step as u64).wrapping_mul(0xD1B5_4A32_D192_ED03),
            );
            let n_mels = LogMelConfig::default().n_mels;
            augmented = examples
                .iter()
                .map(|e| {
                    let mut e = (*e).clone();
                    if let Some(w) = &self.config.warp {
                        let mel = 1.0 + rng.random_range(-w.max_mel_stretch..=w.max_mel_stretch);
                        let mut tempo = 1.0 + rng.random_range(-w.max_tempo_stretch..=w.max_tempo_stretch);
                        // Never so fast that CTC cannot fit the transcript.
                        let room = AcousticModel::output_frames(e.frames) as f32 / (e.targets.len() + 1) as f32;
                        tempo = tempo.min(room.max(1.0));
                        let (features, frames) = warp_features(&e.features, n_mels, mel, tempo);
                        if AcousticModel::output_frames(frames) > e.targets.len() {
                            (e.features, e.frames) = (features, frames);
                        }
                    }
                    if let Some(masks) = &self.config.spec_augment {
                        spec_augment(&mut e.features, n_mels, masks, &mut rng);
                    }
                    e
                })
                .collect();
            augmented.iter().collect()
        } else {
            examples.to_vec()
        };
        let examples = &examples[..];
        // Contiguous shards of (nearly) equal size, in batch order.
        let n = examples.len();
        let shards = self.config.shards.clamp(1, n.max(1));
        let bounds: Vec<(usize, usize)> = (0..shards).map(|i| (i * n / shards, (i + 1) * n / shards)).collect();
        let work: Vec<(AcousticModel, &[&Example])> =
            bounds.iter().map(|&(a, b)| (self.model.clone(), &examples[a..b])).collect();
        let (loss, device) = (&self.loss, &self.device);
        let results: Vec<(f32, GradientsParams)> = if shards == 1 {
            work.into_iter().map(|(model, part)| shard_gradients(model, loss, part, n, device)).collect()
        } else {
            work.into_par_iter().map(|(model, part)| shard_gradients(model, loss, part, n, device)).collect()
        };
        let mut value = 0.0;
        let mut grads = GradientsParams::new();
        for (shard_loss, mut shard_grads) in results {
            value += shard_loss;
            self.model.visit(&mut AddGradients { into: &mut grads, from: &mut shard_grads });
        }
        let lr = self.learning_rate();
        self.model = self.optim.step(lr, self.model.clone(), grads);
        self.step += 1;
        value
    }

    /// Greedy-decoding error counts of the current model on `examples`:
    /// words for a letter model, phones (and word boundaries) for a phone
    /// model, whose words only a lexicon search can tell.
    pub fn greedy_wer(&self, examples: &[&Example], units: Units) -> ErrorCounts {
        let model = self.model.valid();
        let device = self.device.clone().without_autodiff();
        let mut counts = ErrorCounts::default();
        for e in examples {
            let (features, _) = feature_tensor(&[e], &device);
            let out: Vec<f32> = model.forward(features).into_data().try_to_vec::<f32>().unwrap_or_default();
            counts += match units {
                Units::Letters => ErrorCounts::words(&e.text, &hark_decode::greedy(&out).text),
                Units::Phones => ErrorCounts::words(
                    &units.render(&e.targets),
                    &units.render(&hark_decode::greedy_symbols(&out, units.size())),
                ),
            };
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
    fn a_word_without_a_pronunciation_is_named_once_with_its_utterance() {
        use std::error::Error as _;
        let targets = Targets::Phones(Lexicon::parse("the\tdh ah\n").unwrap());
        let err = targets.encode("train-000001", "the folsom").unwrap_err();
        assert!(err.to_string().starts_with("train-000001: the word \"folsom\" has no pronunciation"), "{err}");
        // No source: any error chain (even anyhow's `{:#}`) says it once.
        assert!(err.source().is_none());
        let err = Targets::Letters.encode("train-000002", "caf\u{e9}").unwrap_err();
        assert!(err.to_string().starts_with("train-000002: character 'é'"), "{err}");
        assert!(err.source().is_none());
    }

    #[test]
    fn loading_renoises_only_clean_training_utterances_and_reproducibly() {
        let dir = tempfile::tempdir().unwrap();
        // A "word": a harmonic tone between silences.
        let speech: Vec<f32> = (0..24_000)
            .map(|i| {
                if (4_000..20_000).contains(&i) {
                    0.2 * (i as f32 * 0.06).sin() + 0.1 * (i as f32 * 0.5).sin()
                } else {
                    0.0
                }
            })
            .collect();
        let utterance = |id: &str, noise: &str| {
            let audio = format!("{id}.wav");
            let wav = hark_dsp::wav::Audio { sample_rate: 16_000, samples: speech.clone() };
            hark_dsp::wav::write_pcm16(&dir.path().join(&audio), &wav).unwrap();
            let line = serde_json::json!({
                "id": id, "audio": audio, "text": "a word", "split": "train", "engine": "espeak-ng",
                "voice": "en", "rate": 160, "pitch": 50, "duration_s": 1.5, "template": 0,
                "entities": [], "tags": { "noise": noise }
            });
            serde_json::from_value::<Utterance>(line).unwrap()
        };
        let utterances = [utterance("a", "clean"), utterance("b", "clean"), utterance("c", "car")];
        let every = Renoise { config: RenoiseConfig { share: 1.0, ..RenoiseConfig::default() }, seed: 3 };
        let load = |r: Option<&Renoise>| load_examples(dir.path(), &utterances, r, &Targets::Letters).unwrap().0;
        let (plain, noisy, again) = (load(None), load(Some(&every)), load(Some(&every)));
        let features = |x: &[Example]| x.iter().map(|e| e.features.clone()).collect::<Vec<_>>();
        assert_eq!(features(&noisy), features(&again), "same seed, same data: a resumed run sees what the first saw");
        assert_ne!(plain[0].features, noisy[0].features, "clean utterances get noise");
        assert_ne!(noisy[0].features, noisy[1].features, "each utterance its own draw");
        assert_eq!(plain[2].features, noisy[2].features, "an utterance that already has noise is left alone");
        let other = Renoise { seed: 4, ..every.clone() };
        assert_ne!(features(&load(Some(&other))), features(&noisy));
        let never = Renoise { config: RenoiseConfig { share: 0.0, ..RenoiseConfig::default() }, seed: 3 };
        assert_eq!(features(&load(Some(&never))), features(&plain));
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
            TrainConfig {
                peak_lr: 1e-3,
                warmup_steps: 10,
                optimizer: AdamWConfig::new().with_weight_decay(0.0),
                spec_augment: None,
                warp: None,
                seed: 0,
                shards: 1,
            },
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
            TrainConfig {
                peak_lr: 5e-3,
                warmup_steps: 1,
                optimizer: AdamWConfig::new().with_weight_decay(0.0),
                spec_augment: None,
                warp: None,
                seed: 0,
                shards: 1,
            },
            Device::flex().autodiff(),
        );
        let first = t.step(&refs);
        let mut last = first;
        for _ in 0..40 {
            last = t.step(&refs);
        }
        assert!(first.is_finite() && last < 0.5 * first, "loss {first} -> {last}");
        let wer = t.greedy_wer(&refs, Units::Letters);
        assert_eq!(wer.reference, 3);
    }

    #[test]
    fn a_deepened_model_trains_its_new_blocks() {
        let examples = [example("a", 120, "yes"), example("b", 130, "no")];
        let refs: Vec<&Example> = examples.iter().collect();
        let shallow = AcousticModelConfig::new().with_channels(16).with_blocks(1);
        let config = TrainConfig { peak_lr: 5e-3, warmup_steps: 1, seed: 3, shards: 1, ..TrainConfig::default() };
        let mut t = Trainer::new(shallow.clone().with_blocks(3), config, Device::flex().autodiff());
        t.model = shallow.init(&Device::flex().autodiff()).deepened(3);
        /// Parameters that are zero everywhere (the new blocks' layer-norm scale and shift).
        struct Zeros(usize);
        impl burn::module::ModuleVisitor for Zeros {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::tensor::Tensor<D>>) {
                let size: f32 = param.val().abs().sum().into_scalar();
                self.0 += usize::from(size == 0.0);
            }
        }
        let zeros = |m: &AcousticModel| {
            let mut z = Zeros(0);
            burn::module::Module::visit(m, &mut z);
            z.0
        };
        let zero_at_init = zeros(&shallow.init(&Device::flex())); // layer-norm shifts
        assert_eq!(zeros(&t.model), zero_at_init + 4, "two new blocks start with zero scale and shift");
        let first = t.step(&refs);
        for _ in 0..5 {
            t.step(&refs);
        }
        assert!(first.is_finite());
        assert_eq!(zeros(&t.model), 0, "every new parameter moved");
        let saved = t.model.to_bytes().unwrap();
        assert!(AcousticModel::from_bytes(&shallow.with_blocks(3), saved, &Device::flex()).is_ok());
    }

    #[test]
    fn resuming_from_saved_state_takes_the_same_steps() {
        let examples = [example("a", 120, "yes"), example("b", 130, "no")];
        let refs: Vec<&Example> = examples.iter().collect();
        let model = AcousticModelConfig::new().with_channels(16).with_blocks(1);
        let config = TrainConfig {
            peak_lr: 5e-3,
            warmup_steps: 1,
            optimizer: AdamWConfig::new().with_weight_decay(1e-3),
            spec_augment: Some(Default::default()),
            warp: Some(Default::default()),
            seed: 7,
            shards: 2,
        };
        // Every trainer starts from the same initial weights.
        let initial = Trainer::new(model.clone(), config.clone(), Device::flex().autodiff()).state().unwrap();
        let new = || {
            let mut t = Trainer::new(model.clone(), config.clone(), Device::flex().autodiff());
            t.restore(&model, initial.clone()).unwrap();
            t
        };
        let mut straight = new();
        for _ in 0..6 {
            straight.step(&refs);
        }
        let mut first = new();
        for _ in 0..3 {
            first.step(&refs);
        }
        let state = first.state().unwrap();
        let mut second = new();
        second.restore(&model, state).unwrap();
        for _ in 0..3 {
            second.step(&refs);
        }
        // Same probe input for both.
        let probe = Tensor::<3>::from_data(
            TensorData::new((0..80 * 50).map(|i| (i as f32 * 0.1).cos()).collect::<Vec<f32>>(), [1, 80, 50]),
            &Device::flex(),
        );
        let out = |t: &Trainer| t.model.valid().forward(probe.clone()).into_data().try_to_vec::<f32>().unwrap();
        let (a, b) = (out(&straight), out(&second));
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "resumed run differs by {diff}");
        // And restarting the optimizer (moments lost) would not match: the
        // test can tell.
        let mut lossy = new();
        lossy.model =
            AcousticModel::from_bytes(&model, first.state().unwrap().weights, &Device::flex().autodiff()).unwrap();
        lossy.step = 3;
        for _ in 0..3 {
            lossy.step(&refs);
        }
        let c = out(&lossy);
        let diff = a.iter().zip(&c).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff > 1e-4, "fresh moments should change the trajectory ({diff})");
    }

    #[test]
    fn a_step_split_into_parallel_shards_is_the_same_step() {
        // Equal lengths: no padding difference between the split and whole batch.
        let examples =
            [example("a", 120, "yes"), example("b", 120, "no"), example("c", 120, "stop"), example("d", 120, "go")];
        let refs: Vec<&Example> = examples.iter().collect();
        let model = AcousticModelConfig::new().with_channels(16).with_blocks(1);
        let config = |shards| TrainConfig {
            peak_lr: 5e-3,
            warmup_steps: 1,
            optimizer: AdamWConfig::new().with_weight_decay(1e-3),
            spec_augment: None,
            warp: None,
            seed: 3,
            shards,
        };
        let initial = Trainer::new(model.clone(), config(1), Device::flex().autodiff()).state().unwrap();
        let probe = Tensor::<3>::from_data(
            TensorData::new((0..80 * 50).map(|i| (i as f32 * 0.1).cos()).collect::<Vec<f32>>(), [1, 80, 50]),
            &Device::flex(),
        );
        // Losses of three steps on `batch`, and the model's output on a probe after them.
        let run = |shards, batch: &[&Example]| {
            let mut t = Trainer::new(model.clone(), config(shards), Device::flex().autodiff());
            t.restore(&model, initial.clone()).unwrap();
            let losses: Vec<f32> = (0..3).map(|_| t.step(batch)).collect();
            let out = t.model.valid().forward(probe.clone()).into_data().try_to_vec::<f32>().unwrap();
            (losses, out)
        };
        let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        let (whole, whole_out) = run(1, &refs);
        for shards in [2, 3] {
            let (split, split_out) = run(shards, &refs);
            // Relative: losses of ~160 in f32 summed in another order differ by ~1e-5 of themselves.
            let loss_diff = whole.iter().zip(&split).map(|(w, s)| ((w - s) / w).abs()).fold(0.0f32, f32::max);
            assert!(loss_diff < 1e-4, "{shards} shards: losses {split:?} vs {whole:?}");
            let diff = max_diff(&whole_out, &split_out);
            assert!(diff < 1e-4, "{shards} shards: the model differs by {diff} after three steps");
        }
        // The comparison can tell different steps apart.
        let (_, other_out) = run(2, &refs[..2]);
        assert!(max_diff(&whole_out, &other_out) > 1e-4, "a different batch should give a different model");
    }

    #[test]
    fn epoch_order_is_sorted_first_then_a_seeded_shuffle() {
        assert_eq!(epoch_order(5, 0, 1), vec![0, 1, 2, 3, 4]);
        let (a, b) = (epoch_order(50, 1, 1), epoch_order(50, 2, 1));
        assert_ne!(a, b);
        assert_eq!(a, epoch_order(50, 1, 1));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }
}
