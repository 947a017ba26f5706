//! `hark data synth`: the corpus, spoken and augmented.
//!
//! Two phases, both resumable (an item whose WAV exists is skipped; every WAV
//! is written under a temporary name and renamed, so an interrupted run leaves
//! nothing half-written): (1) speak every planned query with its voice and
//! write 16 kHz mono WAV; (2) make the augmented copies from those files.
//! Then the manifest is rebuilt from every planned item whose audio decodes;
//! a corrupt or empty WAV is reported with its path and skipped.
//! Everything is deterministic from the seed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use hark_data::augment::{self, NoiseKind};
use hark_data::manifest::{self, Stats, Utterance};
use hark_data::text::{self, Source};
use hark_data::{Corpus, Query, Split};
use hark_dsp::wav::{self, Audio};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::voices::{self, Voice};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// A few utterances per split, espeak-ng and flite only: seconds. Used by tests.
    Smoke,
    /// ≥ 20 h of training audio (with augmented copies; ~38 h), dev and test ≥ 1 h.
    Standard,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Smoke => "smoke",
            Preset::Standard => "standard",
        }
    }

    fn spec(self) -> Spec {
        match self {
            Preset::Smoke => Spec {
                queries: [12, 4, 4],
                full: false,
                train_copies: 1,
                added: [0, 0, 0],
                vocabulary: [0, 0, 0],
                vocabulary_copies: 0,
                english: [6, 2, 0],
                freeform: Some(3),
            },
            Preset::Standard => Spec {
                queries: [10_000, 1_200, 1_000],
                full: true,
                train_copies: 3,
                added: [6_000, 400, 0],
                vocabulary: [12_000, 500, 0],
                vocabulary_copies: 1,
                english: [24_000, 1_000, 0],
                freeform: None,
            },
        }
    }
}

/// What a preset speaks. Later data releases only append, so every recording
/// of an earlier release keeps its id and audio.
struct Spec {
    /// Queries per split [train, dev, test] of the first release.
    queries: [usize; 3],
    /// All engines (else espeak-ng and flite only)?
    full: bool,
    /// Augmented copies per training query (dev: one, test: two).
    train_copies: usize,
    /// Queries per split appended by the second release, spoken by
    /// [`voices::added_voices`] (the same query grammar, drawn on).
    added: [usize; 3],
    /// Queries per split of the third (vocabulary) release: many distinct
    /// words and names ([`Corpus::generate_vocabulary`]), spoken by
    /// [`voices::vocabulary_voices`].
    vocabulary: [usize; 3],
    /// Augmented copies per vocabulary training query.
    vocabulary_copies: usize,
    /// Sentences per split of the fourth (English) release: WordNet's
    /// example sentences ([`text::english`]), spoken by every voice of the
    /// split with one augmented copy each (train), the first N in file order.
    english: [usize; 3],
    /// The free-form evaluation set ([`text::freeform`]): every sentence of
    /// its dev and test halves (`None`), or the first N of each (smoke),
    /// clean and with car noise at 5 dB.
    freeform: Option<usize>,
}

/// `hark data synth`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Size: `smoke` (seconds, for tests) or `standard` (≥ 20 h of training audio).
    #[arg(long, default_value = "smoke")]
    pub preset: Preset,
    /// Output folder (audio/ and manifest.jsonl go here). Default: ~/.cache/hark/data/<preset>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed for everything random: queries, voices, augmentation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Parallel synthesizer processes (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Speak only these splits, e.g. `dev,test` to evaluate a model in
    /// minutes without the hours of training audio. The recordings are
    /// the same as a full run's; the manifest lists every recording of
    /// the preset found in the folder, so a later full run (or an
    /// earlier one) keeps its entries.
    #[arg(long, value_delimiter = ',', default_values = ["train", "dev", "test"])]
    pub splits: Vec<Split>,
    /// Speak only every N-th query of each split (with its augmented
    /// copies): a spread sample with the same recordings a full run makes,
    /// e.g. a replay sample for `hark retrain` or a dev sample for `hark
    /// profile`, in minutes instead of hours.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub every: u64,
    /// Speak only these parts of the corpus, e.g. `english` to add the
    /// English release to a corpus whose template queries are there (or
    /// sampled with --every). The recordings are the same as a full run's.
    #[arg(long, value_delimiter = ',', default_values = ["templates", "english", "freeform"])]
    pub parts: Vec<Part>,
}

