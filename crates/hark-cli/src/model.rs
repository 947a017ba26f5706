//! Finding the acoustic model a command should use.
//!
//! `--model` may name a training run folder (its `config.json` and
//! `best.bpk`, else the checkpoint its `progress.json` points at), a weights file (`.bpk`, with a
//! `config.json` beside it or the default shape), or a `manifest.json` (its
//! current stable entry, sha256-checked, with the names its entry adds to
//! the decoder). Without `--model`: the current entry of
//! `web/models/manifest.json`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use hark_model::AcousticModelConfig;
use hark_registry::{Channel, Manifest, Version};

pub struct LoadedModel {
    pub config: AcousticModelConfig,
    pub weights: Vec<u8>,
    /// What was loaded, for messages and reports.
    pub describe: String,
    /// Names (class, name) the model's manifest entry adds to the decoder's
    /// catalogue (a decoder-only update), or that `--names` gave.
    pub names: Vec<(String, String)>,
    /// The general English LM the model's manifest entry names, read and
    /// checked: the entry's reference and the LM.
    pub general_lm: Option<(hark_registry::GeneralLm, Arc<hark_decode::NgramLm>)>,
    /// A phone model's pronunciation lexicon (`lexicon.txt` of its run
    /// folder or beside its weights, or its manifest entry's `lexicon`).
    pub lexicon: Option<Arc<hark_decode::Lexicon>>,
    /// The search settings its manifest entry records, if any.
    pub search: Option<hark_registry::Search>,
}

impl LoadedModel {
    /// Adds names to the decoder's catalogue. A phone model hears a word only
    /// through a pronunciation, so the words of `extra` its lexicon lacks get
    /// festival's ([`crate::lexicon::pronounce`]); the grown lexicon is what
    /// the decoder reads and what `hark publish` ships.
    pub fn add_names(&mut self, extra: Vec<(String, String)>) -> anyhow::Result<()> {
        if let Some(lexicon) = &self.lexicon {
            let missing: std::collections::BTreeSet<&str> =
                extra.iter().flat_map(|(_, name)| name.split_whitespace()).filter(|w| !lexicon.contains(w)).collect();
            if !missing.is_empty() {
                let missing: Vec<&str> = missing.into_iter().collect();
                let heard = crate::lexicon::pronounce(&missing)
                    .with_context(|| format!("pronouncing the new names' words for {}", self.describe))?;
                let mut grown = (**lexicon).clone();
                for (word, phones) in heard.entries() {
                    grown.insert(word, phones.clone());
                }
                self.lexicon = Some(Arc::new(grown));
            }
        }
        self.names.extend(extra);
        Ok(())
    }

    /// The search settings to decode with: each one given (a command's
    /// flag), else the model's manifest entry's, else `base`'s.
    pub fn search(
        &self,
        beam: Option<usize>,
        alpha: Option<f32>,
        beta: Option<f32>,
        base: hark_decode::BeamConfig,
    ) -> hark_decode::BeamConfig {
        let published = self.search.map_or(base.clone(), |s| hark_recognizer::search_config(&s, &base));
        hark_decode::BeamConfig {
            beam: beam.unwrap_or(published.beam),
            alpha: alpha.unwrap_or(published.alpha),
            beta: beta.unwrap_or(published.beta),
            ..published
        }
    }

    /// The decoder this model ships with (at the search settings `config`,
    /// see [`LoadedModel::search`]): the voice-search LM and entity
    /// catalogue, plus the model's own lexicon, names and general LM.
    pub fn decoder(&self, config: hark_decode::BeamConfig) -> anyhow::Result<hark_decode::BeamDecoder> {
        let mut decoder = hark_recognizer::corpus_decoder(config);
        if self.config.units() == hark_decode::Units::Phones && self.lexicon.is_none() {
            bail!("{} is a phone model, and no lexicon.txt lies beside it (`hark lexicon` builds one)", self.describe)
        }
        // What the browser's worker applies too ([`hark_recognizer::DecoderExtras`]).
        let extras = hark_recognizer::DecoderExtras {
            names: self.names.clone(),
            general: self.general_lm.as_ref().map(|(r, lm)| (lm.clone(), r.weight as f32)),
            lexicon: self.lexicon.clone(),
            search: None,
        };
        extras.apply(&mut decoder).map_err(|e| anyhow::anyhow!("the names of {}: {e}", self.describe))?;
        Ok(decoder)
    }
}

/// A names file: `CLASS<TAB>NAME` lines (the format of
/// `corpus/new_names.txt`; `#` starts a comment) or a published
/// `names-VERSION.json`.
pub fn read_names(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the names file {}", path.display()))?;
    if text.trim_start().starts_with('{') {
        let list =
            hark_registry::NameList::parse(text.as_bytes()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        return Ok(list.pairs());
    }
    let mut names = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let Some((class, name)) =
            line.split_once('\t').map(|(c, n)| (c.trim(), n.trim())).filter(|(c, n)| !c.is_empty() && !n.is_empty())
        else {
            bail!(
                "{}:{}: expected CLASS<TAB>NAME (e.g. \"person\tzorina kaltvedt\"), got {line:?}",
                path.display(),
                i + 1
            );
        };
        names.push((class.to_owned(), name.to_owned()));
    }
    anyhow::ensure!(!names.is_empty(), "{} lists no names", path.display());
    Ok(names)
}

