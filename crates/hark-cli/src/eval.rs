//! `hark eval`: run the shipped recognition pipeline over a corpus and write
//! the error-analysis report (`report.html`, `summary.json`, and every
//! utterance's result in `results.jsonl`).

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::Device;
use hark_data::corpus::VOCABULARY_SLOTS;
use hark_data::manifest::Utterance;
use hark_data::text::NO_TEMPLATE;
use hark_data::{Corpus, Split};
use hark_decode::BeamConfig;
use hark_eval::report::{Scored, Summary};
use hark_recognizer::Recognizer;
use indicatif::{ProgressBar, ProgressStyle};

/// `hark eval`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A model (as for `transcribe`). Default: web/models/manifest.json's current entry.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Corpus folder (holding manifest.jsonl) or the manifest itself.
    #[arg(long)]
    pub data: PathBuf,
    /// Report folder.
    #[arg(long, default_value = "target/eval")]
    pub out: PathBuf,
    /// Utterances sampled from the train split (for the bias/variance table).
    #[arg(long, default_value_t = 600)]
    pub train_sample: usize,
    /// At most this many utterances of dev and of test, and as many of
    /// each free-form half (default: all).
    #[arg(long)]
    pub max_utterances: Option<usize>,
    /// Only the free-form evaluation set (its dev and test halves).
    #[arg(long)]
    pub freeform_only: bool,
    /// Score another recognizer's hypotheses for the same audio beside
    /// hark's: NAME=FILE.jsonl, one {"id","text"} per utterance, optionally
    /// "decode_s" (`cargo xtask bench` writes PocketSphinx's).
    #[arg(long, value_parser = parse_peer)]
    pub peer: Option<(String, PathBuf)>,
    /// A general English LM (`hark lm`) to interpolate with the
    /// voice-search LM.
    #[arg(long)]
    pub general_lm: Option<PathBuf>,
    /// Its interpolation weight (0..1).
    #[arg(long, default_value_t = 0.5)]
    pub general_weight: f32,
    /// Prefixes kept by the beam search [default: the model's published
    /// setting, else 384].
    #[arg(long)]
    pub beam: Option<usize>,
    /// Language-model weight (tune on dev) [default: the model's published
    /// setting, else 1.0].
    #[arg(long)]
    pub alpha: Option<f32>,
    /// Word bonus [default: the model's published setting, else 6].
    #[arg(long, allow_hyphen_values = true)]
    pub beta: Option<f32>,
    /// Penalty per character of a word outside the lexicon.
    #[arg(long, default_value_t = BeamConfig::default().oov_char_penalty, allow_hyphen_values = true)]
    pub oov_char_penalty: f32,
    /// Bonus per name read as its entity class (0: the class LM alone).
    #[arg(long, default_value_t = BeamConfig::default().entity_boost, allow_hyphen_values = true)]
    pub entity_boost: f32,
}

impl Args {
    /// The decoder settings these options ask for, the model's published
    /// ones where they ask for none.
    fn beam(&self, loaded: &crate::model::LoadedModel) -> BeamConfig {
        let base = BeamConfig {
            oov_char_penalty: self.oov_char_penalty,
            entity_boost: self.entity_boost,
            ..BeamConfig::default()
        };
        loaded.search(self.beam, self.alpha, self.beta, base)
    }
}

/// The slices an utterance belongs to.
fn slices(u: &Utterance, corpus: &Corpus) -> Vec<(String, String)> {
    let noise = u.tags.get("noise").cloned().unwrap_or_else(|| "clean".into());
    // The augmentation label ends the id: "...-1-car5db" → "car5db".
    let condition =
        if noise == "clean" { "clean".to_string() } else { u.id.rsplit('-').next().unwrap_or("").to_string() };
    let mut out = vec![
        ("engine".into(), u.engine.clone()),
        ("voice".into(), format!("{} {}", u.engine, u.voice)),
        ("noise".into(), noise),
        ("condition".into(), condition),
        ("template".into(), if u.template == NO_TEMPLATE { "none".into() } else { u.template.to_string() }),
    ];
    if let Some(snr) = u.tags.get("snr") {
        out.push(("snr".into(), snr.clone()));
    }
    let vocabulary = u.entities.iter().any(|(slot, _)| VOCABULARY_SLOTS.contains(&slot.as_str()));
    let source = u.tags.get("text").map(String::as_str);
    let queries = match source {
        _ if hark_data::text::is_freeform(u) => hark_eval::report::FREEFORM,
        Some(_) => "english",
        None if vocabulary => hark_eval::report::VOCABULARY,
        None => "voice search",
    };
    out.push(("queries".into(), queries.into()));
    out.push(("text".into(), source.unwrap_or(if vocabulary { "vocabulary" } else { "template" }).into()));
    let open: Vec<&(String, String)> = u.entities.iter().filter(|(slot, _)| corpus.is_open_slot(slot)).collect();
    let entity = if open.is_empty() {
        "no open-class entity"
    } else if open.iter().all(|(_, name)| Split::of_name(name) == Split::Train) {
        "seen entity"
    } else {
        "unseen entity"
    };
    out.push(("entity".into(), entity.into()));
    out
}

