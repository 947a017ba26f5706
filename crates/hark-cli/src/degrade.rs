//! `hark data degrade`: a held-out copy of a split under one fixed
//! recording condition ("dev voices, 10 dB darker, in a car at 5 dB").
//!
//! Error analysis finds a failing slice on test; this writes the dev-side
//! stand-in for it, so that fixes can be chosen on dev without looking at
//! test again. Only clean utterances are copied (a condition on top of an
//! existing noise would not be the condition asked for). Deterministic from
//! the seed and each utterance id; refuses to overwrite an earlier copy.

use std::path::{Path, PathBuf};

use anyhow::Context;
use hark_data::Split;
use hark_data::augment::{Condition, NoiseKind};
use hark_data::corpus::stable_hash;
use hark_data::manifest::{self, Utterance};
use hark_dsp::wav::{self, Audio};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// The background noise of a degraded copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Noise {
    /// Car interior at a speed drawn per utterance (30–130 km/h).
    Car,
    Pink,
    White,
    /// No noise: only --shelf and --lead.
    None,
}

/// `hark data degrade`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Corpus folder (holding manifest.jsonl) or a manifest file.
    #[arg(long)]
    pub data: PathBuf,
    /// Name of the copy (letters, digits, '-', '_'), e.g. dev-car5.
    #[arg(long)]
    pub name: String,
    /// Split to copy (`dev`: choose fixes on dev, measure them on test).
    #[arg(long, default_value = "dev")]
    pub split: Split,
    /// Clean utterances of the split to copy, from the manifest's start.
    #[arg(long, default_value_t = 500)]
    pub max_utterances: usize,
    /// Background noise.
    #[arg(long, value_enum, default_value = "car")]
    pub noise: Noise,
    /// Speech-to-noise ratio in dB.
    #[arg(long, default_value_t = 5.0, allow_hyphen_values = true, value_parser = crate::flags::finite)]
    pub snr: f32,
    /// High shelf at 1 kHz in dB applied to the speech first (negative: darker voices).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true, value_parser = crate::flags::finite)]
    pub shelf: f32,
    /// Silence in seconds put before the speech, with the noise running under it.
    #[arg(long, default_value_t = 0.0, value_parser = crate::flags::seconds)]
    pub lead: f32,
    /// Seed for the noise (each utterance also seeds with its id).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Writes the copy `args` ask for and says where.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let (manifest, root) = crate::flags::corpus_manifest(&args.data);
    let options = Options {
        manifest,
        root,
        name: args.name.clone(),
        split: args.split,
        max_utterances: args.max_utterances,
        noise: args.noise,
        snr_db: args.snr,
        shelf_db: args.shelf,
        lead_s: args.lead,
        seed: args.seed,
    };
    let (path, n) = degrade(&options)?;
    println!("wrote {n} utterances: {}", path.display());
    Ok(())
}

/// [`Args`] lowered: the corpus as manifest and root.
struct Options {
    /// Corpus manifest and the folder its audio paths are relative to.
    pub manifest: PathBuf,
    pub root: PathBuf,
    /// Name of the copy: `manifest-<name>.jsonl` and `audio/<name>/`.
    pub name: String,
    pub split: Split,
    pub max_utterances: usize,
    pub noise: Noise,
    pub snr_db: f32,
    pub shelf_db: f32,
    pub lead_s: f32,
    pub seed: u64,
}

/// Writes the copy; returns the new manifest's path and its utterance count.
fn degrade(o: &Options) -> anyhow::Result<(PathBuf, usize)> {
    if o.name.is_empty() || !o.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        anyhow::bail!("--name {:?}: use letters, digits, '-' and '_' only (it names a file and a folder)", o.name);
    }
    let out_manifest = o.root.join(format!("manifest-{}.jsonl", o.name));
    let out_audio = o.root.join("audio").join(&o.name);
    for existing in [&out_manifest, &out_audio] {
        if existing.exists() {
            anyhow::bail!("{} already exists: pick another --name, or delete it to write it again", existing.display());
        }
    }
    let source = manifest::read(&o.manifest)?;
    let clean: Vec<&Utterance> = source
        .iter()
        .filter(|u| u.split == o.split && u.tags.get("noise").is_none_or(|n| n == "clean"))
        .take(o.max_utterances)
        .collect();
    if clean.is_empty() {
        anyhow::bail!("{} holds no clean {} utterances to degrade", o.manifest.display(), o.split.name());
    }
    std::fs::create_dir_all(&out_audio).with_context(|| format!("creating {}", out_audio.display()))?;
    let copies: Vec<Utterance> =
        clean.par_iter().map(|u| degrade_one(o, u, &out_audio)).collect::<anyhow::Result<_>>()?;
    manifest::write(&out_manifest, &copies)?;
    Ok((out_manifest, copies.len()))
}

/// Reads `u`, applies the condition, writes the WAV; the copy's manifest entry.
fn degrade_one(o: &Options, u: &Utterance, out_audio: &Path) -> anyhow::Result<Utterance> {
    let audio = wav::read(&o.root.join(&u.audio))?;
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed ^ stable_hash(&u.id));
    let noise = match o.noise {
        Noise::Car => Some(NoiseKind::random_car(&mut rng)),
        Noise::Pink => Some(NoiseKind::Pink),
        Noise::White => Some(NoiseKind::White),
        Noise::None => None,
    };
    let condition = Condition { noise, snr_db: o.snr_db, shelf_db: o.shelf_db, lead_s: o.lead_s, trail_s: 0.0 };
    let samples = condition.apply(&audio.samples, &mut rng);
    let id = format!("{}-{}", u.id, o.name);
    let path = out_audio.join(format!("{id}.wav"));
    let degraded = Audio { sample_rate: audio.sample_rate, samples };
    wav::write_pcm16(&path, &degraded).with_context(|| format!("writing {}", path.display()))?;
    let mut copy = u.clone();
    copy.audio = format!("audio/{}/{id}.wav", o.name);
    copy.duration_s = degraded.duration_s() as f32;
    copy.id = id;
    copy.tags = noise.map_or_else(|| [("noise".into(), "clean".into())].into(), |n| n.tags(o.snr_db));
    copy.tags.insert("condition".into(), o.name.clone());
    Ok(copy)
}