/// Where the repository's published models live: `web/models` under the
/// current directory, else the one this binary was built from.
pub fn default_models_dir() -> PathBuf {
    let here = PathBuf::from("web/models");
    if here.join("manifest.json").is_file() {
        return here;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/models"))
}

pub fn load(path: Option<&Path>) -> anyhow::Result<LoadedModel> {
    let path = path.map(Path::to_path_buf).unwrap_or_else(|| default_models_dir().join("manifest.json"));
    if path.is_dir() {
        let config = read_config(&path.join("config.json"))?;
        let weights = match path.join("best.bpk") {
            best if best.is_file() => best,
            _ => latest_checkpoint(&path)?,
        };
        let bytes = std::fs::read(&weights).with_context(|| format!("reading {}", weights.display()))?;
        return Ok(LoadedModel {
            lexicon: read_lexicon(&path.join(crate::train::LEXICON))?,
            config,
            weights: bytes,
            describe: weights.display().to_string(),
            names: Vec::new(),
            general_lm: None,
            search: None,
        });
    }
    if path.extension().is_some_and(|e| e == "json") {
        return from_manifest(&path);
    }
    let bytes = std::fs::read(&path).with_context(|| format!("reading model weights {}", path.display()))?;
    let beside = path.with_file_name("config.json");
    let config = if beside.is_file() { read_config(&beside)? } else { AcousticModelConfig::new() };
    Ok(LoadedModel {
        lexicon: read_lexicon(&path.with_file_name(crate::train::LEXICON))?,
        config,
        weights: bytes,
        describe: path.display().to_string(),
        names: Vec::new(),
        general_lm: None,
        search: None,
    })
}

/// The checkpoint a run's `progress.json` points at (a run stopped before
/// its first epoch ended has no `best.bpk` yet).
fn latest_checkpoint(run: &Path) -> anyhow::Result<PathBuf> {
    #[derive(serde::Deserialize)]
    struct Progress {
        step: usize,
    }
    let progress = run.join("progress.json");
    let Ok(text) = std::fs::read_to_string(&progress) else {
        bail!("{} holds no best.bpk or progress.json; is it a `hark train --out` folder?", run.display());
    };
    let step = serde_json::from_str::<Progress>(&text).with_context(|| format!("reading {}", progress.display()))?.step;
    let state = run.join(format!("state-{step}.bpk"));
    anyhow::ensure!(state.is_file(), "{} points at {}, which is missing", progress.display(), state.display());
    Ok(state)
}

fn read_config(path: &Path) -> anyhow::Result<AcousticModelConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a model config", path.display()))
}

fn from_manifest(path: &Path) -> anyhow::Result<LoadedModel> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let manifest = Manifest::parse(&text).with_context(|| format!("in {}", path.display()))?;
    let app: Version = env!("CARGO_PKG_VERSION").parse().context("the app's own version")?;
    let Some(entry) = manifest.choose(app, Channel::Stable, 0) else {
        bail!("{} lists no model for this app version; train one (`hark train`) and pass --model", path.display());
    };
    let file = path.parent().unwrap_or(Path::new(".")).join(&entry.file);
    let bytes =
        std::fs::read(&file).with_context(|| format!("reading {} (model {})", file.display(), entry.version))?;
    hark_registry::verify_sha256(entry, &bytes)?;
    let config = hark_recognizer::model_config(entry.architecture);
    let dir = path.parent().unwrap_or(Path::new("."));
    let names = match &entry.names {
        Some(names) => {
            let (file, bytes) = read_checked(dir, names, &format!("the names of model {}", entry.version))?;
            hark_registry::NameList::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?.pairs()
        }
        None => Vec::new(),
    };
    let general_lm = match &entry.general_lm {
        Some(general) => {
            let what = format!("the general LM of model {}", entry.version);
            let (file, bytes) = read_checked(dir, &general.file, &what)?;
            let lm = hark_decode::NgramLm::from_bytes(&bytes).with_context(|| file.display().to_string())?;
            Some((general.clone(), Arc::new(lm)))
        }
        None => None,
    };
    let lexicon = match &entry.lexicon {
        Some(lexicon) => {
            let (file, bytes) = read_checked(dir, lexicon, &format!("the lexicon of model {}", entry.version))?;
            let text = String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", file.display()))?;
            Some(Arc::new(hark_decode::Lexicon::parse(&text).with_context(|| file.display().to_string())?))
        }
        None => None,
    };
    let describe = format!("model {} ({})", entry.version, file.display());
    Ok(LoadedModel { config, weights: bytes, describe, names, general_lm, lexicon, search: entry.search })
}

/// The lexicon at `path`, if there is one.
fn read_lexicon(path: &Path) -> anyhow::Result<Option<Arc<hark_decode::Lexicon>>> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(None) };
    let lexicon = hark_decode::Lexicon::parse(&text).with_context(|| path.display().to_string())?;
    Ok(Some(Arc::new(lexicon)))
}

/// A file a manifest entry names (`what` it is, for messages), read from the
/// manifest's folder `dir` and checked against its sha256.
fn read_checked(dir: &Path, file: &hark_registry::FileRef, what: &str) -> anyhow::Result<(PathBuf, Vec<u8>)> {
    let path = dir.join(&file.file);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {} ({what})", path.display()))?;
    file.check(&bytes).map_err(|e| anyhow::anyhow!("in {}: {e} ({what})", dir.display()))?;
    Ok((path, bytes))
}