/// The corpus's parts, by where their text comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// The template queries: voice search (releases 1–2) and vocabulary (release 3).
    Templates,
    /// WordNet's English example sentences (release 4).
    English,
    /// The free-form evaluation set (dev and test halves).
    Freeform,
}

impl Part {
    fn of(source: Option<Source>) -> Part {
        match source {
            None => Part::Templates,
            Some(Source::Wordnet) => Part::English,
            Some(Source::FreeformQuery | Source::FreeformGeneral) => Part::Freeform,
        }
    }
}

/// Speaks what `args` ask for.
pub fn run(args: &Args) -> anyhow::Result<()> {
    speak(&Options {
        preset: args.preset,
        out: args.out.clone().unwrap_or_else(|| crate::flags::cache_dir().join("data").join(args.preset.name())),
        seed: args.seed,
        jobs: args.jobs.unwrap_or_else(crate::flags::default_threads),
        splits: args.splits.clone(),
        every: args.every as usize,
        parts: args.parts.clone(),
    })
}

/// [`Args`] with the defaults filled in.
struct Options {
    pub preset: Preset,
    pub out: PathBuf,
    pub seed: u64,
    pub jobs: usize,
    /// Splits to speak; the others' recordings are only listed if present.
    pub splits: Vec<Split>,
    /// Speak every N-th query of each release (1: all).
    pub every: usize,
    /// Parts to speak.
    pub parts: Vec<Part>,
}

/// One planned utterance: a clean recording, or an augmented copy of one.
#[derive(Debug, Clone)]
struct Item {
    id: String,
    /// The query's number in its split (shared by its augmented copies).
    n: usize,
    split: Split,
    query: Query,
    voice: Voice,
    rate: u32,
    pitch: u32,
    /// `None` for the clean recording; else the augmentation and its source id.
    aug: Option<(Aug, String)>,
    /// Where a text no template produced came from (the manifest's `text` tag).
    source: Option<Source>,
}

/// Which augmented copies a clean recording gets.
#[derive(Debug, Clone, Copy)]
enum Copies {
    /// The template releases': `n` random ones in train, one in dev, car
    /// 5 dB and one other noise in test.
    Standard(usize),
    /// The free-form set's: car noise at 5 dB, the bar's condition.
    Car5,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Aug {
    Noise { kind: NoiseKind, snr_db: f32 },
    Telephone,
    Reverb { rt60_s: f32 },
    Speed(f32),
    Gain(f32),
}

impl Aug {
    fn tags(&self) -> BTreeMap<String, String> {
        let mut t = BTreeMap::new();
        match self {
            Aug::Noise { kind, snr_db } => t = kind.tags(*snr_db),
            Aug::Telephone => {
                t.insert("channel".into(), "telephone".into());
            }
            Aug::Reverb { .. } => {
                t.insert("channel".into(), "reverb".into());
            }
            Aug::Speed(f) => {
                t.insert("aug".into(), format!("speed{f}"));
            }
            Aug::Gain(_) => {
                t.insert("aug".into(), "gain".into());
            }
        }
        t
    }

    fn label(&self) -> String {
        match self {
            Aug::Noise { kind, snr_db } => format!("{}{:.0}db", kind.tag(), snr_db),
            Aug::Telephone => "tel".into(),
            Aug::Reverb { rt60_s } => format!("rev{:.0}", rt60_s * 100.0),
            Aug::Speed(f) => format!("sp{:.0}", f * 100.0),
            Aug::Gain(db) => format!("gain{db:.0}"),
        }
    }
}

fn item_rng(seed: u64, id: &str) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ hark_data::corpus::stable_hash(id))
}

