//! The dataset manifest: one JSON object per line (JSONL), one line per
//! utterance.
//!
//! Format (every field always present unless marked optional):
//!
//! ```json
//! {"id":"train-000123-espeak-en-us-r150-p50","audio":"train/000123-....wav",
//!  "text":"weather in lisbon tomorrow","split":"train","engine":"espeak-ng",
//!  "voice":"en-us","rate":150,"pitch":50,"duration_s":1.73,"template":0,
//!  "entities":[["place","lisbon"],["day","tomorrow"]],
//!  "tags":{"noise":"car","snr":"5-10db","aug":"speed1.1"}}
//! ```
//!
//! `audio` is relative to the manifest's folder. `tags` carries every slicing
//! key error analysis needs (noise type, SNR band, augmentations); a clean
//! utterance has `"noise":"clean"`.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::corpus::Split;

/// One utterance of the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Utterance {
    pub id: String,
    pub audio: String,
    pub text: String,
    pub split: Split,
    pub engine: String,
    pub voice: String,
    pub rate: u32,
    pub pitch: u32,
    pub duration_s: f32,
    pub template: usize,
    #[serde(default)]
    pub entities: Vec<(String, String)>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A manifest that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}:{line}: not a manifest entry ({source})")]
    Line { path: String, line: usize, source: serde_json::Error },
}

/// Reads a JSONL manifest; a bad line is an error naming its line number.
pub fn read(path: &Path) -> Result<Vec<Utterance>, ManifestError> {
    let name = path.display().to_string();
    let io = |source| ManifestError::Io { path: name.clone(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let u = serde_json::from_str(&line).map_err(|source| ManifestError::Line {
            path: name.clone(),
            line: i + 1,
            source,
        })?;
        out.push(u);
    }
    Ok(out)
}

/// Writes a manifest whole or not at all (temporary name, then rename).
pub fn write(path: &Path, utterances: &[Utterance]) -> Result<(), ManifestError> {
    let io = |source| ManifestError::Io { path: path.display().to_string(), source };
    let tmp = path.with_extension("jsonl.partial");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
        for u in utterances {
            serde_json::to_writer(&mut w, u).map_err(|e| io(e.into()))?;
            w.write_all(b"\n").map_err(io)?;
        }
        w.flush().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// Hours and counts per split and per tag value.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// split → (utterances, hours)
    pub splits: BTreeMap<String, (usize, f64)>,
    /// "split/tag=value" → (utterances, hours)
    pub tags: BTreeMap<String, (usize, f64)>,
    /// split → engines used
    pub engines: BTreeMap<String, Vec<String>>,
}

impl Stats {
    pub fn of(utterances: &[Utterance]) -> Self {
        let mut s = Stats::default();
        for u in utterances {
            let split = u.split.name().to_owned();
            let hours = u.duration_s as f64 / 3600.0;
            let e = s.splits.entry(split.clone()).or_default();
            e.0 += 1;
            e.1 += hours;
            for (k, v) in &u.tags {
                let e = s.tags.entry(format!("{split}/{k}={v}")).or_default();
                e.0 += 1;
                e.1 += hours;
            }
            let engines = s.engines.entry(split).or_default();
            if !engines.contains(&u.engine) {
                engines.push(u.engine.clone());
                engines.sort();
            }
        }
        s
    }

    /// A plain-text table for people.
    pub fn table(&self) -> String {
        let mut out = String::from("split      utterances     hours  engines\n");
        for (split, (n, h)) in &self.splits {
            let engines = self.engines.get(split).map(|e| e.join(", ")).unwrap_or_default();
            out += &format!("{split:<10} {n:>10} {h:>9.2}  {engines}\n");
        }
        out += "\nsplit/tag=value                utterances     hours\n";
        for (tag, (n, h)) in &self.tags {
            out += &format!("{tag:<30} {n:>10} {h:>9.2}\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utt(id: &str, split: Split, noise: &str, d: f32) -> Utterance {
        Utterance {
            id: id.into(),
            audio: format!("{id}.wav"),
            text: "weather in lisbon".into(),
            split,
            engine: "espeak-ng".into(),
            voice: "en-us".into(),
            rate: 160,
            pitch: 50,
            duration_s: d,
            template: 0,
            entities: vec![("place".into(), "lisbon".into())],
            tags: BTreeMap::from([("noise".into(), noise.into())]),
        }
    }

    #[test]
    fn round_trips_and_counts_hours_per_split_and_tag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.jsonl");
        let items = vec![
            utt("a", Split::Train, "clean", 1800.0),
            utt("b", Split::Train, "car", 1800.0),
            utt("c", Split::Test, "clean", 36.0),
        ];
        write(&path, &items).unwrap();
        assert_eq!(read(&path).unwrap(), items);
        let stats = Stats::of(&items);
        assert_eq!(stats.splits["train"], (2, 1.0));
        assert_eq!(stats.tags["train/noise=car"], (1, 0.5));
        assert!(stats.table().contains("train"));
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let good = serde_json::to_string(&utt("a", Split::Dev, "clean", 1.0)).unwrap();
        std::fs::write(&path, format!("{good}\n\n{{\"id\": 3}}\n")).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("m.jsonl:3:"), "{err}");
    }
}
