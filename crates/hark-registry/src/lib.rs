//! The model manifest: what models exist, which one a browser should run, and
//! how to check that the bytes it downloaded are the bytes that were published.
//!
//! One schema, compiled into both the publishing side (the `hark` CLI's
//! `publish`, and its `--model manifest.json` readers) and the browser
//! (`hark-web`), so the two can never disagree about a field. (The collector
//! serves `web/models/` as files; it does not read them.) Entry points:
//! [`Manifest::parse_verified`] (the browser: only a manifest a trusted key
//! signed, see [`signing`]), [`Manifest::parse`] (tools reading a local
//! folder), [`Manifest::to_signed_json`], [`Manifest::choose`] and
//! [`verify_sha256`].
//!
//! **API boundary:** `manifest.json` is a published file format. Adding an
//! optional field is fine; renaming or removing one needs a new
//! [`SCHEMA_VERSION`]. Schema 2 is schema 1 plus `signatures`; schema 1
//! files still parse for local tools, and browsers refuse them as unsigned.

pub mod signing;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use hark_decode::Units;

/// The manifest schema this build writes (it reads this one and 1).
pub const SCHEMA_VERSION: u32 = 2;
/// The oldest schema this build reads (unsigned: local tools only).
pub const OLDEST_SCHEMA_VERSION: u32 = 1;

/// The first app version that reads phone models. Older apps know only
/// letters: they would read a phone model's 43 outputs as letters and write
/// nonsense, so a phone entry must ask for at least this version in
/// `min_app_version` (which [`Manifest::choose`] compares), and
/// [`Manifest::validate`] refuses one that does not.
pub const PHONE_MODELS_SINCE: Version = Version::new(0, 2, 0);

/// `web/models/manifest.json`: every published model, newest or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    /// Who vouches for this list (schema 2): see [`signing`]. Written by
    /// [`Manifest::to_signed_json`]; kept here only so that parsing a signed
    /// file round-trips.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<signing::Signature>,
}

/// One published model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// Semantic version of the model, e.g. `1.2.0`.
    pub version: Version,
    /// Path of the weights file relative to the manifest.
    pub file: String,
    /// Lower-case hex SHA-256 of the weights file.
    pub sha256: String,
    /// Size of the weights file in bytes.
    pub size: u64,
    /// RFC 3339 creation time.
    pub created: String,
    /// Oldest app version that can run this model.
    pub min_app_version: Version,
    #[serde(default)]
    pub channel: Channel,
    /// Share of installs (0–100) that should receive this entry.
    #[serde(default = "full_rollout")]
    pub rollout_percent: u8,
    /// Version this model was trained from (retraining lineage), if any.
    #[serde(default)]
    pub parent_version: Option<Version>,
    /// Identifier of the training data snapshot.
    #[serde(default)]
    pub training_data: Option<String>,
    /// Published evaluation figures, e.g. `"wer/test/clean": 0.08`.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Shape of the acoustic model the weights belong to (absent: the
    /// default shape of the app that reads the manifest).
    #[serde(default)]
    pub architecture: Option<Architecture>,
    /// The reference profile `hark monitor` compares production logs with
    /// (written by `hark publish --profile-data` or `hark profile`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<FileRef>,
    /// Names the decoder knows beyond the app's built-in catalogue
    /// ([`NameList`], `names-VERSION.json`): a decoder-only update brings
    /// new names in without retraining the acoustic model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<FileRef>,
    /// A general English LM the decoder interpolates with its voice-search
    /// LM (`hark lm`'s prebuilt binary), so that words outside the query
    /// grammar come out as words. Content-addressed (`english-SHA.lm`):
    /// entries that share one share the file, and a browser downloads it once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub general_lm: Option<GeneralLm>,
    /// A phone model's pronunciation lexicon (`hark lexicon`'s text,
    /// `lexicon-SHA.txt`): how the decoder reads its phones back into words.
    /// Required when [`Architecture::units`] is phones, absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lexicon: Option<FileRef>,
    /// The beam search settings chosen for this model (`hark tune` on dev
    /// speech): absent, the app's defaults, which were tuned for the letter
    /// models. An app that predates the field decodes with its defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<Search>,
}

