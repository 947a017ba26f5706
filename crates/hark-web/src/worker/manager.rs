//! The model manager: read `models/manifest.json`, choose the entry this
//! install should run, get its weights (Cache Storage first, else a download
//! with progress), check their sha256, build a [`Recognizer`] and swap it in
//! whole. A model that fails any step is refused with a message and the
//! active one keeps working. When the manifest cannot be fetched (offline),
//! the copy stored at the last successful check is used; the same happens,
//! with a visible message, when the fetched one is refused: only a
//! manifest signed by a key built into the app ([`trusted_keys`]) counts.

use std::cell::OnceCell;
use std::collections::BTreeSet;

use crate::{ActiveModel, Activity, MODEL_CACHE, ModelStatus};
use burn::tensor::Device;
use hark_decode::{BeamConfig, BeamDecoder};
use hark_recognizer::{DecoderExtras, Recognizer, corpus_decoder};
use hark_registry::signing::PublicKey;
use hark_registry::{Channel, Manifest, ManifestError, ModelEntry, Version};
use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, ReadableStreamDefaultReader, Response, WorkerGlobalScope};

/// This app's version, compared with each model's `min_app_version`.
pub const APP_VERSION: &str = env!("CARGO_PKG_VERSION");
const MANIFEST_URL: &str = "models/manifest.json";

/// A loaded model.
pub struct Loaded {
    pub entry: ModelEntry,
    pub recognizer: Recognizer,
    /// What the entry adds to the decoder: names (a decoder-only update), a general LM.
    pub extras: DecoderExtras,
}

/// Everything the manager remembers between checks.
pub struct Manager {
    /// Where models are loaded (CPU or WebGPU).
    device: Device,
    /// The previous model's entry (its weights stay in Cache Storage), for rollback.
    pub previous: Option<ModelEntry>,
    /// `(version, sha256)` of refused models: not retried until republished.
    refused_ids: BTreeSet<(Version, String)>,
    pub status: ModelStatus,
    /// The beam decoder with the corpus language model and entity list:
    /// built once per worker (a few hundred ms: it generates the LM's
    /// training queries) and cloned for every model, since it does not
    /// depend on one.
    decoder: OnceCell<BeamDecoder>,
}

/// What a check found that the caller must act on.
pub enum Outcome {
    /// Nothing to change.
    Unchanged,
    /// Load and swap in this model (newer, or the publisher rolled back).
    Swap(Box<Loaded>),
}

impl Manager {
    pub fn new(device: Device) -> Self {
        Self {
            device,
            previous: None,
            refused_ids: BTreeSet::new(),
            status: ModelStatus::default(),
            decoder: OnceCell::new(),
        }
    }

    /// The full decoder (built on first use).
    pub fn decoder(&self) -> BeamDecoder {
        self.decoder.get_or_init(|| corpus_decoder(BeamConfig::default())).clone()
    }

    /// [`Manager::decoder`] with what a model's entry adds (names, general LM).
    pub fn decoder_with(&self, extras: &DecoderExtras) -> Result<BeamDecoder, String> {
        let mut decoder = self.decoder();
        extras.apply(&mut decoder)?;
        Ok(decoder)
    }

    /// Whether [`Manager::decoder`] has been built.
    pub fn decoder_built(&self) -> bool {
        self.decoder.get().is_some()
    }

    /// The decoder a model loads with: [`Manager::decoder`] once it is
    /// built; before that (a worker's first model) one without the language
    /// model, so that "ready" does not wait for the LM. The worker puts the
    /// full decoder in before the model serves any utterance.
    fn decoder_now(&self) -> BeamDecoder {
        self.decoder.get().cloned().unwrap_or_else(|| BeamDecoder::new(BeamConfig::default(), None))
    }

    fn refuse(&mut self, entry: &ModelEntry, why: String) {
        self.refused_ids.insert((entry.version, entry.sha256.clone()));
        self.status.refused.push(format!("model {} was not loaded: {why}", entry.version));
    }

