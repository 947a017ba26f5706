//! hark's one recognition pipeline, used by `hark transcribe`, `hark eval`
//! and the browser app alike, so what is measured is what ships:
//!
//! audio at any rate → [`hark_dsp::resample`] to 16 kHz → [`LogMel`] →
//! per-utterance normalisation → [`AcousticModel`] → [`BeamDecoder`] with the
//! query-corpus language model and entity list ([`corpus_decoder`]).
//!
//! Long audio is cut into segments of at most [`MAX_SEGMENT_S`] at the
//! quietest moment near each boundary ([`Segmenter`]), so memory stays
//! bounded however long the input is.
//!
//! **Architecture Invariant:** no IO here: samples and weight bytes in,
//! transcripts out.

pub mod listen;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use hark_data::{Corpus, Split, normalize};
use hark_decode::{Alphabet, BeamConfig, BeamDecoder, Lexicon, NgramLm, Transcript};
use hark_dsp::{FeatureSummary, LogMel, LogMelConfig, SAMPLE_RATE, StreamResampler};
use hark_model::{AcousticModel, AcousticModelConfig, WeightsError};
use std::collections::HashMap;
use std::sync::Arc;

/// Longest stretch of audio the model sees at once.
pub const MAX_SEGMENT_S: f64 = 20.0;
/// [`MAX_SEGMENT_S`] in 16 kHz samples.
pub const MAX_SEGMENT_SAMPLES: usize = MAX_SEGMENT_S as usize * SAMPLE_RATE as usize;

#[derive(Debug, thiserror::Error)]
pub enum RecognizeError {
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Resample(#[from] hark_dsp::ResampleError),
    #[error("the acoustic model returned no readable output: {0}")]
    Output(String),
    #[error("the acoustic model writes {model:?} but its decoder reads {decoder:?}: a phone model needs its lexicon")]
    Units { model: hark_decode::Units, decoder: hark_decode::Units },
}

/// Model + front end + decoder.
pub struct Recognizer {
    model: AcousticModel,
    device: Device,
    decoder: BeamDecoder,
    mel: LogMel,
}

impl Recognizer {
    pub fn new(
        config: &AcousticModelConfig,
        weights: Vec<u8>,
        device: Device,
        decoder: BeamDecoder,
    ) -> Result<Self, RecognizeError> {
        // Weights are read and widened to f32 on the CPU, then moved: a GPU
        // without f16 shaders (WebGPU's `shader-f16` is optional; SwiftShader
        // lacks it) cannot run the f16 → f32 cast itself. Inference only, so
        // moving loses nothing (training loads with `from_bytes` directly).
        if config.units() != decoder.units() {
            return Err(RecognizeError::Units { model: config.units(), decoder: decoder.units() });
        }
        let cpu = Device::flex();
        let model = AcousticModel::from_bytes(config, weights, &cpu)?;
        let model = if device == cpu { model } else { model.to_device(&device) };
        Ok(Self { model, device, decoder, mel: LogMel::new(LogMelConfig::default()) })
    }

    /// The same recognizer with its model on `device` (the browser keeps a
    /// CPU and a WebGPU copy side by side).
    pub fn on_device(&self, device: &Device) -> Self {
        Self {
            model: self.model.clone().to_device(device),
            device: device.clone(),
            decoder: self.decoder.clone(),
            mel: LogMel::new(LogMelConfig::default()),
        }
    }

    pub fn decoder(&self) -> &BeamDecoder {
        &self.decoder
    }

    pub fn decoder_mut(&mut self) -> &mut BeamDecoder {
        &mut self.decoder
    }

    /// Normalised log-mel features `[frames, n_mels]` of 16 kHz samples.
    pub fn features(&mut self, samples: &[f32]) -> (Vec<f32>, usize) {
        let features = self.mel.model_features(samples);
        let frames = features.len() / self.mel.config().n_mels;
        (features, frames)
    }