/// [`ModelEntry::search`]: how the decoder reads this model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    /// Prefixes kept per frame (1–4,096).
    pub beam: u32,
    /// Language-model weight (≥ 0). `f64`s, as [`GeneralLm::weight`].
    pub alpha: f64,
    /// Bonus per word.
    pub beta: f64,
}

impl Search {
    /// What is wrong with these settings, if anything.
    pub fn problem(&self) -> Option<String> {
        if !(1..=4096).contains(&self.beam) {
            return Some(format!("search.beam must be 1..=4096, got {}", self.beam));
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Some(format!("search.alpha must be a finite number ≥ 0, got {}", self.alpha));
        }
        if !self.beta.is_finite() {
            return Some(format!("search.beta must be a finite number, got {}", self.beta));
        }
        None
    }
}

/// [`ModelEntry::general_lm`]: the file and its interpolation weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneralLm {
    #[serde(flatten)]
    pub file: FileRef,
    /// Its share of each word's probability (0..1). `f64`: the signature
    /// covers the number as JSON reads it back (an `f32` would not survive).
    pub weight: f64,
}

impl ModelEntry {
    /// Every file of this entry: weights, then profile, names, general LM, lexicon.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        let extras =
            self.profile.iter().chain(&self.names).chain(self.general_lm.iter().map(|g| &g.file)).chain(&self.lexicon);
        std::iter::once(self.file.as_str()).chain(extras.map(|f| f.file.as_str()))
    }
}

/// `names-VERSION.json`: entity names by class (a class of the voice-search
/// LM, such as `person` or `city`), added to the decoder's catalogue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameList {
    pub names: Vec<Name>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Name {
    pub class: String,
    pub name: String,
}

/// Most names one list may hold (the decoder's tries grow with it).
pub const MAX_NAMES: usize = 100_000;

impl NameList {
    /// Parses and checks a names file: at most [`MAX_NAMES`], none empty.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let list: NameList = serde_json::from_slice(bytes).map_err(|e| format!("not a names file: {e}"))?;
        if list.names.len() > MAX_NAMES {
            return Err(format!("{} names; at most {MAX_NAMES} fit", list.names.len()));
        }
        if let Some((i, _)) =
            list.names.iter().enumerate().find(|(_, n)| n.class.trim().is_empty() || n.name.trim().is_empty())
        {
            return Err(format!("name {} has an empty class or name", i + 1));
        }
        Ok(list)
    }

    /// `(class, name)` pairs, as the decoder takes them.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.names.iter().map(|n| (n.class.clone(), n.name.clone())).collect()
    }
}

/// A file beside the weights, and its content's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// Path relative to the manifest.
    pub file: String,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
}

/// Shape of hark's acoustic model (`hark_model::AcousticModelConfig` without
/// the fixed input and output sizes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Architecture {
    pub channels: usize,
    pub blocks: usize,
    pub kernel: usize,
    /// What the model writes (absent: letters, as every entry before phone
    /// models; left out when letters, so older signed entries read the same).
    #[serde(default, skip_serializing_if = "Units::is_letters")]
    pub units: Units,
}

fn full_rollout() -> u8 {
    100
}

/// Release channel of a model entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    #[default]
    Stable,
    Beta,
}

impl Channel {
    pub fn name(self) -> &'static str {
        match self {
            Channel::Stable => "stable",
            Channel::Beta => "beta",
        }
    }
}

