//! The model manager: read `models/manifest.json`, choose the newest entry
//! this app may use, download its weights, check their sha256, and build a
//! [`Recognizer`] (CPU WebAssembly, Burn `flex`). A download that fails its
//! check is refused with a message and the model already loaded stays.

use burn::tensor::Device;
use hark_decode::BeamConfig;
use hark_model::AcousticModelConfig;
use hark_recognizer::{Recognizer, corpus_decoder};
use hark_registry::{Channel, Manifest, ModelEntry, Version};

/// This app's version, compared with each model's `min_app_version`.
pub const APP_VERSION: &str = env!("CARGO_PKG_VERSION");

pub async fn fetch_manifest() -> Result<Manifest, String> {
    let response = gloo_net::http::Request::get("models/manifest.json")
        .cache(web_sys::RequestCache::NoCache)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.ok() {
        return Err(format!("HTTP {} for models/manifest.json", response.status()));
    }
    let text = response.text().await.map_err(|e| e.to_string())?;
    Manifest::parse(&text).map_err(|e| e.to_string())
}

/// Entries this app may run, the one to use first: the chosen (newest
/// compatible) entry, then older compatible ones to fall back on when a
/// download is refused.
pub fn candidates(manifest: &Manifest) -> Vec<ModelEntry> {
    let app: Version = APP_VERSION.parse().unwrap_or_default();
    let Some(first) = manifest.choose(app, Channel::Stable, 0).cloned() else { return Vec::new() };
    let mut rest: Vec<ModelEntry> = manifest
        .models
        .iter()
        .filter(|e| e.version < first.version && e.min_app_version <= app && e.channel == Channel::Stable)
        .cloned()
        .collect();
    rest.sort_by(|a, b| b.version.cmp(&a.version));
    std::iter::once(first).chain(rest).collect()
}

/// Downloads and checks `entry`'s weights, then builds the recognizer.
pub async fn load(entry: &ModelEntry) -> Result<Recognizer, String> {
    let url = format!("models/{}", entry.file);
    let response = gloo_net::http::Request::get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
    if !response.ok() {
        return Err(format!("HTTP {} for {url}", response.status()));
    }
    let bytes = response.binary().await.map_err(|e| format!("{url}: {e}"))?;
    hark_registry::verify_sha256(entry, &bytes).map_err(|e| e.to_string())?;
    let mut config = AcousticModelConfig::new();
    if let Some(a) = entry.architecture {
        config = config.with_channels(a.channels).with_blocks(a.blocks).with_kernel(a.kernel);
    }
    Recognizer::new(&config, bytes, Device::flex(), corpus_decoder(BeamConfig::default())).map_err(|e| e.to_string())
}