    /// [`Recognizer::features`], and how the utterance sounds
    /// ([`FeatureSummary`], read from the same log-mel before
    /// normalisation) for opt-in drift monitoring: one STFT for both.
    pub fn features_with_summary(&mut self, samples: &[f32]) -> (Vec<f32>, usize, Option<FeatureSummary>) {
        let config = self.mel.config();
        let (n_mels, hop_s) = (config.n_mels, config.hop as f32 / config.sample_rate as f32);
        let mut features = self.mel.compute(samples);
        let summary = FeatureSummary::of(&features, n_mels, hop_s);
        hark_dsp::normalize_utterance(&mut features, n_mels);
        let frames = features.len() / n_mels;
        (features, frames, summary)
    }

    fn input(&self, features: &[f32]) -> Tensor<3> {
        AcousticModel::input(&[features], self.mel.config().n_mels, &self.device)
    }

    /// Per-frame log-probabilities `[frames / 2, Alphabet::SIZE]` (native:
    /// synchronous read-back).
    pub fn log_probs(&self, features: &[f32], frames: usize) -> Result<Vec<f32>, RecognizeError> {
        if frames == 0 {
            return Ok(Vec::new());
        }
        self.model
            .forward(self.input(features))
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| RecognizeError::Output(format!("{e:?}")))
    }

    /// [`Recognizer::log_probs`] with an asynchronous read-back, as WebGPU
    /// requires in the browser.
    pub async fn log_probs_async(&self, features: &[f32], frames: usize) -> Result<Vec<f32>, RecognizeError> {
        if frames == 0 {
            return Ok(Vec::new());
        }
        let data = self
            .model
            .forward(self.input(features))
            .into_data_async()
            .await
            .map_err(|e| RecognizeError::Output(format!("{e:?}")))?;
        data.try_to_vec::<f32>().map_err(|e| RecognizeError::Output(format!("{e:?}")))
    }

    pub fn decode(&self, log_probs: &[f32]) -> Transcript {
        self.decoder.decode(log_probs)
    }

    /// One segment of 16 kHz audio (at most [`MAX_SEGMENT_S`]; longer audio
    /// goes through [`Segmenter`]).
    pub fn recognize_segment(&mut self, samples: &[f32]) -> Result<Transcript, RecognizeError> {
        let (features, frames) = self.features(samples);
        let log_probs = self.log_probs(&features, frames)?;
        Ok(self.decode(&log_probs))
    }

    /// Audio of any length and rate, whole in memory.
    pub fn recognize(&mut self, samples: &[f32], sample_rate: u32) -> Result<Transcript, RecognizeError> {
        let mut segmenter = Segmenter::new(sample_rate)?;
        let mut parts = Vec::new();
        for segment in segmenter.push(samples) {
            parts.push(self.recognize_segment(&segment)?);
        }
        for segment in segmenter.finish() {
            parts.push(self.recognize_segment(&segment)?);
        }
        Ok(join(parts))
    }
}

/// Transcripts of consecutive segments as one (confidence: geometric mean
/// over all words).
pub fn join(parts: Vec<Transcript>) -> Transcript {
    Transcript::from_words(parts.into_iter().flat_map(|t| t.words).collect())
}

/// Streams audio of any rate into 16 kHz segments of at most
/// [`MAX_SEGMENT_S`], each cut at the quietest 10 ms within the last 4 s
/// before the limit, so a cut rarely falls inside a word.
pub struct Segmenter {
    /// Passes 16 kHz input through unchanged.
    resampler: StreamResampler,
    buffer: Vec<f32>,
}

impl Segmenter {
    pub fn new(sample_rate: u32) -> Result<Self, RecognizeError> {
        Ok(Self { resampler: StreamResampler::new(sample_rate, SAMPLE_RATE)?, buffer: Vec::new() })
    }

    /// Feeds samples; returns the segments completed by them.
    pub fn push(&mut self, samples: &[f32]) -> Vec<Vec<f32>> {
        let resampled = self.resampler.push(samples);
        self.buffer.extend_from_slice(&resampled);
        cut_segments(&mut self.buffer)
    }