/// `stable` or `beta` (as in the manifest and on the command line).
impl std::str::FromStr for Channel {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [Channel::Stable, Channel::Beta]
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| format!("channel must be `stable` or `beta`, got {name:?}"))
    }
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("model manifest is not valid JSON for schema {SCHEMA_VERSION}: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "model manifest has schema_version {found}, this app reads {OLDEST_SCHEMA_VERSION} to {SCHEMA_VERSION}; update the app"
    )]
    UnsupportedSchema { found: u32 },
    #[error("model manifest refused: {0}")]
    Signature(#[from] signing::SignatureError),
    #[error("model {version}: {problem}")]
    InvalidEntry { version: String, problem: String },
    #[error("model version {0} is listed twice")]
    DuplicateVersion(Version),
}

impl Manifest {
    /// An empty manifest of the current schema.
    pub fn empty() -> Self {
        Self { schema_version: SCHEMA_VERSION, models: Vec::new(), signatures: Vec::new() }
    }

    /// Parses and validates `manifest.json` without checking who signed it
    /// (for tools that read a folder they publish to themselves).
    pub fn parse(json: &str) -> Result<Self, ManifestError> {
        let manifest: Manifest = serde_json::from_str(json)?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Parses `manifest.json` as a browser must: schema 2, signed by one of
    /// `trusted` over exactly what it says, then validated.
    pub fn parse_verified(json: &str, trusted: &[signing::PublicKey]) -> Result<Self, ManifestError> {
        let value: serde_json::Value = serde_json::from_str(json)?;
        let schema = value.get("schema_version").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        if schema > SCHEMA_VERSION {
            return Err(ManifestError::UnsupportedSchema { found: schema });
        }
        signing::verify(&value, trusted)?;
        let manifest: Manifest = serde_json::from_value(value)?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The file to publish: this manifest as schema 2, signed by `key`
    /// (pretty-printed, ending in a newline).
    pub fn to_signed_json(&self, key: &signing::SigningKey) -> Result<String, ManifestError> {
        let mut unsigned = self.clone();
        unsigned.schema_version = SCHEMA_VERSION;
        unsigned.signatures.clear();
        unsigned.validate()?;
        let signature = key.sign(&serde_json::to_value(&unsigned)?);
        let signed = Manifest { signatures: vec![signature], ..unsigned };
        Ok(serde_json::to_string_pretty(&signed)? + "\n")
    }

    /// Checks what serde cannot: schema, hashes, rollout bounds, duplicates.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&self.schema_version) {
            return Err(ManifestError::UnsupportedSchema { found: self.schema_version });
        }
        let mut seen = std::collections::BTreeSet::new();
        for entry in &self.models {
            let invalid = |problem: String| ManifestError::InvalidEntry { version: entry.version.to_string(), problem };
            if !seen.insert(entry.version) {
                return Err(ManifestError::DuplicateVersion(entry.version));
            }
            if entry.sha256.len() != 64
                || !entry.sha256.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return Err(invalid(format!("sha256 must be 64 lower-case hex digits, got {:?}", entry.sha256)));
            }
            if entry.rollout_percent > 100 {
                return Err(invalid(format!("rollout_percent must be 0..=100, got {}", entry.rollout_percent)));
            }
            if entry.file.is_empty() || entry.file.contains("..") || entry.file.starts_with('/') {
                return Err(invalid(format!(
                    "file must be a relative path inside the models folder, got {:?}",
                    entry.file
                )));
            }
            if entry.size == 0 {
                return Err(invalid("size must be the weights file's size in bytes, got 0".into()));
            }
            let phones = entry.architecture.is_some_and(|a| a.units == Units::Phones);
            match (phones, &entry.lexicon) {
                (true, None) => return Err(invalid("a phone model needs its lexicon (no `lexicon` file)".into())),
                (false, Some(_)) => return Err(invalid("a `lexicon` belongs only to a phone model".into())),
                _ => {}
            }
            if let Some(problem) = entry.search.as_ref().and_then(Search::problem) {
                return Err(invalid(problem));
            }
            if phones && entry.min_app_version < PHONE_MODELS_SINCE {
                return Err(invalid(format!(
                    "a phone model needs min_app_version {PHONE_MODELS_SINCE} or later (apps before it read only \
                     letters), got {}",
                    entry.min_app_version
                )));
            }
        }
        Ok(())
    }

    /// The newest entry this install should run.
    ///
    /// `app` is the running app's version, `channel` the channel the person
    /// chose (beta installs also take stable releases) and `bucket` the install's
    /// stable rollout bucket in `0..100`.
    pub fn choose(&self, app: Version, channel: Channel, bucket: u8) -> Option<&ModelEntry> {
        self.models
            .iter()
            .filter(|e| e.min_app_version <= app)
            .filter(|e| e.channel == Channel::Stable || e.channel == channel)
            .filter(|e| bucket < e.rollout_percent)
            .max_by(|a, b| a.version.cmp(&b.version))
    }
}