    /// The entries to try, best first: the chosen one for this install, then
    /// older compatible stable ones to fall back on (when the chosen one was
    /// refused: every compatible stable one rolled out to this install).
    /// Refused ones are left out.
    pub fn candidates(&self, manifest: &Manifest, bucket: u8) -> Vec<ModelEntry> {
        let app: Version = APP_VERSION.parse().unwrap_or_default();
        let usable = |e: &ModelEntry| !self.refused_ids.contains(&(e.version, e.sha256.clone()));
        let chosen = manifest.choose(app, Channel::Stable, bucket).filter(|e| usable(e)).cloned();
        let mut fallbacks: Vec<ModelEntry> = manifest
            .models
            .iter()
            .filter(|e| e.min_app_version <= app && e.channel == Channel::Stable && usable(e))
            .filter(|e| match &chosen {
                Some(c) => e.version < c.version,
                None => bucket < e.rollout_percent,
            })
            .cloned()
            .collect();
        fallbacks.sort_by(|a, b| b.version.cmp(&a.version));
        chosen.into_iter().chain(fallbacks).collect()
    }

    /// One check. `active` is the running model's entry; `report` is called
    /// with the status whenever it changes (download progress included).
    pub async fn check(&mut self, active: Option<&ModelEntry>, bucket: u8, report: &dyn Fn(&ModelStatus)) -> Outcome {
        let fetched = fetch_manifest().await;
        if let Err(Fetch::Refused(why)) = &fetched {
            web_sys::console::warn_1(&format!("{MANIFEST_URL} refused: {why}").into());
        }
        self.status.manifest_refused = match &fetched {
            Err(Fetch::Refused(why)) => Some(why.clone()),
            _ => None,
        };
        let manifest = match fetched {
            Ok((m, offline)) => {
                self.status.offline = offline;
                m
            }
            Err(Fetch::Refused(why)) => match stored_manifest().await {
                // The last list this app accepted stands.
                Some(m) => m,
                None => {
                    if active.is_none() {
                        self.status.activity =
                            Activity::Failed { why: format!("the published model list was refused: {why}") };
                    }
                    report(&self.status);
                    return Outcome::Unchanged;
                }
            },
            Err(Fetch::Unreachable(e)) => match stored_manifest().await {
                Some(m) => {
                    self.status.offline = true;
                    m
                }
                None => {
                    if active.is_none() {
                        self.status.activity = Activity::Failed { why: e };
                    } else {
                        self.status.offline = true;
                    }
                    report(&self.status);
                    return Outcome::Unchanged;
                }
            },
        };
        let candidates = self.candidates(&manifest, bucket);
        if candidates.is_empty() {
            if active.is_none() {
                self.status.activity = if manifest.models.is_empty() {
                    Activity::NonePublished
                } else if self.status.refused.is_empty() {
                    Activity::Failed { why: format!("no published model is compatible with app version {APP_VERSION}") }
                } else {
                    Activity::Failed { why: "no published model could be loaded".into() }
                };
            }
            report(&self.status);
            return Outcome::Unchanged;
        }
        for entry in candidates {
            if let Some(a) = active {
                // The chosen entry already runs: nothing to do. (An older
                // chosen entry means the publisher rolled back: swap to it.)
                if a.version == entry.version && a.sha256 == entry.sha256 {
                    break;
                }
            }
            match self.load(&entry, report).await {
                Ok(loaded) => {
                    self.status.activity = Activity::Idle;
                    self.status.active = Some(ActiveModel {
                        version: entry.version.to_string(),
                        metrics: entry.metrics.clone(),
                        replaced: active.map(|a| a.version.to_string()),
                        from_cache: loaded.1,
                    });
                    self.previous = active.cloned();
                    let keep: Vec<String> =
                        [Some(&entry), active].into_iter().flatten().flat_map(|e| e.files()).map(model_url).collect();
                    prune_cache(&keep).await;
                    report(&self.status);
                    let (recognizer, _, extras) = loaded;
                    return Outcome::Swap(Box::new(Loaded { entry, recognizer, extras }));
                }
                Err(why) => {
                    self.refuse(&entry, why);
                    self.status.activity = Activity::Idle;
                    report(&self.status);
                }
            }
        }
        if active.is_none() && self.status.active.is_none() {
            self.status.activity = Activity::Failed { why: "no published model could be loaded".into() };
        } else {
            self.status.activity = Activity::Idle;
        }
        report(&self.status);
        Outcome::Unchanged
    }

