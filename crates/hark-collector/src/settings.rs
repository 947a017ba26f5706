//! The collector's operating settings: what `hark serve --config FILE`
//! reads (TOML), with the environment's `HARK_ADMIN_TOKEN` and
//! `HARK_DATABASE_URL` over the file's so that secrets need not sit in it. Every
//! field has a default, so a missing file section means "the defaults";
//! an unknown key is an error that names it (a misspelt limit must not
//! silently fall back to the default).
//!
//! ```toml
//! [admin]
//! token = "a long random string"      # or HARK_ADMIN_TOKEN; none: admin API off
//!
//! [cors]
//! origins = ["https://search.example.org"]   # none: same origin only
//!
//! [limits]
//! per_ip_per_minute = 600        # 0: no limit (behind a proxy, see forwarded_for)
//! per_install_per_minute = 120
//! max_body_bytes = 33554432      # larger bodies: 413
//! forwarded_for = false          # true: the client is X-Forwarded-For's first address
//!
//! [retention]
//! events_days = 365              # 0: kept until deleted
//! audio_days = 30                # recordings go sooner than the rest
//! sweep_minutes = 60
//!
//! [log]
//! access = "/var/log/hark/access.jsonl"   # one JSON line per request; none: no access log
//!
//! [store]
//! postgres = "postgres://hark@db.internal:5432/hark"   # or HARK_DATABASE_URL; none: SQLite in --data
//! ```

use std::path::Path;

use serde::Deserialize;

/// The environment variable that holds the admin token.
pub const ADMIN_TOKEN_ENV: &str = "HARK_ADMIN_TOKEN";
/// The environment variable that names a PostgreSQL database to use.
pub const DATABASE_URL_ENV: &str = "HARK_DATABASE_URL";

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub admin: Admin,
    pub cors: Cors,
    pub limits: Limits,
    pub retention: Retention,
    pub store: StoreSettings,
    pub log: Log,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// Appends one JSON line per request here (time, method, path, status,
    /// duration; never a client address or a body); `None`: no access log.
    pub access: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// A PostgreSQL connection string (`postgres://user@host:5432/hark`);
    /// `None`: SQLite in the data folder. `HARK_DATABASE_URL` overrides it.
    pub postgres: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Admin {
    /// The bearer token of `/v1/admin/*`; `None` turns those routes off.
    pub token: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cors {
    /// Origins other than the collector's own whose pages may call the API.
    pub origins: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Requests one client address may make to `/v1/*` per minute; 0: unlimited.
    pub per_ip_per_minute: u32,
    /// Batches one install may send per minute; 0: unlimited.
    pub per_install_per_minute: u32,
    /// Largest request body; larger ones are answered 413.
    pub max_body_bytes: usize,
    /// Take the client's address from `X-Forwarded-For` (only behind a proxy
    /// that sets it: anyone can send the header).
    pub forwarded_for: bool,
}

impl Default for Limits {
    fn default() -> Self {
        // A browser flushes its queue at most a few times a minute; a page
        // of one address (a household, an office NAT) a few dozen.
        Self { per_ip_per_minute: 600, per_install_per_minute: 120, max_body_bytes: 32 << 20, forwarded_for: false }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Days an event is kept after it arrived; 0: until its install deletes it.
    pub events_days: u32,
    /// Days a recording (audio file, full features) is kept; 0: as long as its event.
    pub audio_days: u32,
    /// How often the server applies the limits, minutes.
    pub sweep_minutes: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self { events_days: 365, audio_days: 30, sweep_minutes: 60 }
    }
}

/// Why the settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read the settings file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the settings file {path} is not valid: {message}")]
    Invalid { path: String, message: String },
}

impl Settings {
    /// The settings in `path` (TOML), the environment's admin token over the file's.
    pub fn load(path: &Path) -> Result<Self, SettingsError> {
        let display = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| SettingsError::Read { path: display.clone(), source })?;
        Ok(Self::parse(&text, &display)?.with_env())
    }

    /// The settings written in `text` (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Self, SettingsError> {
        let settings: Settings = toml::from_str(text)
            .map_err(|e| SettingsError::Invalid { path: origin.to_owned(), message: e.to_string() })?;
        settings.check().map_err(|message| SettingsError::Invalid { path: origin.to_owned(), message })?;
        Ok(settings)
    }

    /// The defaults, with the environment's admin token.
    pub fn from_env() -> Self {
        Self::default().with_env()
    }

    fn with_env(mut self) -> Self {
        if let Some(token) = std::env::var(ADMIN_TOKEN_ENV).ok().filter(|t| !t.is_empty()) {
            self.admin.token = Some(token);
        }
        if let Some(url) = std::env::var(DATABASE_URL_ENV).ok().filter(|t| !t.is_empty()) {
            self.store.postgres = Some(url);
        }
        self
    }

    fn check(&self) -> Result<(), String> {
        if self.admin.token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err("admin.token must be at least 16 characters (use a long random string)".into());
        }
        if let Some(bad) = self.cors.origins.iter().find(|o| !(o.starts_with("https://") || o.starts_with("http://"))) {
            return Err(format!("cors.origins: {bad:?} is not an origin like \"https://example.org\""));
        }
        if self.limits.max_body_bytes < 1024 {
            return Err(format!("limits.max_body_bytes is {}; it must be at least 1024", self.limits.max_body_bytes));
        }
        if self.retention.sweep_minutes == 0 {
            return Err("retention.sweep_minutes must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_means_the_defaults_and_a_section_overrides_only_what_it_names() {
        assert_eq!(Settings::parse("", "x").unwrap(), Settings::default());
        let s = Settings::parse("[limits]\nper_ip_per_minute = 0\n[retention]\naudio_days = 7\n", "x").unwrap();
        assert_eq!(s.limits.per_ip_per_minute, 0);
        assert_eq!(s.limits.per_install_per_minute, Limits::default().per_install_per_minute);
        assert_eq!((s.retention.audio_days, s.retention.events_days), (7, 365));
    }

    #[test]
    fn a_misspelt_or_bad_setting_is_named() {
        let e = Settings::parse("[limits]\nper_ip_per_minut = 5\n", "hark.toml").unwrap_err().to_string();
        assert!(e.contains("hark.toml") && e.contains("per_ip_per_minut"), "{e}");
        let e = Settings::parse("[admin]\ntoken = \"short\"\n", "x").unwrap_err().to_string();
        assert!(e.contains("admin.token"), "{e}");
        let e = Settings::parse("[cors]\norigins = [\"example.org\"]\n", "x").unwrap_err().to_string();
        assert!(e.contains("example.org"), "{e}");
        let e = Settings::parse("[retention]\nsweep_minutes = 0\n", "x").unwrap_err().to_string();
        assert!(e.contains("sweep_minutes"), "{e}");
    }
}