/// Checks downloaded weights against the manifest's size and hash.
pub fn verify_sha256(entry: &ModelEntry, bytes: &[u8]) -> Result<(), IntegrityError> {
    if bytes.len() as u64 != entry.size {
        return Err(IntegrityError::Size { version: entry.version, expected: entry.size, found: bytes.len() as u64 });
    }
    let found = sha256_hex(bytes);
    if found != entry.sha256 {
        return Err(IntegrityError::Hash { version: entry.version, expected: entry.sha256.clone(), found });
    }
    Ok(())
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl FileRef {
    /// A reference to `file`, which holds `bytes`.
    pub fn of(file: impl Into<String>, bytes: &[u8]) -> Self {
        Self { file: file.into(), sha256: sha256_hex(bytes) }
    }

    /// Whether `bytes` are the file this names (by its sha256).
    pub fn check(&self, bytes: &[u8]) -> Result<(), ChangedFile> {
        let found = sha256_hex(bytes);
        if found == self.sha256 {
            return Ok(());
        }
        Err(ChangedFile { file: self.file.clone(), expected: self.sha256.clone(), found })
    }
}

/// A file that is not the one its manifest entry names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: sha256 is {found}, the manifest says {expected}; refusing a changed file")]
pub struct ChangedFile {
    pub file: String,
    pub expected: String,
    pub found: String,
}

/// Downloaded weights that are not what the manifest published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityError {
    #[error(
        "model {version}: expected {expected} bytes, downloaded {found}; the download was cut short or the file was replaced"
    )]
    Size { version: Version, expected: u64, found: u64 },
    #[error("model {version}: sha256 is {found}, manifest says {expected}; refusing corrupted or tampered weights")]
    Hash { version: Version, expected: String, found: String },
}