    /// Weights (stored copy, else download), checked, then the recognizer.
    /// The `bool` says the weights came from Cache Storage; the extras are what
    /// the entry adds to the decoder (names, general LM).
    #[allow(clippy::type_complexity)]
    async fn load(
        &mut self,
        entry: &ModelEntry,
        report: &dyn Fn(&ModelStatus),
    ) -> Result<(Recognizer, bool, DecoderExtras), String> {
        let extras = extras_of(entry).await?;
        let url = model_url(&entry.file);
        let cache = open_cache().await.ok();
        let mut from_cache = false;
        let mut bytes = None;
        if let Some(cache) = &cache {
            if let Some(stored) = cached_bytes(cache, &url).await {
                if hark_registry::verify_sha256(entry, &stored).is_ok() {
                    bytes = Some(stored);
                    from_cache = true;
                } else {
                    // A damaged stored copy: forget it and download again.
                    let _ = cache.delete_with_str(&url);
                }
            }
        }
        let bytes = match bytes {
            Some(b) => b,
            None => {
                let version = entry.version.to_string();
                let total = entry.size;
                self.status.activity = Activity::Downloading { version: version.clone(), loaded: 0, total };
                report(&self.status);
                let status = &mut self.status;
                let bytes = download(&url, |loaded| {
                    status.activity = Activity::Downloading { version: version.clone(), loaded, total };
                    report(status);
                })
                .await?;
                hark_registry::verify_sha256(entry, &bytes).map_err(|e| e.to_string())?;
                if let Some(cache) = &cache {
                    store(cache, &url, &bytes).await;
                }
                bytes
            }
        };
        let config = hark_recognizer::model_config(entry.architecture);
        let mut decoder = self.decoder_now();
        if self.decoder_built() && !extras.is_empty() {
            decoder = self.decoder_with(&extras)?;
        } else if let Some(lexicon) = &extras.lexicon {
            // A phone model is read through its lexicon from the first word.
            decoder.set_pronunciations(lexicon.clone());
        }
        let recognizer = Recognizer::new(&config, bytes, self.device.clone(), decoder).map_err(|e| e.to_string())?;
        Ok((recognizer, from_cache, extras))
    }
}

/// What `entry` adds to the decoder: its names, general LM and lexicon, each
/// file a stored copy or else a download, checked against the manifest's
/// sha256. A general LM is shared by entries (its name is its content's
/// hash), so a model update that keeps it downloads nothing more.
async fn extras_of(entry: &ModelEntry) -> Result<DecoderExtras, String> {
    let mut extras = DecoderExtras { search: entry.search, ..DecoderExtras::default() };
    if let Some(names) = &entry.names {
        let bytes = fetch_checked(names, "names").await?;
        extras.names = hark_registry::NameList::parse(&bytes)
            .map(|list| list.pairs())
            .map_err(|e| format!("{}: {e}", names.file))?;
    }
    if let Some(general) = &entry.general_lm {
        let bytes = fetch_checked(&general.file, "general LM").await?;
        let lm = hark_decode::NgramLm::from_bytes(&bytes).map_err(|e| format!("{}: {e}", general.file.file))?;
        extras.general = Some((std::sync::Arc::new(lm), general.weight as f32));
    }
    if let Some(lexicon) = &entry.lexicon {
        let bytes = fetch_checked(lexicon, "lexicon").await?;
        let text = String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", lexicon.file))?;
        let parsed = hark_decode::Lexicon::parse(&text).map_err(|e| format!("{}: {e}", lexicon.file))?;
        extras.lexicon = Some(std::sync::Arc::new(parsed));
    }
    Ok(extras)
}