fn plan(options: &Options) -> Vec<Item> {
    let spec = options.preset.spec();
    let corpus = Corpus::load();
    let mut items = Vec::new();
    for (i, split) in Split::ALL.into_iter().enumerate() {
        let (count, added) = (spec.queries[i], spec.added[i]);
        let (first, later) = (voices::voices(split, spec.full), voices::added_voices(split));
        // Queries are drawn as one sequence, so the first release's `count`
        // stay the same queries (and recordings) when more are appended.
        for (n, query) in corpus.generate(split, count + added, options.seed).into_iter().enumerate() {
            let voices = if n < count { &first } else { &later };
            items.extend(plan_query(options.seed, n, query, voices, Copies::Standard(spec.train_copies), None));
        }
        // The vocabulary release is numbered after both.
        let voices = voices::vocabulary_voices(split);
        let vocabulary = corpus.generate_vocabulary(split, spec.vocabulary[i], options.seed);
        for (j, query) in vocabulary.into_iter().enumerate() {
            let copies = Copies::Standard(spec.vocabulary_copies);
            items.extend(plan_query(options.seed, count + added + j, query, &voices, copies, None));
        }
        // The English release (4) and the free-form evaluation set follow.
        let mut n = count + added + spec.vocabulary[i];
        let every_voice = voices::every(split, spec.full);
        for query in text::english(split).into_iter().take(spec.english[i]) {
            items.extend(plan_query(options.seed, n, query, &every_voice, Copies::Standard(1), Some(Source::Wordnet)));
            n += 1;
        }
        let mut freeform = text::freeform(split);
        if let Some(each) = spec.freeform {
            // Some of both kinds.
            let (queries, general): (Vec<_>, Vec<_>) =
                freeform.into_iter().partition(|(s, _)| *s == Source::FreeformQuery);
            freeform = queries.into_iter().take(each).chain(general.into_iter().take(each)).collect();
        }
        for (source, query) in freeform {
            items.extend(plan_query(options.seed, n, query, &every_voice, Copies::Car5, Some(source)));
            n += 1;
        }
    }
    items
}

/// Query `n` of its split: the clean recording by a voice drawn from
/// `voices`, then its augmented `copies`.
fn plan_query(
    seed: u64,
    n: usize,
    query: Query,
    voices: &[Voice],
    copies: Copies,
    source: Option<Source>,
) -> Vec<Item> {
    let split = query.split;
    let mut rng = item_rng(seed, &format!("{}-{n}", split.name()));
    let voice = voices[rng.random_range(0..voices.len())].clone();
    let (rate, pitch) = if voice.engine.varies_pitch() {
        (rng.random_range(130..=200), rng.random_range(30..=70))
    } else {
        (rng.random_range(140..=180), 50)
    };
    let id = format!("{}-{n:06}-{}-{}", split.name(), voice.engine.name(), voice.name.replace('+', "_"));
    let clean = Item { id: id.clone(), n, split, query, voice, rate, pitch, aug: None, source };
    let car5 = |rng: &mut ChaCha8Rng| Aug::Noise {
        kind: NoiseKind::Car { speed_kmh: rng.random_range(50.0..120.0) },
        snr_db: 5.0,
    };
    let augs: Vec<Aug> = match (copies, split) {
        (Copies::Car5, _) => vec![car5(&mut rng)],
        (Copies::Standard(train_copies), Split::Train) => (0..train_copies).map(|_| random_aug(&mut rng)).collect(),
        (Copies::Standard(_), Split::Dev) => vec![random_aug(&mut rng)],
        // The bar: car noise at 5 dB SNR against clean. Plus one other noise.
        (Copies::Standard(_), Split::Test) => vec![car5(&mut rng), random_noise(&mut rng)],
    };
    let mut items = vec![clean.clone()];
    for (j, aug) in augs.into_iter().enumerate() {
        let mut copy = clean.clone();
        // The index keeps ids unique when two copies get the same label.
        copy.id = format!("{id}-{j}-{}", aug.label());
        copy.aug = Some((aug, id.clone()));
        items.push(copy);
    }
    items
}

fn random_noise(rng: &mut ChaCha8Rng) -> Aug {
    let kind = match rng.random_range(0..4) {
        0 | 1 => NoiseKind::Car { speed_kmh: rng.random_range(30.0..130.0) },
        2 => NoiseKind::Babble,
        _ => {
            if rng.random_bool(0.5) {
                NoiseKind::Pink
            } else {
                NoiseKind::White
            }
        }
    };
    Aug::Noise { kind, snr_db: rng.random_range(0.0..20.0) }
}

