//! The person's settings, kept in `localStorage` on this device only:
//! consent to share prediction logs (off unless chosen; the level and the
//! version of the text agreed to), this install's identifier and secret,
//! what became of the logs shared, the web-search URL template, how often
//! to look for model updates. A URL parameter of the
//! same name overrides a stored value for that visit (`?update-minutes=0.1`).

use hark_web::BackendPreference;
use hark_web::outbox::{CONSENT_TEXT_VERSION, Consent, Counts};

const CONSENT: &str = "hark.consent";
const INSTALL_SECRET: &str = "hark.install-secret";
const COUNTS: &str = "hark.telemetry-counts";
const SEARCH_URL: &str = "hark.search-url";
const UPDATE_MINUTES: &str = "hark.update-minutes";
const INSTALL_ID: &str = "hark.install-id";

/// Where "search the web" goes; `{query}` is replaced by the URL-encoded query.
pub const DEFAULT_SEARCH_URL: &str = "https://duckduckgo.com/?q={query}";
pub const DEFAULT_UPDATE_MINUTES: f64 = 30.0;

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

fn stored(key: &str) -> Option<String> {
    storage()?.get_item(key).ok().flatten()
}

fn store(key: &str, value: Option<&str>) {
    if let Some(s) = storage() {
        let _ = match value {
            Some(v) => s.set_item(key, v),
            None => s.remove_item(key),
        };
    }
}

/// `?name=value` of this page's URL.
fn url_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search).ok()?.get(name)
}

/// The person's choice, if they made one under the text shown now (a
/// choice made under another text — or the one-level "granted" of hark
/// 0.7 — is asked again: off until then).
pub fn consent() -> Option<Consent> {
    let consent: Consent = serde_json::from_str(&stored(CONSENT)?).ok()?;
    (consent.text_version == CONSENT_TEXT_VERSION).then_some(consent)
}

pub fn set_consent(consent: Option<Consent>) {
    let text = consent.and_then(|c| serde_json::to_string(&c).ok());
    store(CONSENT, text.as_deref());
}

/// What became of the logs this install shared.
pub fn counts() -> Counts {
    stored(COUNTS).and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

pub fn set_counts(counts: &Counts) {
    store(COUNTS, serde_json::to_string(counts).ok().as_deref());
}

/// This install's secret: 32 random bytes (hex), made on first use and kept
/// only here. Batches carry its SHA-256 ([`install_key`]); showing the
/// secret itself deletes what the install sent.
pub fn install_secret() -> String {
    if let Some(secret) = stored(INSTALL_SECRET).filter(|s| s.len() == 64) {
        return secret;
    }
    let mut bytes = [0u8; 32];
    let filled = web_sys::window()
        .and_then(|w| w.crypto().ok())
        .is_some_and(|c| c.get_random_values_with_u8_array(&mut bytes).is_ok());
    if !filled {
        for b in &mut bytes {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    store(INSTALL_SECRET, Some(&secret));
    secret
}

/// The SHA-256 of [`install_secret`], as batches carry it.
pub fn install_key() -> String {
    hark_telemetry::v2::install_key(&install_secret())
}

pub fn search_url() -> String {
    url_param("search-url").or_else(|| stored(SEARCH_URL)).unwrap_or_else(|| DEFAULT_SEARCH_URL.into())
}

/// Stores a template; refuses one without `{query}`, saying why.
pub fn set_search_url(template: &str) -> Result<(), String> {
    let template = template.trim();
    if !template.contains("{query}") {
        return Err("The search address must contain {query} where the words go.".into());
    }
    if !(template.starts_with("https://") || template.starts_with("http://")) {
        return Err("The search address must start with https:// or http://.".into());
    }
    store(SEARCH_URL, Some(template));
    Ok(())
}

/// `template` with `{query}` replaced by the URL-encoded query.
pub fn web_search_link(template: &str, query: &str) -> String {
    template.replace("{query}", &String::from(js_sys::encode_uri_component(query)))
}

pub fn update_minutes() -> f64 {
    url_param("update-minutes")
        .or_else(|| stored(UPDATE_MINUTES))
        .and_then(|m| m.parse::<f64>().ok())
        .filter(|m| m.is_finite() && *m >= 0.0)
        .unwrap_or(DEFAULT_UPDATE_MINUTES)
}

pub fn backend() -> BackendPreference {
    match url_param("backend").as_deref() {
        Some("cpu") => BackendPreference::Cpu,
        Some("webgpu") => BackendPreference::Webgpu,
        _ => BackendPreference::Auto,
    }
}

/// A random identifier for this install, made on first use (nothing
/// personal goes into it). Used for the rollout bucket and, with consent,
/// in telemetry batches.
pub fn install_id() -> String {
    if let Some(id) = stored(INSTALL_ID).filter(|id| id.len() >= 8) {
        return id;
    }
    let id = web_sys::window()
        .and_then(|w| w.crypto().ok())
        .map(|c| c.random_uuid())
        .unwrap_or_else(|| format!("{:016x}", (js_sys::Math::random() * 1e16) as u64));
    store(INSTALL_ID, Some(&id));
    id
}

/// This install's stable rollout bucket in `0..100`.
pub fn rollout_bucket() -> u8 {
    (hark_data::corpus::stable_hash(&install_id()) % 100) as u8
}