    /// The remaining segments (none if no audio is left).
    pub fn finish(self) -> Vec<Vec<f32>> {
        let Self { resampler, mut buffer } = self;
        buffer.extend(resampler.finish());
        // The resampler's tail may push the buffer over the limit.
        let mut done = cut_segments(&mut buffer);
        if !buffer.is_empty() {
            done.push(buffer);
        }
        done
    }
}

/// Cuts complete segments (buffer longer than the limit) off the front of
/// `buffer`.
fn cut_segments(buffer: &mut Vec<f32>) -> Vec<Vec<f32>> {
    let max = MAX_SEGMENT_SAMPLES;
    let mut done = Vec::new();
    while buffer.len() > max {
        let cut = quietest_cut(&buffer[..max]);
        done.push(buffer.drain(..cut).collect());
    }
    done
}

/// Index (a frame boundary) of the lowest-energy 10 ms frame in the last 4 s
/// of `window`.
fn quietest_cut(window: &[f32]) -> usize {
    let frame = (SAMPLE_RATE / 100) as usize;
    let search = (4 * SAMPLE_RATE) as usize;
    let start = window.len().saturating_sub(search) / frame * frame;
    let mut best = (f32::INFINITY, window.len());
    let mut i = start;
    while i + frame <= window.len() {
        let energy: f32 = window[i..i + frame].iter().map(|s| s * s).sum();
        if energy < best.0 {
            best = (energy, i + frame / 2);
        }
        i += frame;
    }
    best.1.max(1)
}

/// The model shape a manifest entry records (the default shape when it
/// records none): what every reader of published weights builds before
/// loading them — the CLI, the browser's worker, the benchmarks.
pub fn model_config(architecture: Option<hark_registry::Architecture>) -> AcousticModelConfig {
    let config = AcousticModelConfig::new();
    match architecture {
        Some(a) => config.with_channels(a.channels).with_blocks(a.blocks).with_kernel(a.kernel).with_output(a.units),
        None => config,
    }
}

/// The decoder the product uses: a class-based word trigram LM over queries
/// generated from the training templates and training-split entities, each
/// name replaced by its class token (`weather in <place>`), and the whole
/// searchable catalogue (every entity name of every split, which the
/// product knows as its search index) as the entity list that fills those
/// classes. The drift pool of new names is not included: those arrive later
/// through the entity list.
pub fn corpus_decoder(config: BeamConfig) -> BeamDecoder {
    let corpus = Corpus::load();
    let mut decoder = BeamDecoder::new(config, Some(corpus_lm(&corpus)));
    let catalogue = catalogue(&corpus);
    decoder.set_entities(catalogue.iter().map(|(class, name)| (*class, name.as_str())));
    decoder
}

/// What a published model entry adds to the product decoder
/// ([`corpus_decoder`]): a phone model's pronunciation lexicon, a general
/// English LM interpolated with the voice-search LM, and names for its
/// catalogue (a decoder-only update).
#[derive(Debug, Clone, Default)]
pub struct DecoderExtras {
    pub names: Vec<(String, String)>,
    /// The LM and its weight (shared with the decoders built from these).
    pub general: Option<(Arc<NgramLm>, f32)>,
    /// A phone model's lexicon (required for one: [`Recognizer::new`] checks).
    pub lexicon: Option<Arc<Lexicon>>,
    /// The search settings chosen for the model (beam, α, β).
    pub search: Option<hark_registry::Search>,
}

impl DecoderExtras {
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.general.is_none() && self.lexicon.is_none() && self.search.is_none()
    }

    /// Adds them to `decoder`: the search settings, the lexicon and the
    /// general LM, then the names. Names that [`add_names`] refuses are the only error, and
    /// leave the decoder with everything else applied (a model still
    /// serves without its extra names).
    pub fn apply(&self, decoder: &mut BeamDecoder) -> Result<(), String> {
        if let Some(search) = &self.search {
            decoder.set_config(search_config(search, decoder.config()));
        }
        if let Some(lexicon) = &self.lexicon {
            decoder.set_pronunciations(lexicon.clone());
        }
        if let Some((lm, weight)) = &self.general {
            decoder.set_general_lm(lm.clone(), *weight);
        }
        if !self.names.is_empty() {
            add_names(decoder, &self.names)?;
        }
        Ok(())
    }
}

