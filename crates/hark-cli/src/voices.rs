//! The synthetic voices and which split each belongs to.
//!
//! Split by voice: dev voices never speak training data, and the test split is
//! spoken by an engine (flite) never used in training. Voices that share a
//! speaker across engines are kept on one side: flite's `kal` is the same
//! diphone speaker as festival's `kal_diphone` (train), so flite's test voices
//! are `awb`, `rms` and `slt`; festival's `cmu_us_slt_arctic_hts` (the flite
//! `slt` speaker) is not used at all, nor are RHVoice's `slt` and `alan`
//! (built from the CMU ARCTIC `slt` and `awb` recordings).
//!
//! The corpus is append-only: voices added after the first data release
//! ([`added_voices`]) speak *additional* queries, so every recording an
//! earlier model was trained on keeps its id and its audio.

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
    /// SVOX Pico (`pico2wave`, Debian non-free `libttspico-utils`).
    Pico,
    /// RHVoice (`RHVoice-test`, Debian `rhvoice` + `rhvoice-english`).
    Rhvoice,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Espeak => "espeak-ng",
            Engine::Mbrola => "mbrola",
            Engine::Flite => "flite",
            Engine::Festival => "festival",
            Engine::Pico => "pico",
            Engine::Rhvoice => "rhvoice",
        }
    }

    /// Whether rate and pitch can be varied per utterance.
    pub fn varies_pitch(self) -> bool {
        matches!(self, Engine::Espeak | Engine::Mbrola | Engine::Pico | Engine::Rhvoice)
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

/// Voices of the second data release (error analysis of model 0.2.0: 91 %
/// of the training audio was espeak-ng, and the test engine's statistical
/// parametric voices were recognised worst). They speak queries appended
/// after the first release's; empty for the test split (flite only).
pub fn added_voices(split: Split) -> Vec<Voice> {
    match split {
        Split::Train => {
            let mut v = named(Engine::Pico, &["en-US", "en-GB"]);
            v.extend(named(Engine::Rhvoice, &["bdl", "clb", "evgeniy-eng"]));
            v.extend(named(Engine::Festival, &["ked_diphone", "us1_mbrola", "us3_mbrola", "en1_mbrola"]));
            v
        }
        Split::Dev => {
            let mut v = named(Engine::Rhvoice, &["lyubov"]);
            v.extend(named(Engine::Festival, &["us2_mbrola"]));
            v
        }
        Split::Test => Vec::new(),
    }
}

/// Voices of the third (vocabulary) data release, which speak many distinct
/// words and names: espeak-ng driving MBROLA diphone voices recorded for other
/// languages with English phoneme mappings (`mb-de1-en`: accented English,
/// but 16 more human speakers), festival's `don` diphone voice, and the
/// second release's voices (the closest to the test engine's). Empty for test.
pub fn vocabulary_voices(split: Split) -> Vec<Voice> {
    match split {
        Split::Train => {
            let mut v = mbrola_english(&MBROLA_ENGLISH_TRAIN);
            v.extend(named(Engine::Festival, &["don_diphone"]));
            v.extend(added_voices(Split::Train));
            v
        }
        Split::Dev => {
            let mut v = mbrola_english(&MBROLA_ENGLISH_DEV);
            v.extend(added_voices(Split::Dev));
            v
        }
        Split::Test => Vec::new(),
    }
}

/// MBROLA voices that espeak-ng can drive with English text (`mb-<id>-en`).
const MBROLA_ENGLISH_TRAIN: [&str; 13] =
    ["af1", "de1", "de3", "de4", "de5", "de6", "fr1", "gr2", "hu1", "nl2", "pl1", "ro1", "sw1"];
const MBROLA_ENGLISH_DEV: [&str; 3] = ["de2", "fr4", "sw2"];

fn mbrola_english(ids: &[&str]) -> Vec<Voice> {
    ids.iter().map(|id| Voice { engine: Engine::Mbrola, name: format!("mb-{id}-en") }).collect()
}

/// `engine`'s voices called `names`.
fn named(engine: Engine, names: &[&str]) -> Vec<Voice> {
    names.iter().map(|n| Voice { engine, name: (*n).to_owned() }).collect()
}

/// Every voice of `split` across the data releases, each once.
pub fn every(split: Split, full: bool) -> Vec<Voice> {
    let mut all = voices(split, full);
    if full {
        for v in added_voices(split).into_iter().chain(vocabulary_voices(split)) {
            if !all.contains(&v) {
                all.push(v);
            }
        }
    }
    all
}

/// `voices` split into those this machine can speak with and those it
/// cannot (their synthesizer or voice package is missing).
pub fn installed(voices: Vec<Voice>) -> (Vec<Voice>, Vec<Voice>) {
    voices.into_iter().partition(|v| check_installed(std::slice::from_ref(v)).is_ok())
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
                match (v.name.strip_suffix("_mbrola"), v.name.as_str()) {
                    (Some(id), _) => format!("festival festvox-{id}"),
                    (None, "don_diphone") => "festival festvox-don".to_owned(),
                    (None, name) => format!("festival festvox-{}lpc16k", name.trim_end_matches("_diphone")),
                },
            ),
            Engine::Pico => (on_path("pico2wave"), "libttspico-utils".to_owned()),
            Engine::Rhvoice => (
                on_path("RHVoice-test") && Path::new(&format!("/usr/share/RHVoice/voices/{}", v.name)).is_dir(),
                "rhvoice rhvoice-english".to_owned(),
            ),
            Engine::Mbrola => {
                let id = v.name.trim_start_matches("mb-");
                let id = id.strip_suffix("-en").unwrap_or(id);
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
             (MBROLA voices and SVOX Pico are in Debian's contrib/non-free components: add them to /etc/apt/sources.list.d/debian.sources)"
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
/// [`speak`] at 16 kHz with its peak at −1 dBFS (as every recording of a
/// corpus is), through the scratch file `raw`, which is removed.
pub fn speak_16k(voice: &Voice, text: &str, rate: u32, pitch: u32, raw: &Path) -> anyhow::Result<Vec<f32>> {
    speak(voice, text, rate, pitch, raw)?;
    let audio = hark_dsp::wav::read(raw)?;
    let _ = std::fs::remove_file(raw);
    let mut samples = hark_dsp::resample(&audio.samples, audio.sample_rate, hark_dsp::SAMPLE_RATE)?;
    let peak = samples.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if peak > 0.0 {
        samples.iter_mut().for_each(|v| *v *= 0.89 / peak);
    }
    Ok(samples)
}

pub fn speak(voice: &Voice, text: &str, rate: u32, pitch: u32, out: &Path) -> anyhow::Result<()> {
    let stretch = format!("{:.3}", 160.0 / rate.max(1) as f32);
    // The same rate as a percentage of the engine's own (Pico, RHVoice).
    let percent = 100 * rate / 160;
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
        Engine::Pico => {
            // pico2wave has no rate or pitch flags; its markup does both.
            let pitch = 80 + pitch * 40 / 100;
            let mut c = Command::new("pico2wave");
            c.args(["-l", &voice.name, "-w"])
                .arg(out)
                .arg(format!("<speed level='{percent}'><pitch level='{pitch}'>{text}</pitch></speed>"));
            c
        }
        Engine::Rhvoice => {
            // Rate and pitch in percent of the voice's own (100 = as recorded).
            let mut c = Command::new("RHVoice-test");
            c.args(["-p", &voice.name, "-r", &percent.to_string(), "-t", &(pitch + 50).to_string(), "-o"]).arg(out);
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
            let all = |split| {
                let mut v = voices(split, full);
                if full {
                    v.extend(added_voices(split));
                    v.extend(vocabulary_voices(split));
                }
                v
            };
            let (train, dev, test) = (all(Split::Train), all(Split::Dev), all(Split::Test));
            assert!(dev.iter().all(|v| !train.contains(v)));
            assert!(test.iter().all(|t| train.iter().chain(&dev).all(|v| v.engine != t.engine)));
            assert!(!train.is_empty() && !dev.is_empty() && !test.is_empty());
        }
    }

    #[test]
    fn no_training_or_dev_voice_is_a_test_speaker_under_another_engine() {
        // The CMU ARCTIC speakers of flite's test voices, as other engines name them.
        let same_speakers = [
            (Engine::Festival, "cmu_us_slt_arctic_hts"),
            (Engine::Festival, "cmu_us_awb_arctic_hts"),
            (Engine::Rhvoice, "slt"),
            (Engine::Rhvoice, "alan"),
        ];
        for split in [Split::Train, Split::Dev] {
            for v in voices(split, true).iter().chain(&added_voices(split)).chain(&vocabulary_voices(split)) {
                assert!(!same_speakers.contains(&(v.engine, v.name.as_str())), "{v:?} speaks the test split");
            }
        }
        assert!(added_voices(Split::Test).is_empty() && vocabulary_voices(Split::Test).is_empty());
        let dev = [added_voices(Split::Dev), vocabulary_voices(Split::Dev)].concat();
        let train = [added_voices(Split::Train), vocabulary_voices(Split::Train)].concat();
        assert!(train.iter().all(|v| !dev.contains(v)));
    }
}