/// The mix of augmentations for training copies; car noise, the product's
/// classic failure, is the most common.
fn random_aug(rng: &mut ChaCha8Rng) -> Aug {
    match rng.random_range(0..20) {
        0..=9 => random_noise(rng),
        10..=11 => Aug::Telephone,
        12..=14 => Aug::Reverb { rt60_s: rng.random_range(0.2..0.8) },
        15..=17 => Aug::Speed(if rng.random_bool(0.5) { 0.9 } else { 1.1 }),
        _ => Aug::Gain(rng.random_range(-12.0..6.0)),
    }
}

fn audio_path(out: &Path, item: &Item) -> PathBuf {
    out.join("audio").join(item.split.name()).join(format!("{}.wav", item.id))
}

fn speak(options: &Options) -> anyhow::Result<()> {
    // The whole preset is planned (queries, voices and noises are drawn in
    // one sequence), then only the chosen splits are spoken.
    let items = plan(options);
    let chosen = |item: &&Item| {
        options.splits.contains(&item.split)
            && options.parts.contains(&Part::of(item.source))
            && item.n % options.every == 0
    };
    // Exactly the voices the plan speaks with must be installed.
    let mut used: Vec<Voice> = Vec::new();
    for item in items.iter().filter(chosen) {
        if !used.contains(&item.voice) {
            used.push(item.voice.clone());
        }
    }
    voices::check_installed(&used)?;
    for split in Split::ALL {
        std::fs::create_dir_all(options.out.join("audio").join(split.name()))
            .with_context(|| format!("creating {}", options.out.display()))?;
    }
    std::fs::create_dir_all(options.out.join("tmp"))?;
    let started = std::time::Instant::now();

    let (clean, copies): (Vec<&Item>, Vec<&Item>) = items.iter().filter(chosen).partition(|i| i.aug.is_none());
    let done1 = parallel("speaking", &clean, options.jobs, |item| speak_item(options, item))?;
    let sources = index_by_split(&clean, &options.out);
    let done2 = parallel("augmenting", &copies, options.jobs, |item| augment_item(options, item, &sources))?;
    let _ = std::fs::remove_dir(options.out.join("tmp"));

    // Manifest: every planned item whose audio decodes (of a split not
    // spoken this time: whose audio is there).
    let mut utterances = Vec::with_capacity(items.len());
    let mut skipped = 0;
    for item in &items {
        let path = audio_path(&options.out, item);
        if !chosen(&item) && !path.exists() {
            continue;
        }
        match wav::read(&path) {
            Ok(audio) => utterances.push(utterance(item, &audio)),
            Err(e) => {
                eprintln!("skipping: {e}");
                skipped += 1;
            }
        }
    }
    let manifest_path = options.out.join("manifest.jsonl");
    manifest::write(&manifest_path, &utterances)?;
    eprintln!(
        "{} made, {} already there, {skipped} skipped (unreadable audio), in {:.1} s; manifest: {}",
        done1.made + done2.made,
        done1.existing + done2.existing,
        started.elapsed().as_secs_f32(),
        manifest_path.display()
    );
    print!("{}", Stats::of(&utterances).table());
    Ok(())
}

#[derive(Default)]
struct Done {
    made: usize,
    existing: usize,
}