/// `base` with a manifest entry's search settings.
pub fn search_config(search: &hark_registry::Search, base: &BeamConfig) -> BeamConfig {
    BeamConfig { beam: search.beam as usize, alpha: search.alpha as f32, beta: search.beta as f32, ..base.clone() }
}

/// Adds `extra` names (class, name) to `decoder`'s entity catalogue — a
/// decoder-only update: names the acoustic model was never trained on, read
/// by the class-based LM as their class. Each class must be an open class of
/// the voice-search LM (`person`, `city`, ...); each name must be spellable.
/// Returns how many names are new.
pub fn add_names(decoder: &mut BeamDecoder, extra: &[(String, String)]) -> Result<usize, String> {
    let corpus = Corpus::load();
    let mut names: Vec<(String, String)> = catalogue(&corpus).into_iter().map(|(c, n)| (c.to_owned(), n)).collect();
    let classes: std::collections::BTreeSet<&str> = corpus.open_names().map(|(class, _, _)| class).collect();
    let known: std::collections::HashSet<(String, String)> = names.iter().cloned().collect();
    let mut added = 0;
    for (class, name) in extra {
        if !classes.contains(class.as_str()) {
            let list: Vec<&str> = classes.iter().copied().collect();
            return Err(format!("{class:?} is not a name class of the voice-search LM (one of: {})", list.join(", ")));
        }
        let normalised = normalize(name);
        if normalised.is_empty() || Alphabet::encode(&normalised).is_err() {
            return Err(format!("{name:?} has nothing the model can spell"));
        }
        let pair = (class.clone(), normalised);
        if !known.contains(&pair) {
            added += 1;
            names.push(pair);
        }
    }
    decoder.set_entities(names.iter().map(|(c, n)| (c.as_str(), n.as_str())));
    Ok(added)
}

/// The voice-search LM: a class-based word trigram over 30,000 training
/// queries, names replaced by their class tokens.
pub fn corpus_lm(corpus: &Corpus) -> NgramLm {
    let queries = corpus.generate(Split::Train, 30_000, 0x4c4d);
    // Each open-list name normalised once, not once per query using it.
    let normalised: HashMap<(&str, &str), String> =
        corpus.open_names().map(|(slot, name, _)| ((slot, name), normalize(name))).collect();
    let sentences: Vec<String> = queries.iter().map(|q| class_sentence(&normalised, q)).collect();
    NgramLm::train(sentences.iter().map(String::as_str))
}

/// `query`'s text with each open-list name (a key of `normalised`: slot and
/// name as written) replaced by its class token.
fn class_sentence(normalised: &HashMap<(&str, &str), String>, query: &hark_data::Query) -> String {
    let names: Vec<(&str, &str)> = query
        .entities
        .iter()
        .filter_map(|(slot, name)| {
            normalised.get_key_value(&(slot.as_str(), name.as_str())).map(|((slot, _), n)| (*slot, n.as_str()))
        })
        .collect();
    hark_decode::class_sentence(&query.text, &names)
}

