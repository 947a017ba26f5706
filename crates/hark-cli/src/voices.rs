//! The synthetic voices and which split each belongs to.
//!
//! Split by voice: dev voices never speak training data, and the test split is
//! spoken by an engine (flite) never used in training. Voices that share a
//! speaker across engines are kept on one side: flite's `kal` is the same
//! diphone speaker as festival's `kal_diphone` (train), so flite's test voices
//! are `awb`, `rms` and `slt`; festival's `cmu_us_slt_arctic_hts` (the flite
//! `slt` speaker) is not used at all.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use hark_data::Split;

/// A synthesizer and one of its voices.
#[derive(Debug, Clone, PartialEq)]
pub struct Voice {
    pub engine: Engine,
    /// Engine-specific voice name (`en-us+f3`, `mb-us1`, `slt`, `kal_diphone`).
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Espeak,
    Mbrola,
    Flite,
    Festival,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Espeak => "espeak-ng",
            Engine::Mbrola => "mbrola",
            Engine::Flite => "flite",
            Engine::Festival => "festival",
        }
    }

    /// Whether rate and pitch can be varied per utterance.
    pub fn varies_pitch(self) -> bool {
        matches!(self, Engine::Espeak | Engine::Mbrola)
    }
}

const ESPEAK_TRAIN_ACCENTS: &[&str] = &["en-us", "en-gb", "en-gb-x-rp", "en-us-nyc", "en-gb-x-gbclan"];
const ESPEAK_DEV_ACCENTS: &[&str] = &["en-gb-scotland", "en-029"];
const ESPEAK_TRAIN_VARIANTS: &[&str] = &["", "+m1", "+m3", "+m5", "+f1", "+f3", "+f5", "+klatt"];
const ESPEAK_DEV_VARIANTS: &[&str] = &["+m2", "+f2"];

/// Voices of `split`. `full` adds the engines that need extra Debian packages
/// (MBROLA voices, festival); the smoke preset uses espeak-ng and flite only.
pub fn voices(split: Split, full: bool) -> Vec<Voice> {
    let espeak = |accents: &[&str], variants: &[&str]| -> Vec<Voice> {
        accents
            .iter()
            .flat_map(|a| variants.iter().map(move |v| Voice { engine: Engine::Espeak, name: format!("{a}{v}") }))
            .collect()
    };
    let named = |engine, names: &[&str]| -> Vec<Voice> {
        names.iter().map(|n| Voice { engine, name: (*n).to_owned() }).collect()
    };
    match split {
        Split::Train => {
            let mut v = espeak(ESPEAK_TRAIN_ACCENTS, ESPEAK_TRAIN_VARIANTS);
            if full {
                v.extend(named(Engine::Mbrola, &["mb-us1", "mb-us3", "mb-en1"]));
                v.extend(named(Engine::Festival, &["kal_diphone"]));
            }
            v
        }
        Split::Dev => {
            let mut v = espeak(ESPEAK_DEV_ACCENTS, ESPEAK_DEV_VARIANTS);
            if full {
                v.extend(named(Engine::Mbrola, &["mb-us2"]));
                v.extend(named(Engine::Festival, &["rab_diphone"]));
            }
            v
        }
        Split::Test => named(Engine::Flite, &["awb", "rms", "slt"]),
    }
}

/// Fails naming the Debian package when a voice's synthesizer is missing.
pub fn check_installed(voices: &[Voice]) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for v in voices {
        let (ok, package) = match v.engine {
            Engine::Espeak => (on_path("espeak-ng"), "espeak-ng".to_owned()),
            Engine::Flite => (on_path("flite"), "flite".to_owned()),
            Engine::Festival => (
                on_path("text2wave") && festival_voice_dir(&v.name).is_some(),
                format!("festival festvox-{}lpc16k", v.name.trim_end_matches("_diphone")),
            ),
            Engine::Mbrola => {
                let id = v.name.trim_start_matches("mb-");
                (
                    on_path("espeak-ng") && Path::new(&format!("/usr/share/mbrola/{id}/{id}")).exists(),
                    format!("mbrola-{id}"),
                )
            }
        };
        if !ok && !missing.contains(&package) {
            missing.push(package);
        }
    }
    if !missing.is_empty() {
        let list = missing.join(" ");
        bail!(
            "missing synthesizers; install the Debian packages: apt-get install {list} \
             (MBROLA voices are in Debian's contrib/non-free components: add them to /etc/apt/sources.list.d/debian.sources)"
        );
    }
    Ok(())
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

fn festival_voice_dir(name: &str) -> Option<PathBuf> {
    ["english", "us"]
        .iter()
        .map(|lang| PathBuf::from(format!("/usr/share/festival/voices/{lang}/{name}")))
        .find(|p| p.is_dir())
}

/// Runs the synthesizer: `text` spoken by `voice` into the WAV file `out`.
/// `rate` is words per minute (espeak) and maps to a duration stretch for
/// the others; `pitch` is espeak's 0–99.
pub fn speak(voice: &Voice, text: &str, rate: u32, pitch: u32, out: &Path) -> anyhow::Result<()> {
    let stretch = format!("{:.3}", 160.0 / rate.max(1) as f32);
    let mut cmd = match voice.engine {
        Engine::Espeak | Engine::Mbrola => {
            let mut c = Command::new("espeak-ng");
            c.args(["-v", &voice.name, "-s", &rate.to_string(), "-p", &pitch.to_string(), "-w"]).arg(out).arg(text);
            c
        }
        Engine::Flite => {
            let mut c = Command::new("flite");
            c.args(["-voice", &voice.name, "--setf", &format!("duration_stretch={stretch}"), "-t", text, "-o"])
                .arg(out);
            c
        }
        Engine::Festival => {
            let mut c = Command::new("text2wave");
            c.args([
                "-eval",
                &format!("(voice_{})", voice.name),
                "-eval",
                &format!("(Parameter.set 'Duration_Stretch {stretch})"),
                "-o",
            ])
            .arg(out);
            c.stdin(std::process::Stdio::piped());
            c
        }
    };
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let mut child =
        cmd.spawn().with_context(|| format!("starting {} for voice {}", voice.engine.name(), voice.name))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin.write_all(text.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "{} (voice {}) failed on {text:?}: {}",
            voice.engine.name(),
            voice.name,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_share_no_voice_and_test_uses_an_engine_training_never_does() {
        for full in [false, true] {
            let (train, dev, test) = (voices(Split::Train, full), voices(Split::Dev, full), voices(Split::Test, full));
            assert!(dev.iter().all(|v| !train.contains(v)));
            assert!(test.iter().all(|t| train.iter().chain(&dev).all(|v| v.engine != t.engine)));
            assert!(!train.is_empty() && !dev.is_empty() && !test.is_empty());
        }
    }
}