/// A `major.minor.patch` version (no pre-release tags: channels do that job).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self { major, minor, patch }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A version string that is not `major.minor.patch`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("version {0:?} is not of the form MAJOR.MINOR.PATCH (e.g. 1.4.0)")]
pub struct VersionError(pub String);

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s
            .split('.')
            .map(|p| if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) { None } else { p.parse::<u32>().ok() });
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Some(major)), Some(Some(minor)), Some(Some(patch)), None) => Ok(Self { major, minor, patch }),
            _ => Err(VersionError(s.to_owned())),
        }
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_ref_accepts_its_own_bytes_and_names_a_changed_file() {
        let names = FileRef::of("names-0.7.1.json", b"[]");
        assert_eq!(names.check(b"[]"), Ok(()));
        let err = names.check(b"[1]").unwrap_err();
        assert_eq!((err.expected.as_str(), err.found.as_str()), (names.sha256.as_str(), sha256_hex(b"[1]").as_str()));
        assert!(err.to_string().starts_with("names-0.7.1.json: sha256 is "), "{err}");
        assert!(err.to_string().ends_with("refusing a changed file"), "{err}");
    }

    #[test]
    fn channels_parse_from_their_manifest_names() {
        for channel in [Channel::Stable, Channel::Beta] {
            let json = serde_json::to_string(&channel).unwrap();
            assert_eq!(json.trim_matches('"').parse::<Channel>(), Ok(channel));
        }
        assert!("nightly".parse::<Channel>().unwrap_err().contains("`stable` or `beta`"));
    }

    fn entry(version: &str, min_app: &str) -> ModelEntry {
        ModelEntry {
            architecture: None,
            version: version.parse().unwrap(),
            file: format!("hark-{version}.bin"),
            sha256: sha256_hex(version.as_bytes()),
            size: version.len() as u64,
            created: "2026-11-26T00:00:00Z".into(),
            min_app_version: min_app.parse().unwrap(),
            channel: Channel::Stable,
            rollout_percent: 100,
            parent_version: None,
            training_data: None,
            metrics: BTreeMap::new(),
            profile: None,
            names: None,
            general_lm: None,
            lexicon: None,
            search: None,
        }
    }

    #[test]
    fn an_entry_carries_its_search_settings_and_bad_ones_are_named() {
        let key = signing::SigningKey::from_seed([7; 32]);
        let mut entry = entry("1.0.0", "0.2.0");
        entry.search = Some(Search { beam: 384, alpha: 0.8, beta: 1.0 });
        let manifest = Manifest { models: vec![entry.clone()], ..Manifest::empty() };
        let json = manifest.to_signed_json(&key).unwrap();
        assert!(json.contains(r#""search""#), "{json}");
        let back = Manifest::parse(&json).unwrap();
        assert_eq!(back.models[0].search, entry.search);
        // Without settings the field is not written, and such entries read as before.
        let plain = Manifest { models: vec![self::entry("1.0.0", "0.2.0")], ..Manifest::empty() };
        assert!(!plain.to_signed_json(&key).unwrap().contains("search"));
        for (bad, named) in [
            (Search { beam: 0, alpha: 0.8, beta: 1.0 }, "search.beam must be 1..=4096, got 0"),
            (Search { beam: 384, alpha: -1.0, beta: 1.0 }, "search.alpha must be a finite number ≥ 0, got -1"),
            (Search { beam: 384, alpha: 0.8, beta: f64::NAN }, "search.beta must be a finite number, got NaN"),
        ] {
            entry.search = Some(bad);
            let manifest = Manifest { models: vec![entry.clone()], ..Manifest::empty() };
            let problem = manifest.validate().unwrap_err().to_string();
            assert!(problem.contains(named), "{problem}");
        }
    }

    #[test]
    fn a_phone_model_entry_carries_its_lexicon_and_letter_entries_read_as_before() {
        let key = signing::SigningKey::from_seed([7; 32]);
        let mut entry = entry("1.0.0", "0.2.0");
        entry.architecture = Some(Architecture { channels: 256, blocks: 8, kernel: 11, units: Units::Phones });
        let manifest = Manifest { models: vec![entry.clone()], ..Manifest::empty() };
        let problem = manifest.validate().unwrap_err().to_string();
        assert!(problem.contains("needs its lexicon"), "{problem}");
        entry.lexicon = Some(FileRef { file: "lexicon-0123456789ab.txt".into(), sha256: sha256_hex(b"lex") });
        // An app from before phone models must not be offered it.
        let mut for_old_apps = entry.clone();
        for_old_apps.min_app_version = "0.1.9".parse().unwrap();
        let manifest = Manifest { models: vec![for_old_apps], ..Manifest::empty() };
        let problem = manifest.validate().unwrap_err().to_string();
        assert!(
            problem.contains("needs min_app_version 0.2.0 or later") && problem.ends_with("got 0.1.9"),
            "{problem}"
        );
        let manifest = Manifest { models: vec![entry.clone()], ..Manifest::empty() };
        assert_eq!(manifest.choose("0.1.9".parse().unwrap(), Channel::Stable, 0), None);
        let read = Manifest::parse_verified(&manifest.to_signed_json(&key).unwrap(), &[key.public()]).unwrap();
        assert_eq!(read.models[0], entry);
        assert_eq!(read.models[0].files().last(), Some("lexicon-0123456789ab.txt"));
        // A letter model's shape is written as before phone models existed.
        let letters = Architecture { channels: 256, blocks: 8, kernel: 11, units: Units::Letters };
        assert_eq!(serde_json::to_string(&letters).unwrap(), r#"{"channels":256,"blocks":8,"kernel":11}"#);
        entry.architecture = Some(letters);
        let manifest = Manifest { models: vec![entry], ..Manifest::empty() };
        assert!(manifest.validate().unwrap_err().to_string().contains("only to a phone model"));
    }

    #[test]
    fn an_entry_with_a_general_lm_round_trips_signed() {
        let key = signing::SigningKey::from_seed([7; 32]);
        let mut entry = entry("1.0.0", "0.1.0");
        entry.general_lm = Some(GeneralLm {
            file: FileRef { file: "english-0123456789ab.lm".into(), sha256: sha256_hex(b"lm") },
            weight: 0.2,
        });
        let manifest = Manifest { models: vec![entry], ..Manifest::empty() };
        let text = manifest.to_signed_json(&key).unwrap();
        let read = Manifest::parse_verified(&text, &[key.public()]).unwrap();
        assert_eq!(read.models[0].general_lm, manifest.models[0].general_lm);
        let files: Vec<&str> = read.models[0].files().collect();
        assert_eq!(files, ["hark-1.0.0.bin", "english-0123456789ab.lm"]);
    }

    #[test]
    fn name_lists_parse_and_name_what_is_wrong() {
        let list = NameList::parse(br#"{"names": [{"class": "person", "name": "zorina kaltvedt"}]}"#).unwrap();
        assert_eq!(list.pairs(), [("person".to_owned(), "zorina kaltvedt".to_owned())]);
        assert!(NameList::parse(b"person zorina").unwrap_err().starts_with("not a names file"));
        let empty = NameList::parse(br#"{"names": [{"class": "person", "name": " "}]}"#).unwrap_err();
        assert_eq!(empty, "name 1 has an empty class or name");
    }

    #[test]
    fn versions_order_numerically_not_lexically() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        assert!(v("1.10.0") > v("1.9.3"));
        assert!(v("2.0.0") > v("1.99.99"));
    }

    #[test]
    fn rejects_malformed_versions_naming_them() {
        for bad in ["1.2", "1.2.3.4", "v1.2.3", "1..3", "1.2.x", ""] {
            let err = bad.parse::<Version>().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn chooses_newest_compatible_entry() {
        let mut m = Manifest::empty();
        m.models = vec![entry("1.0.0", "0.1.0"), entry("1.2.0", "0.1.0"), entry("2.0.0", "0.5.0")];
        let app = Version::new(0, 1, 0);
        assert_eq!(m.choose(app, Channel::Stable, 0).unwrap().version, Version::new(1, 2, 0));
        let newer_app = Version::new(0, 5, 0);
        assert_eq!(m.choose(newer_app, Channel::Stable, 0).unwrap().version, Version::new(2, 0, 0));
    }

    #[test]
    fn beta_entries_reach_only_beta_installs_and_rollout_limits_buckets() {
        let mut m = Manifest::empty();
        let mut beta = entry("3.0.0", "0.1.0");
        beta.channel = Channel::Beta;
        let mut partial = entry("2.0.0", "0.1.0");
        partial.rollout_percent = 10;
        m.models = vec![entry("1.0.0", "0.1.0"), partial, beta];
        let app = Version::new(0, 1, 0);
        assert_eq!(m.choose(app, Channel::Stable, 50).unwrap().version, Version::new(1, 0, 0));
        assert_eq!(m.choose(app, Channel::Stable, 9).unwrap().version, Version::new(2, 0, 0));
        assert_eq!(m.choose(app, Channel::Beta, 50).unwrap().version, Version::new(3, 0, 0));
    }

    #[test]
    fn parse_round_trips_and_validates() {
        let mut m = Manifest::empty();
        m.models = vec![entry("1.0.0", "0.1.0")];
        let json = serde_json::to_string_pretty(&m).unwrap();
        assert_eq!(Manifest::parse(&json).unwrap(), m);

        m.models[0].sha256 = "ABC".into();
        let err = Manifest::parse(&serde_json::to_string(&m).unwrap()).unwrap_err();
        assert!(err.to_string().contains("sha256"), "{err}");

        m.models = vec![entry("1.0.0", "0.1.0"), entry("1.0.0", "0.1.0")];
        let err = Manifest::parse(&serde_json::to_string(&m).unwrap()).unwrap_err();
        assert!(matches!(err, ManifestError::DuplicateVersion(_)), "{err}");
    }

    #[test]
    fn refuses_future_schema_and_path_escapes() {
        let err = Manifest::parse(r#"{"schema_version": 3, "models": []}"#).unwrap_err();
        assert!(matches!(err, ManifestError::UnsupportedSchema { found: 3 }));
        let err = Manifest::parse_verified(r#"{"schema_version": 3, "models": []}"#, &[]).unwrap_err();
        assert!(err.to_string().contains("update the app"), "{err}");
        let mut m = Manifest::empty();
        let mut e = entry("1.0.0", "0.1.0");
        e.file = "../../etc/passwd".into();
        m.models = vec![e];
        assert!(m.validate().unwrap_err().to_string().contains("relative path"));
    }

    #[test]
    fn the_shipped_manifest_parses_and_is_signed_by_a_key_the_app_trusts() {
        let json = include_str!("../../../web/models/manifest.json");
        Manifest::parse(json).expect("web/models/manifest.json must follow the schema");
        let trusted = signing::PublicKey::parse_list(include_str!("../../../keys/trusted.pub")).unwrap();
        Manifest::parse_verified(json, &trusted)
            .expect("web/models/manifest.json must be signed by a key in keys/trusted.pub (`hark sign`)");
    }

    #[test]
    fn signed_manifests_round_trip_and_tampering_is_refused() {
        let key = signing::SigningKey::from_seed([3; 32]);
        let mut m = Manifest::empty();
        m.models = vec![entry("1.0.0", "0.1.0"), entry("1.1.0", "0.1.0")];
        m.models[1].metrics.insert("test_wer".into(), 0.1397);
        let json = m.to_signed_json(&key).unwrap();
        let read = Manifest::parse_verified(&json, &[key.public()]).unwrap();
        assert_eq!(read.models, m.models);
        assert_eq!(read.signatures.len(), 1);
        // What a local tool reads and writes again is signed afresh.
        assert_eq!(Manifest::parse(&json).unwrap().to_signed_json(&key).unwrap(), json);

        let tampered = json.replace("\"rollout_percent\": 100", "\"rollout_percent\": 50");
        assert_ne!(tampered, json);
        let err = Manifest::parse_verified(&tampered, &[key.public()]).unwrap_err();
        assert!(err.to_string().contains("changed after signing"), "{err}");

        let mut legacy = m.clone();
        legacy.schema_version = 1;
        let unsigned = serde_json::to_string(&legacy).unwrap();
        assert!(Manifest::parse(&unsigned).is_ok(), "schema 1 still reads for local tools");
        let err = Manifest::parse_verified(&unsigned, &[key.public()]).unwrap_err();
        assert!(err.to_string().contains("not signed"), "{err}");
    }

    #[test]
    fn integrity_check_rejects_corrupted_bytes() {
        let e = entry("1.0.0", "0.1.0");
        assert!(verify_sha256(&e, b"1.0.0").is_ok());
        assert!(matches!(verify_sha256(&e, b"1.0.1"), Err(IntegrityError::Hash { .. })));
        assert!(matches!(verify_sha256(&e, b"1.0"), Err(IntegrityError::Size { .. })));
    }
}