/// Normalised names of every open-class entity in the corpus (all splits),
/// with their class (the corpus slot).
pub fn catalogue(corpus: &Corpus) -> Vec<(&'static str, String)> {
    corpus
        .open_names()
        .map(|(class, name, _)| (class, normalize(name)))
        .filter(|(_, n)| !n.is_empty() && Alphabet::encode(n).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_audio_is_cut_into_bounded_segments_at_quiet_points() {
        // 50 s at 48 kHz: a 220 Hz tone with 300 ms of silence every 3.1 s.
        let rate = 48_000u32;
        let samples: Vec<f32> = (0..50 * rate as usize)
            .map(|i| {
                let t = i as f32 / rate as f32;
                if t % 3.1 < 0.3 { 0.0 } else { 0.3 * (2.0 * std::f32::consts::PI * 220.0 * t).sin() }
            })
            .collect();
        let mut s = Segmenter::new(rate).unwrap();
        let mut segments = Vec::new();
        for chunk in samples.chunks(4096) {
            segments.extend(s.push(chunk));
        }
        segments.extend(s.finish());
        let max = MAX_SEGMENT_SAMPLES;
        assert!(segments.len() >= 3, "{}", segments.len());
        assert!(segments.iter().all(|seg| seg.len() <= max));
        let total: usize = segments.iter().map(Vec::len).sum();
        assert!((total as i64 - 50 * SAMPLE_RATE as i64).abs() < 100, "{total}");
        // Every cut but the last falls in a silent gap.
        let mut at = 0usize;
        for seg in &segments[..segments.len() - 1] {
            at += seg.len();
            let t = at as f32 / SAMPLE_RATE as f32;
            assert!(t % 3.1 < 0.3, "cut at {t} s is inside the tone");
        }
    }

    #[test]
    fn silence_and_tiny_clips_give_empty_transcripts_not_panics() {
        let config = AcousticModelConfig::new().with_channels(16).with_blocks(1);
        let weights = config.init(&Device::flex()).to_bytes().unwrap();
        let decoder = BeamDecoder::new(BeamConfig::default(), None);
        let mut r = Recognizer::new(&config, weights, Device::flex(), decoder).unwrap();
        for samples in [vec![0.0f32; 16_000], vec![0.1; 100], vec![], vec![1.0; 1_600]] {
            let t = r.recognize(&samples, 16_000).unwrap();
            assert!(t.confidence.is_finite());
        }
    }

    #[test]
    fn a_phone_model_is_refused_without_its_lexicon_and_reads_words_with_it() {
        let config =
            AcousticModelConfig::new().with_channels(16).with_blocks(1).with_output(hark_decode::Units::Phones);
        assert_eq!(
            model_config(Some(hark_registry::Architecture {
                channels: 16,
                blocks: 1,
                kernel: 11,
                units: hark_decode::Units::Phones
            }))
            .vocab,
            43
        );
        let weights = config.init(&Device::flex()).to_bytes().unwrap();
        let letters = BeamDecoder::new(BeamConfig::default(), None);
        let refused = Recognizer::new(&config, weights.clone(), Device::flex(), letters.clone()).err().unwrap();
        assert!(refused.to_string().contains("needs its lexicon"), "{refused}");
        let extras = DecoderExtras {
            lexicon: Some(Arc::new(Lexicon::parse("play\tp l ey\n").unwrap())),
            ..DecoderExtras::default()
        };
        let mut decoder = letters;
        extras.apply(&mut decoder).unwrap();
        let mut r = Recognizer::new(&config, weights, Device::flex(), decoder).unwrap();
        assert!(r.recognize(&vec![0.1; 16_000], 16_000).unwrap().confidence.is_finite());
    }

    #[test]
    fn new_names_join_the_catalogue_by_class_and_bad_ones_are_named() {
        let pool = hark_data::corpus::new_names();
        let mut decoder = BeamDecoder::new(BeamConfig::default(), None);
        assert_eq!(add_names(&mut decoder, &pool), Ok(pool.len()));
        let e = add_names(&mut decoder, &[("planet".into(), "zorgon".into())]).unwrap_err();
        assert!(e.starts_with("\"planet\" is not a name class") && e.contains("person"), "{e}");
        let e = add_names(&mut decoder, &[("person".into(), "!!!".into())]).unwrap_err();
        assert!(e.contains("nothing the model can spell"), "{e}");
    }

    #[test]
    fn the_catalogue_covers_every_split_but_not_the_drift_pool() {
        let corpus = Corpus::load();
        let names = catalogue(&corpus);
        assert!(names.len() > 100);
        for (_, name) in hark_data::corpus::new_names() {
            assert!(!names.iter().any(|(_, n)| *n == normalize(&name)), "{name} is in the drift pool");
        }
    }
}