/// A peer's JSONL hypotheses (normalised like hark's references), and its
/// real-time factor over the utterances that report `decode_s`.
fn read_peer(
    path: &std::path::Path,
    utterances: &[Utterance],
) -> anyhow::Result<(std::collections::BTreeMap<String, String>, Option<f64>)> {
    #[derive(serde::Deserialize)]
    struct Line {
        id: String,
        text: Option<String>,
        error: Option<String>,
        decode_s: Option<f64>,
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading the peer's hypotheses {}", path.display()))?;
    let durations: std::collections::HashMap<&str, f64> =
        utterances.iter().map(|u| (u.id.as_str(), u.duration_s as f64)).collect();
    let (mut out, mut decode, mut audio) = (std::collections::BTreeMap::new(), 0.0, 0.0);
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let l: Line = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a {{\"id\",\"text\"}} line", path.display(), i + 1))?;
        if let Some(e) = l.error {
            anyhow::bail!("{}:{}: the peer could not decode {}: {e}", path.display(), i + 1, l.id);
        }
        if let (Some(d), Some(a)) = (l.decode_s, durations.get(l.id.as_str())) {
            decode += d;
            audio += a;
        }
        out.insert(l.id, hark_data::normalize(&l.text.unwrap_or_default()));
    }
    Ok((out, (audio > 0.0).then(|| decode / audio)))
}