/// A file beside the weights (`what` it is): the stored copy when its sha256
/// is the manifest's, else downloaded, checked and stored.
async fn fetch_checked(file: &hark_registry::FileRef, what: &str) -> Result<Vec<u8>, String> {
    let url = model_url(&file.file);
    let cache = open_cache().await.ok();
    if let Some(cache) = &cache
        && let Some(stored) = cached_bytes(cache, &url).await
        && file.check(&stored).is_ok()
    {
        return Ok(stored);
    }
    let downloaded = download(&url, |_| {}).await?;
    file.check(&downloaded).map_err(|e| format!("{e} ({what})"))?;
    if let Some(cache) = &cache {
        store(cache, &url, &downloaded).await;
    }
    Ok(downloaded)
}

fn model_url(file: &str) -> String {
    format!("models/{file}")
}

fn scope() -> WorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn js_error(e: JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

async fn fetch_response(url: &str, no_cache: bool) -> Result<Response, String> {
    let init = web_sys::RequestInit::new();
    if no_cache {
        init.set_cache(web_sys::RequestCache::NoCache);
    }
    let response = JsFuture::from(scope().fetch_with_str_and_init(url, &init))
        .await
        .map_err(|e| format!("{url}: {}", js_error(e)))?;
    let response: Response = response.dyn_into().map_err(|_| format!("{url}: not a response"))?;
    if !response.ok() {
        return Err(format!("HTTP {} for {url}", response.status()));
    }
    Ok(response)
}

async fn response_text(response: &Response) -> Result<String, String> {
    let text = JsFuture::from(response.text().map_err(js_error)?).await.map_err(js_error)?;
    text.as_string().ok_or_else(|| "response body is not text".into())
}

/// The keys whose signature on the manifest this app accepts, built in:
/// `keys/trusted.pub`, or the comma-separated hex keys in
/// `HARK_MANIFEST_KEYS` when the app was built with it set.
pub fn trusted_keys() -> Result<Vec<PublicKey>, String> {
    const KEYS: &str = match option_env!("HARK_MANIFEST_KEYS") {
        Some(keys) => keys,
        None => include_str!("../../../../keys/trusted.pub"),
    };
    PublicKey::parse_list(KEYS).map_err(|e| format!("this app was built with a bad manifest key list: {e}"))
}

/// Why no manifest came from the network.
enum Fetch {
    /// Network or HTTP failure: the stored copy stands in (offline).
    Unreachable(String),
    /// It came, and is not one to trust: not a manifest, or not signed by
    /// a trusted key, or changed after signing.
    Refused(String),
}

/// Reads and checks a manifest's text; the message says why it was refused.
fn verified(text: &str) -> Result<Manifest, String> {
    let keys = trusted_keys()?;
    Manifest::parse_verified(text, &keys).map_err(|e| match e {
        ManifestError::Signature(why) => why.to_string(),
        other => other.to_string(),
    })
}

/// The published manifest, checked; on success a copy is stored for
/// offline use. The `bool` is true when the service worker answered with its
/// stored copy because the network failed.
async fn fetch_manifest() -> Result<(Manifest, bool), Fetch> {
    let response = fetch_response(MANIFEST_URL, true).await.map_err(Fetch::Unreachable)?;
    let offline = response.headers().get("x-hark-offline").ok().flatten().is_some();
    let text = response_text(&response).await.map_err(Fetch::Unreachable)?;
    let manifest = verified(&text).map_err(Fetch::Refused)?;
    if !offline {
        if let Ok(cache) = open_cache().await {
            store(&cache, MANIFEST_URL, text.as_bytes()).await;
        }
    }
    Ok((manifest, offline))
}

async fn stored_manifest() -> Option<Manifest> {
    let cache = open_cache().await.ok()?;
    let bytes = cached_bytes(&cache, MANIFEST_URL).await?;
    verified(std::str::from_utf8(&bytes).ok()?).ok()
}

/// Downloads `url`, calling `progress(bytes so far)` as chunks arrive.
async fn download(url: &str, mut progress: impl FnMut(u64)) -> Result<Vec<u8>, String> {
    let response = fetch_response(url, false).await?;
    let Some(body) = response.body() else {
        return array_buffer(&response).await;
    };
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut bytes = Vec::new();
    let mut reported = 0u64;
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(|e| format!("{url}: {}", js_error(e)))?;
        if Reflect::get(&chunk, &"done".into()).map(|d| d.is_truthy()).unwrap_or(true) {
            break;
        }
        let value: Uint8Array = Reflect::get(&chunk, &"value".into())
            .map_err(js_error)?
            .dyn_into()
            .map_err(|_| format!("{url}: the download stream gave something other than bytes"))?;
        let start = bytes.len();
        bytes.resize(start + value.length() as usize, 0);
        value.copy_to(&mut bytes[start..]);
        // Report every 64 KiB, not every chunk.
        if bytes.len() as u64 - reported >= 64 * 1024 {
            reported = bytes.len() as u64;
            progress(reported);
        }
    }
    progress(bytes.len() as u64);
    Ok(bytes)
}

