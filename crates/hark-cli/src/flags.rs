//! What several `hark` commands share on the command line: the value
//! parsers that name what was wrong with a value, and the defaults (the
//! cache folder, the thread count, where a corpus' manifest is).
//!
//! Each command declares its own arguments as a `clap::Args` struct beside
//! its `run` (`train::Args`, `eval::Args`, ...); `main.rs` only
//! dispatches. Values with a type of their own (`Split`, `Channel`,
//! `Version`) parse through their `FromStr`, in their crates.

use std::path::{Path, PathBuf};

/// Threads (or parallel processes) a command uses unless told: every core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// hark's cache folder, outside git: `$XDG_CACHE_HOME/hark`, else
/// `~/.cache/hark`, else `/tmp/hark` (xtask's `cache_dir` is the same rule).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("hark")
}

/// A corpus given as its folder or its manifest: the manifest's path, and
/// the folder its audio paths are relative to.
pub fn corpus_manifest(data: &Path) -> (PathBuf, PathBuf) {
    let manifest = if data.is_dir() { data.join("manifest.jsonl") } else { data.to_path_buf() };
    let root = manifest.parent().map(PathBuf::from).unwrap_or_default();
    (manifest, root)
}

/// Two numbers written `A,B` on the command line (`--renoise-snr=-5,10`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair(pub f32, pub f32);

impl std::fmt::Display for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{}", self.0, self.1)
    }
}

impl From<(f32, f32)> for Pair {
    fn from((a, b): (f32, f32)) -> Self {
        Self(a, b)
    }
}

impl From<Pair> for (f32, f32) {
    fn from(Pair(a, b): Pair) -> Self {
        (a, b)
    }
}

impl Pair {
    /// `A,B` with both finite numbers, else `None`.
    fn parse(text: &str) -> Option<Self> {
        let number = |s: &str| s.trim().parse::<f32>().ok().filter(|v| v.is_finite());
        let (a, b) = text.split_once(',')?;
        Some(Self(number(a)?, number(b)?))
    }
}

/// A range `LOW,HIGH` with LOW ≤ HIGH.
pub fn low_high(text: &str) -> Result<Pair, String> {
    match Pair::parse(text) {
        Some(p) if p.0 <= p.1 => Ok(p),
        _ => Err(format!("expected LOW,HIGH: two numbers with LOW ≤ HIGH, got {text:?}")),
    }
}

/// Two durations `LEAD,TRAIL` in seconds, neither negative.
pub fn lead_trail(text: &str) -> Result<Pair, String> {
    match Pair::parse(text) {
        Some(p) if p.0 >= 0.0 && p.1 >= 0.0 => Ok(p),
        _ => Err(format!("expected LEAD,TRAIL: two durations in seconds, neither negative, got {text:?}")),
    }
}

/// A finite number.
pub fn finite(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("expected a number, got {text:?}")),
    }
}

/// A duration in seconds, not negative.
pub fn seconds(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("expected seconds (0 or more), got {text:?}")),
    }
}

/// A share between 0 and 1.
pub fn share(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a share between 0 and 1, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use hark_data::augment::RenoiseConfig;

    use super::*;

    #[test]
    fn ranges_are_two_ordered_numbers() {
        assert_eq!(low_high("-5,10"), Ok(Pair(-5.0, 10.0)));
        assert_eq!(low_high(" 3 , 3 "), Ok(Pair(3.0, 3.0)));
        for bad in ["10,0", "5", "5,", "a,b", "1,2,3", "nan,1", "-inf,0"] {
            assert!(low_high(bad).unwrap_err().contains("LOW ≤ HIGH"), "{bad:?} accepted");
        }
        // What clap shows as the default parses back to itself.
        let default = Pair::from(RenoiseConfig::default().snr_db);
        assert_eq!(low_high(&default.to_string()), Ok(default));
    }

    #[test]
    fn pads_are_two_durations_neither_negative() {
        assert_eq!(lead_trail("0.5,0"), Ok(Pair(0.5, 0.0)));
        assert_eq!(lead_trail("0,0.3"), Ok(Pair(0.0, 0.3)));
        for bad in ["0.5", "-0.1,0", "0,-1", "x,0"] {
            assert!(lead_trail(bad).unwrap_err().contains("LEAD,TRAIL"), "{bad:?} accepted");
        }
    }

    #[test]
    fn single_values_name_what_they_expected() {
        assert_eq!(share("0.5"), Ok(0.5));
        assert!(share("1.5").unwrap_err().contains("between 0 and 1"));
        assert_eq!(seconds("0"), Ok(0.0));
        assert!(seconds("-1").unwrap_err().contains("0 or more"));
        assert_eq!(finite("-3"), Ok(-3.0));
        assert!(finite("inf").unwrap_err().contains("a number"));
    }
}