pub fn run(o: &Args) -> anyhow::Result<()> {
    let (manifest, root) = crate::flags::corpus_manifest(&o.data);
    let utterances = hark_data::manifest::read(&manifest)?;
    let loaded = crate::model::load(o.model.as_deref())?;
    let config = o.beam(&loaded);
    let mut decoder_text = format!(
        "prefix beam search (beam {}), class-based word trigram LM over training-template queries, names as their class (α {}, β {}), OOV penalty {} + {} per character, entity list = catalogue of all entity names filling the classes (boost {})",
        config.beam, config.alpha, config.beta, config.oov_penalty, config.oov_char_penalty, config.entity_boost
    );
    let mut decoder = loaded.decoder(config)?;
    if !loaded.names.is_empty() {
        decoder_text.push_str(&format!("; {} names added to the catalogue by the model's update", loaded.names.len()));
    }
    if let (None, Some((r, lm))) = (&o.general_lm, &loaded.general_lm) {
        decoder_text.push_str(&format!(
            "; the model's general English LM {} ({} words) interpolated with weight {}",
            r.file.file,
            lm.vocabulary_size(),
            r.weight
        ));
    }
    if let Some(path) = &o.general_lm {
        let general = crate::lm::load(path)?;
        decoder_text.push_str(&format!(
            "; general English LM {} ({} words, {} training tokens) interpolated with weight {}",
            path.display(),
            general.vocabulary_size(),
            general.tokens(),
            o.general_weight
        ));
        decoder.set_general_lm(general, o.general_weight);
    }
    let mut recognizer = Recognizer::new(&loaded.config, loaded.weights, Device::flex(), decoder)?;
    // Which entity slots are open lists (seen/unseen names).
    let corpus = Corpus::load();
    let limit = o.max_utterances.unwrap_or(usize::MAX);
    let mut chosen: Vec<&Utterance> = Vec::new();
    let is_freeform = |u: &&Utterance| hark_data::text::is_freeform(u);
    for split in Split::ALL {
        let of_split = utterances.iter().filter(|u| u.split == split);
        if o.freeform_only {
            chosen.extend(of_split.filter(is_freeform).take(limit));
            continue;
        }
        match split {
            // Evenly spread over the train split (it is ordered by query).
            Split::Train => {
                let all: Vec<&Utterance> = of_split.collect();
                let step = (all.len() / o.train_sample.max(1)).max(1);
                chosen.extend(all.into_iter().step_by(step).take(o.train_sample));
            }
            _ => {
                let (freeform, rest): (Vec<&Utterance>, Vec<&Utterance>) = of_split.partition(is_freeform);
                chosen.extend(rest.into_iter().take(limit));
                chosen.extend(freeform.into_iter().take(limit));
            }
        }
    }
    anyhow::ensure!(
        !o.freeform_only || !chosen.is_empty(),
        "{} holds no free-form evaluation utterances; speak them with `hark data synth --preset standard --splits dev,test`",
        manifest.display()
    );
    std::fs::create_dir_all(&o.out).with_context(|| format!("creating {}", o.out.display()))?;
    let bar = ProgressBar::new(chosen.len() as u64);
    bar.set_style(ProgressStyle::with_template("eval [{bar:40}] {pos}/{len} eta {eta}").expect("static template"));
    let mut scored = Vec::with_capacity(chosen.len());
    let mut lines = String::new();
    for u in chosen {
        let path = root.join(&u.audio);
        let audio = match hark_dsp::wav::read(&path) {
            Ok(a) => a,
            Err(e) => {
                bar.println(format!("skipping {}: {e}", u.id));
                continue;
            }
        };
        let samples = hark_dsp::resample(&audio.samples, audio.sample_rate, hark_dsp::SAMPLE_RATE)?;
        let (features, frames) = recognizer.features(&samples);
        let log_probs = recognizer.log_probs(&features, frames)?;
        let transcript = recognizer.decode(&log_probs);
        let greedy = recognizer.decoder().greedy(&log_probs).text;
        let slices = slices(u, &corpus);
        // The free-form set is reported as splits of its own, so the
        // template splits' figures stay comparable across releases.
        let split = if is_freeform(&u) {
            hark_eval::report::freeform_split_name(u.split.name())
        } else {
            u.split.name().to_owned()
        };
        let s = Scored {
            id: u.id.clone(),
            split,
            slices,
            reference: u.text.clone(),
            hypothesis: transcript.text,
            greedy,
            confidence: transcript.confidence,
        };
        lines.push_str(&serde_json::to_string(&s)?);
        lines.push('\n');
        scored.push(s);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut summary = Summary::build(&loaded.describe, &manifest.display().to_string(), &decoder_text, &scored);
    if let Some((name, path)) = &o.peer {
        let (hypotheses, rtf) = read_peer(path, &utterances)?;
        summary.add_peer(name, &scored, &hypotheses, rtf).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    crate::files::write_atomic(&o.out.join("results.jsonl"), lines.as_bytes())?;
    crate::files::write_atomic(&o.out.join("summary.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    crate::files::write_atomic(&o.out.join("report.html"), summary.html().as_bytes())?;
    for (name, s) in &summary.splits {
        eprintln!(
            "{name:>5}: {:>5} utterances  WER {:5.1} %  (greedy {:5.1} %)  CER {:5.1} %",
            s.utterances,
            100.0 * s.wer,
            100.0 * s.greedy_wer,
            100.0 * s.cer
        );
    }
    if let Some(line) = summary.freeform_line() {
        eprintln!("{line}");
    }
    if let Some(b) = &summary.bars {
        eprintln!(
            "template test split: clean unseen-engine WER {:.1} % (≤ 10 %: {}), car 5 dB WER {:.1} % = {:.2}× clean (≤ 1.5×: {})",
            100.0 * b.clean_unseen_engine_wer,
            if b.clean_met { "met" } else { "NOT met" },
            100.0 * b.car_5db_wer,
            b.car_5db_ratio,
            if b.car_met { "met" } else { "NOT met" }
        );
    }
    eprintln!("report: {}", o.out.join("report.html").display());
    Ok(())
}

/// `NAME=FILE` of `hark eval --peer`.
fn parse_peer(value: &str) -> Result<(String, PathBuf), String> {
    match value.split_once('=') {
        Some((name, file)) if !name.is_empty() && !file.is_empty() => Ok((name.to_owned(), PathBuf::from(file))),
        _ => Err(format!("expected NAME=FILE.jsonl (e.g. pocketsphinx=ps.jsonl), got {value:?}")),
    }
}