async fn array_buffer(response: &Response) -> Result<Vec<u8>, String> {
    let buffer = JsFuture::from(response.array_buffer().map_err(js_error)?).await.map_err(js_error)?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

async fn open_cache() -> Result<Cache, String> {
    let caches = scope().caches().map_err(js_error)?;
    JsFuture::from(caches.open(MODEL_CACHE)).await.map_err(js_error)?.dyn_into().map_err(js_error)
}

async fn cached_bytes(cache: &Cache, url: &str) -> Option<Vec<u8>> {
    let hit = JsFuture::from(cache.match_with_str(url)).await.ok()?;
    let response: Response = hit.dyn_into().ok()?;
    array_buffer(&response).await.ok()
}

async fn store(cache: &Cache, url: &str, bytes: &[u8]) {
    let mut copy = bytes.to_vec();
    let Ok(response) = Response::new_with_opt_u8_array(Some(&mut copy)) else { return };
    if let Err(e) = JsFuture::from(cache.put_with_str(url, &response)).await {
        // Full storage or private mode: the model still runs from memory.
        web_sys::console::warn_1(&format!("could not store {url} in Cache Storage: {}", js_error(e)).into());
    }
}

/// Drops stored weights other than `keep` (the manifest copy stays).
async fn prune_cache(keep: &[String]) {
    let Ok(cache) = open_cache().await else { return };
    let Ok(keys) = JsFuture::from(cache.keys()).await else { return };
    let keys: js_sys::Array = keys.unchecked_into();
    let keep: Vec<String> = keep.iter().map(|k| absolute(k)).collect();
    for request in keys.iter() {
        let Ok(request) = request.dyn_into::<web_sys::Request>() else { continue };
        let url = request.url();
        let is_weights = url.contains("/models/") && !url.ends_with("manifest.json");
        if is_weights && !keep.contains(&url) {
            let _ = cache.delete_with_request(&request);
        }
    }
}

/// `path` resolved against the worker's location, as Cache Storage keys are.
fn absolute(path: &str) -> String {
    let base = scope().location().href();
    web_sys::Url::new_with_base(path, &base).map(|u| u.href()).unwrap_or_else(|_| path.to_owned())
}