/// Runs `work` over `items` on `jobs` threads with a progress bar. `work`
/// returns whether it made the file (false: it already existed).
fn parallel(
    what: &str,
    items: &[&Item],
    jobs: usize,
    work: impl Fn(&Item) -> anyhow::Result<bool> + Sync,
) -> anyhow::Result<Done> {
    let bar = ProgressBar::new(items.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {per_sec} eta {eta}").expect("static template"),
    );
    bar.set_message(what.to_owned());
    let next = AtomicUsize::new(0);
    let made = AtomicUsize::new(0);
    let first_error = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() || first_error.lock().unwrap().is_some() {
                        break;
                    }
                    match work(items[i]) {
                        Ok(true) => {
                            made.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(false) => {}
                        Err(e) => {
                            first_error.lock().unwrap().get_or_insert(e.context(format!("item {}", items[i].id)));
                        }
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    if let Some(e) = first_error.into_inner().unwrap() {
        return Err(e);
    }
    let made = made.into_inner();
    Ok(Done { made, existing: items.len() - made })
}

/// Speaks one clean item: synthesizer → resample to 16 kHz → peak −1 dBFS.
fn speak_item(options: &Options, item: &Item) -> anyhow::Result<bool> {
    let path = audio_path(&options.out, item);
    if path.exists() {
        return Ok(false);
    }
    let raw = options.out.join("tmp").join(format!("{}.wav", item.id));
    let samples = voices::speak_16k(&item.voice, &item.query.text, item.rate, item.pitch, &raw)?;
    wav::write_pcm16(&path, &Audio { sample_rate: hark_dsp::SAMPLE_RATE, samples })?;
    Ok(true)
}

/// Clean recordings per split, for babble.
fn index_by_split(clean: &[&Item], out: &Path) -> BTreeMap<Split, Vec<PathBuf>> {
    let mut map: BTreeMap<Split, Vec<PathBuf>> = BTreeMap::new();
    for item in clean {
        map.entry(item.split).or_default().push(audio_path(out, item));
    }
    map
}

fn augment_item(options: &Options, item: &Item, sources: &BTreeMap<Split, Vec<PathBuf>>) -> anyhow::Result<bool> {
    let path = audio_path(&options.out, item);
    if path.exists() {
        return Ok(false);
    }
    let (aug, source_id) = item.aug.as_ref().expect("augment_item gets augmented items");
    let source = options.out.join("audio").join(item.split.name()).join(format!("{source_id}.wav"));
    let speech = wav::read(&source)?.samples;
    let mut rng = item_rng(options.seed, &item.id);
    let samples = match aug {
        Aug::Noise { kind, snr_db } => {
            let n = speech.len();
            let noise = match kind {
                NoiseKind::Car { speed_kmh } => augment::car(n, *speed_kmh, &mut rng),
                NoiseKind::White => augment::white(n, &mut rng),
                NoiseKind::Pink => augment::pink(n, &mut rng),
                NoiseKind::Babble => {
                    let pool = &sources[&item.split];
                    let voices: Vec<Vec<f32>> = (0..5)
                        .map(|_| pool[rng.random_range(0..pool.len())].as_path())
                        .filter(|p| *p != source.as_path())
                        .filter_map(|p| wav::read(p).ok().map(|a| a.samples))
                        .collect();
                    let refs: Vec<&[f32]> = voices.iter().map(Vec::as_slice).collect();
                    augment::babble(n, &refs, refs.len(), &mut rng)
                }
            };
            augment::mix_at_snr(&speech, &noise, *snr_db)
        }
        Aug::Telephone => augment::telephone(&speech),
        Aug::Reverb { rt60_s } => augment::reverb(&speech, *rt60_s, &mut rng),
        Aug::Speed(f) => augment::speed(&speech, *f),
        Aug::Gain(db) => augment::gain(&speech, *db),
    };
    wav::write_pcm16(&path, &Audio { sample_rate: hark_dsp::SAMPLE_RATE, samples })?;
    Ok(true)
}

fn utterance(item: &Item, audio: &Audio) -> Utterance {
    let audio_rel = audio_path(Path::new(""), item).to_string_lossy().into_owned();
    let mut tags = item.aug.as_ref().map(|(a, _)| a.tags()).unwrap_or_default();
    tags.entry("noise".into()).or_insert_with(|| "clean".into());
    if let Some(source) = item.source {
        tags.insert("text".into(), source.name().into());
    }
    Utterance {
        id: item.id.clone(),
        audio: audio_rel,
        text: item.query.text.clone(),
        split: item.split,
        engine: item.voice.engine.name().into(),
        voice: item.voice.name.clone(),
        rate: item.rate,
        pitch: item.pitch,
        duration_s: audio.duration_s() as f32,
        template: item.query.template,
        entities: item.query.entities.clone(),
        tags,
    }
}
