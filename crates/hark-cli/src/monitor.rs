//! `hark monitor`: one report over a window of the collector's store
//! against the model's reference profile (`hark-monitor`), written as
//! `summary.json` and `index.html`; the exit status is for cron: 0 ok, 1
//! alert, 2 could not run (or could not measure the real error rate).

use std::path::{Path, PathBuf};

use anyhow::Context;
use hark_monitor::{ReferenceProfile, WindowSpec};

use crate::model;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The collector's store: its SQLite file, the `hark serve --data`
    /// folder, or a PostgreSQL URL (`postgres://user@host:5432/hark`).
    #[arg(long)]
    pub store: String,
    /// Events received from this time: RFC 3339 (`2026-12-01T00:00:00Z`), a
    /// date (`2026-12-01`, UTC), or an age (`24h`, `7d`, `90m`).
    #[arg(long, value_parser = time_arg)]
    pub since: Option<i64>,
    /// Events received before this time (same forms as --since).
    #[arg(long, value_parser = time_arg)]
    pub until: Option<i64>,
    /// Only this model version's events (and its profile); default: the
    /// published current model's.
    #[arg(long)]
    pub model: Option<String>,
    /// The reference profile [default: MODELS/profile-VERSION.json].
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// The published models folder.
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Where to write summary.json and index.html.
    #[arg(long, default_value = "monitor-report")]
    pub out: PathBuf,
}

/// Runs the report; the process's exit status.
pub fn run(args: &Args) -> i32 {
    match report(args) {
        Ok(code) => code,
        Err(e) => {
            crate::report::eprint(&e);
            2
        }
    }
}

fn report(args: &Args) -> anyhow::Result<i32> {
    let models = args.models.clone().unwrap_or_else(model::default_models_dir);
    let version = match &args.model {
        Some(v) => v.clone(),
        None => current_version(&models)?,
    };
    let profile_path = args.profile.clone().unwrap_or_else(|| profile_file(&models, &version));
    let profile = ReferenceProfile::load(&profile_path).map_err(|e| {
        anyhow::anyhow!("{e}{}", if profile_path.is_file() { "" } else { "; write it with `hark profile`" })
    })?;
    let source = hark_monitor::store::open(&args.store)?;
    let spec = WindowSpec { since_ms: args.since, until_ms: args.until, model_version: Some(version) };
    let report = hark_monitor::monitor(source.as_ref(), &profile, &spec)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let (json, html) = (args.out.join("summary.json"), args.out.join("index.html"));
    std::fs::write(&json, report.to_json()).with_context(|| format!("writing {}", json.display()))?;
    std::fs::write(&html, report.to_html()).with_context(|| format!("writing {}", html.display()))?;
    println!("{}: {} events of model {}", report.state.as_str(), report.window.events, profile.model_version);
    for finding in &report.findings {
        println!("  {finding}");
    }
    println!("dashboard: {}\nsummary:   {}", html.display(), json.display());
    Ok(report.exit_code())
}

/// Where a model's reference profile lives beside its weights.
pub fn profile_file(models: &Path, version: &str) -> PathBuf {
    models.join(format!("profile-{version}.json"))
}

/// The version of the published current (stable) model.
pub fn current_version(models: &Path) -> anyhow::Result<String> {
    let path = models.join("manifest.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let manifest = hark_registry::Manifest::parse(&text).with_context(|| format!("in {}", path.display()))?;
    let app: hark_registry::Version = env!("CARGO_PKG_VERSION").parse().context("the app's own version")?;
    let entry = manifest
        .choose(app, hark_registry::Channel::Stable, 0)
        .with_context(|| format!("{} lists no model for this app; pass --model VERSION", path.display()))?;
    Ok(entry.version.to_string())
}

/// A time as ms since the epoch.
fn time_arg(text: &str) -> Result<i64, String> {
    let now = time::OffsetDateTime::now_utc();
    let ms = |t: time::OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    if let Some((number, unit)) = text.find(|c: char| !c.is_ascii_digit()).map(|i| text.split_at(i))
        && !number.is_empty()
        && matches!(unit, "m" | "h" | "d")
    {
        let n: i64 = number.parse().map_err(|_| format!("{text:?}: the number is too large"))?;
        let minutes = match unit {
            "m" => n,
            "h" => n * 60,
            _ => n * 24 * 60,
        };
        return Ok(ms(now) - minutes * 60_000);
    }
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(ms(t));
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(text, &date_format) {
        return Ok(ms(date.midnight().assume_utc()));
    }
    Err(format!(
        "{text:?} is not a time: use RFC 3339 (2026-12-01T08:00:00Z), a date (2026-12-01) or an age (24h, 7d, 90m)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_dates_instants_or_ages_and_anything_else_says_which_forms_work() {
        assert_eq!(time_arg("2026-12-01"), Ok(1_796_083_200_000));
        assert_eq!(time_arg("2026-12-01T01:00:00Z"), Ok(1_796_086_800_000));
        let day = time_arg("1d").unwrap();
        let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        assert!((now - day - 86_400_000).abs() < 60_000);
        let e = time_arg("yesterday").unwrap_err();
        assert!(e.contains("RFC 3339") && e.contains("24h"), "{e}");
    }
}
