//! Decode time of a 5 s utterance on one core: front end, acoustic model and
//! beam search with the language model, as `hark transcribe` and the browser
//! run them. Bar (issue 4): ≤ 1 % of the audio, i.e. ≤ 50 ms.
//!
//! Uses the shipped model (web/models/manifest.json's current entry); with
//! none published yet, a randomly initialised default-shape model (the
//! model's cost does not depend on its weights; the beam search is faster on
//! a trained model's peaky output). `beam_search_general_lm/W` adds the
//! general English LM at weight W (what a model published with
//! `--general-lm` decodes with). `phone_model/…` decodes the same audio
//! with the candidate phone model `docs/models/ph3` (issue 18) reading words
//! through its 79 k-word lexicon and PocketSphinx's US English LM as
//! `cargo xtask lm` writes it (`target/english.lm`; without it, that part is
//! skipped with a message), at the settings tuned for it. Run through
//! `cargo xtask bench`, which pins it to one core (RAYON_NUM_THREADS=1,
//! taskset).

use std::path::Path;

use burn::config::Config;
use burn::tensor::Device;
use criterion::{Criterion, criterion_group, criterion_main};
use hark_decode::BeamConfig;
use hark_model::AcousticModelConfig;
use hark_recognizer::{Recognizer, corpus_decoder};

fn shipped_model() -> (AcousticModelConfig, Vec<u8>, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/models");
    let manifest =
        std::fs::read_to_string(dir.join("manifest.json")).ok().and_then(|t| hark_registry::Manifest::parse(&t).ok());
    let entry = manifest.and_then(|m| {
        m.choose(hark_registry::Version::new(u32::MAX, 0, 0), hark_registry::Channel::Stable, 0).cloned()
    });
    if let Some(e) = entry
        && let Ok(bytes) = std::fs::read(dir.join(&e.file))
    {
        let config = hark_recognizer::model_config(e.architecture);
        return (config, bytes, format!("model {}", e.version));
    }
    let config = AcousticModelConfig::new();
    let bytes = config.init(&Device::flex()).to_bytes().expect("weights serialise");
    (config, bytes, "untrained default-shape model (no model published)".into())
}

fn bench(c: &mut Criterion) {
    let audio = hark_dsp::wav::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/five_seconds.wav"))
        .expect("testdata");
    assert_eq!(audio.sample_rate, 16_000);
    let (config, weights, what) = shipped_model();
    eprintln!("decode benchmark with {what}, {:.2} s of audio", audio.duration_s());
    let mut r =
        Recognizer::new(&config, weights, Device::flex(), corpus_decoder(BeamConfig::default())).expect("model loads");
    let mut group = c.benchmark_group("decode_5s");
    group.bench_function("features", |b| b.iter(|| r.features(&audio.samples)));
    let (features, frames) = r.features(&audio.samples);
    group.bench_function("acoustic_model", |b| b.iter(|| r.log_probs(&features, frames).expect("forward")));
    let log_probs = r.log_probs(&features, frames).expect("forward");
    group.bench_function("beam_search_lm", |b| b.iter(|| r.decode(&log_probs)));
    // The search alone at other widths (the shipped width is the default's).
    let decoder = corpus_decoder(BeamConfig::default());
    for beam in [16, 32, 64, 128] {
        let d = decoder.clone().with_config(BeamConfig { beam, ..BeamConfig::default() });
        group.bench_function(format!("beam_width/{beam}"), |b| b.iter(|| d.decode(&log_probs)));
    }
    // With the general English LM interpolated (what `hark publish
    // --general-lm` ships; built here as `hark lm` builds it), at the weight
    // tuned for the letter model and at a heavier one.
    let english = hark_data::text::english(hark_data::Split::Train);
    let general = hark_decode::NgramLm::train(english.iter().map(|q| q.text.as_str()));
    let general = std::sync::Arc::new(hark_decode::NgramLm::from_bytes(&general.to_bytes(2)).expect("LM bytes"));
    for weight in [0.1, 0.6] {
        let mut d = decoder.clone();
        d.set_general_lm(general.clone(), weight);
        group.bench_function(format!("beam_search_general_lm/{weight}"), |b| b.iter(|| d.decode(&log_probs)));
    }
    group.bench_function("end_to_end", |b| b.iter(|| r.recognize(&audio.samples, 16_000).expect("recognize")));
    phone_model(&mut group, &audio.samples);
    group.finish();
}

/// The phone model's search and whole decode, when its general LM is built.
fn phone_model(group: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>, samples: &[f32]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (dir, lm) = (root.join("docs/models/ph3"), root.join("target/english.lm"));
    let Ok(lm) = std::fs::read(&lm) else {
        eprintln!("phone_model: skipped, {} is missing (`cargo xtask lm` writes it)", lm.display());
        return;
    };
    let general = hark_decode::NgramLm::from_bytes(&lm).expect("target/english.lm is a hark LM");
    let config = hark_model::AcousticModelConfig::load(dir.join("config.json")).expect("ph3's config");
    let weights = std::fs::read(dir.join("model.bpk")).expect("ph3's weights");
    let lexicon = std::fs::read_to_string(dir.join("lexicon.txt")).expect("ph3's lexicon");
    // The setting `hark tune --freeform` chose for it (docs/models/lineage.md).
    let search = BeamConfig { alpha: 0.8, beta: 1.0, ..BeamConfig::default() };
    let extras = hark_recognizer::DecoderExtras {
        general: Some((std::sync::Arc::new(general), 0.6)),
        lexicon: Some(std::sync::Arc::new(hark_decode::Lexicon::parse(&lexicon).expect("ph3's lexicon parses"))),
        ..Default::default()
    };
    let mut decoder = corpus_decoder(search);
    extras.apply(&mut decoder).expect("no names to refuse");
    let mut r = Recognizer::new(&config, weights, Device::flex(), decoder).expect("ph3 loads");
    let (features, frames) = r.features(samples);
    let log_probs = r.log_probs(&features, frames).expect("forward");
    group.bench_function("phone_model/acoustic_model", |b| b.iter(|| r.log_probs(&features, frames).expect("forward")));
    group.bench_function("phone_model/beam_search_general_lm", |b| b.iter(|| r.decode(&log_probs)));
    group.bench_function("phone_model/end_to_end", |b| b.iter(|| r.recognize(samples, 16_000).expect("recognize")));
}

criterion_group!(benches, bench);
criterion_main!(benches);
