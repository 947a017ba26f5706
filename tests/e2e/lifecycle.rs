//! The app's life after the first visit, in real headless Chromium: a model
//! published while the page is open is swapped in (and a damaged one is
//! refused), an offline reload still transcribes, and a new deploy of the
//! app waits for the person's "Reload to update".

use std::path::Path;
use std::time::Duration;

use hark_e2e::{
    AppServer, Chromium, LaunchOptions, MODEL_READY, OFFLINE_READY, copy_folder, dist_dir, heard_wer, microphone_wav,
    repo_root,
};

const LOAD: Duration = Duration::from_secs(90);

const STATUS: &str = "document.querySelector('#model-status').textContent";

/// How [`publish`] leaves the manifest.
#[derive(Clone, Copy, PartialEq)]
enum Release {
    /// Signed with the development key, weights intact.
    Good,
    /// Signed, but one byte of the weights flipped after hashing.
    DamagedWeights,
    /// The new entry added to a signed manifest without signing it again,
    /// as someone with write access to the static host alone could.
    Unsigned,
}

/// Adds `version` to the manifest in `models`, with the weights of the
/// repository's newest published model.
fn publish(models: &Path, version: &str, release: Release) -> anyhow::Result<()> {
    let published = repo_root().join("web/models");
    let original: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(published.join("manifest.json"))?)?;
    let newest = original["models"].as_array().and_then(|m| m.last()).cloned();
    let newest = newest.ok_or_else(|| anyhow::anyhow!("web/models/manifest.json lists no model"))?;
    let mut bytes = std::fs::read(published.join(newest["file"].as_str().unwrap_or_default()))?;
    let path = models.join("manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let entries = manifest["models"].as_array_mut().ok_or_else(|| anyhow::anyhow!("manifest has no models"))?;
    if release == Release::DamagedWeights {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
    }
    let file = format!("hark-{version}.bpk");
    std::fs::write(models.join(&file), &bytes)?;
    let mut entry = newest.clone();
    entry["version"] = version.into();
    entry["file"] = file.into();
    entry["parent_version"] = newest["version"].clone();
    if release == Release::Good {
        // With names for the decoder, as a decoder-only update brings them.
        let names = br#"{"names": [{"class": "person", "name": "zorina kaltvedt"}]}"#;
        let file = format!("names-{version}.json");
        std::fs::write(models.join(&file), names)?;
        entry["names"] = serde_json::json!({"file": file, "sha256": hark_registry::sha256_hex(names)});
    }
    entries.push(entry);
    // Weights first, then the manifest, replaced in one step: a browser never
    // sees an entry whose file is not there yet.
    let text = match release {
        Release::Unsigned => serde_json::to_string_pretty(&manifest)?,
        _ => signed(&manifest)?,
    };
    replace(&path, &text)
}

/// `manifest` signed with the repository's development key, which the app
/// built from this repository trusts.
fn signed(manifest: &serde_json::Value) -> anyhow::Result<String> {
    let key = std::fs::read_to_string(repo_root().join("keys/development.key"))?;
    let key = hark_registry::signing::SigningKey::from_hex(&key)?;
    let manifest: hark_registry::Manifest = serde_json::from_value(manifest.clone())?;
    Ok(manifest.to_signed_json(&key)?)
}

fn replace(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)?;
    Ok(())
}

/// Withdraws the newest entry, as `hark rollback` does.
fn roll_back(models: &Path) -> anyhow::Result<()> {
    let path = models.join("manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    manifest["models"].as_array_mut().ok_or_else(|| anyhow::anyhow!("manifest has no models"))?.pop();
    replace(&path, &signed(&manifest)?)
}

fn newest_version() -> anyhow::Result<String> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("web/models/manifest.json"))?)?;
    Ok(manifest["models"].as_array().and_then(|m| m.last()).and_then(|e| e["version"].as_str()).unwrap_or("?").into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_published_while_the_page_is_open_is_swapped_in_without_a_reload() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let wav = microphone_wav(dir.path())?;
    let models = copy_folder(&repo_root().join("web/models"))?;
    let server = AppServer::start_with_models(models.path().to_path_buf()).await?;
    let chromium =
        Chromium::launch(LaunchOptions { webgpu: false, fake_microphone: Some(wav), ..Default::default() }).await?;
    // Check for updates every ~2 s instead of every 30 minutes.
    let app = chromium.open(&server.url("/?update-minutes=0.03")).await?;
    let state: String = app.wait(MODEL_READY, LOAD).await?;
    let newest = newest_version()?;
    let text: String = app.eval(STATUS).await?;
    anyhow::ensure!(state == "ready" && text.starts_with(&format!("Model {newest} is ready")), "{state}: {text}");
    app.page.evaluate("window.sameDocument = true").await?;

    // A manifest changed after signing is refused, visibly; the running model stays.
    publish(models.path(), "8.0.0", Release::Unsigned)?;
    let refused: String = app
        .wait(
            &format!("(() => {{ const t = {STATUS}; return t.includes('model list was refused') ? t : null; }})()"),
            LOAD,
        )
        .await?;
    assert!(refused.starts_with(&format!("Model {newest} is ready")), "{refused}");
    assert!(refused.contains("changed after signing") && refused.contains("keeps working"), "{refused}");
    let shown: String =
        app.eval("document.querySelector('#model-status').checkVisibility() ? 'visible' : 'hidden'").await?;
    assert_eq!(shown, "visible");
    roll_back(models.path())?;

    // A damaged release is refused; the running model stays.
    publish(models.path(), "9.0.0", Release::DamagedWeights)?;
    let refused: String = app
        .wait(
            &format!("(() => {{ const t = {STATUS}; return t.includes('model 9.0.0 was not loaded') ? t : null; }})()"),
            LOAD,
        )
        .await?;
    assert!(refused.starts_with(&format!("Model {newest} is ready")), "{refused}");
    assert!(refused.contains("sha256"), "{refused}");

    // A good release (weights and decoder names) is downloaded, checked and swapped in.
    publish(models.path(), "9.0.1", Release::Good)?;
    let swapped: String = app
        .wait(
            &format!("(() => {{ const t = {STATUS}; return t.startsWith('Model 9.0.1 is ready') ? t : null; }})()"),
            LOAD,
        )
        .await?;
    assert!(swapped.contains(&format!("Updated from {newest} without a reload")), "{swapped}");
    let same_document: bool = app.eval("window.sameDocument === true").await?;
    assert!(same_document, "the page reloaded instead of swapping the model");

    // The next utterance is recognised by the new model.
    let (heard, _) = app.speak(1, LOAD).await?;
    let model: String = app.eval("document.querySelector('#transcript').dataset.model").await?;
    assert_eq!(model, "9.0.1", "heard {heard:?}");
    assert!(!heard.is_empty());

    // Rolled back (9.0.1 and the refused 9.0.0 withdrawn): the page swaps back.
    roll_back(models.path())?;
    roll_back(models.path())?;
    let back: String = app
        .wait(
            &format!("(() => {{ const t = {STATUS}; return t.startsWith('Model {newest} is ready') ? t : null; }})()"),
            LOAD,
        )
        .await?;
    assert!(back.contains("Updated from 9.0.1 without a reload"), "{back}");
    let errors = app.console.errors();
    chromium.close().await;
    assert!(errors.is_empty(), "the page reported errors:\n{}", errors.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_one_visit_an_offline_reload_still_transcribes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let wav = microphone_wav(dir.path())?;
    let server = AppServer::start().await?;
    let origin = server.base_url.trim_start_matches("http://").to_owned();
    let chromium =
        Chromium::launch(LaunchOptions { webgpu: false, fake_microphone: Some(wav), ..Default::default() }).await?;
    let app = chromium.open(&server.base_url).await?;
    app.model_ready(LOAD).await?;
    let _: bool = app.wait(OFFLINE_READY, LOAD).await?;

    // Take the server down: nothing answers on that port any more.
    drop(server);
    tokio::time::sleep(Duration::from_millis(500)).await;
    anyhow::ensure!(tokio::net::TcpStream::connect(&origin).await.is_err(), "the server still answers");

    app.page.reload().await?;
    let state: String = app.wait(MODEL_READY, LOAD).await?;
    let text: String = app.eval(STATUS).await?;
    assert_eq!(state, "ready", "{text}");
    assert!(text.contains("Offline: using the stored copy"), "{text}");

    let (heard, _) = app.speak(1, LOAD).await?;
    let errors = app.console.errors();
    chromium.close().await;
    let (measured, bar) = heard_wer(&heard)?;
    assert!(measured <= bar, "offline, heard {heard:?}: WER {measured:.2} > {bar:.2}");
    // Failed loads of the manifest while offline are expected; nothing else.
    let unexpected: Vec<&String> =
        errors.iter().filter(|e| !e.contains("manifest.json") && !e.contains("ERR_CONNECTION_REFUSED")).collect();
    assert!(unexpected.is_empty(), "the page reported errors:\n{unexpected:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_app_version_waits_for_reload_to_update() -> anyhow::Result<()> {
    let dist = copy_folder(&dist_dir()?)?;
    let server = AppServer::start_with(dist.path().to_path_buf(), repo_root().join("web/models")).await?;
    let chromium = Chromium::launch(LaunchOptions::default()).await?;
    let app = chromium.open(&server.base_url).await?;
    app.model_ready(LOAD).await?;
    let _: bool = app.wait(OFFLINE_READY, LOAD).await?;
    let banner: bool = app.eval("!!document.querySelector('#update-banner')").await?;
    assert!(!banner, "a first visit has nothing to update");

    // Deploy a new build while the page is open.
    std::fs::write(dist.path().join("build.js"), "self.HARK_BUILD = \"e2e-next\";\n")?;
    app.page
        .evaluate("window.oldPage = true; navigator.serviceWorker.getRegistration().then((r) => r.update())")
        .await?;
    let _: bool = app.wait("document.querySelector('#update-banner') ? true : null", LOAD).await?;
    // Until the person agrees, the old version keeps the page.
    let caches: Vec<String> = app.eval("caches.keys()").await?;
    assert!(caches.iter().any(|k| k.starts_with("hark-shell-") && k != "hark-shell-e2e-next"), "{caches:?}");

    app.page.evaluate("document.querySelector('#reload').click()").await?;
    let reloaded: Vec<String> = app
        .wait(
            "(async () => window.oldPage || !navigator.serviceWorker.controller ? null : \
             ((k) => k.includes('hark-shell-e2e-next') && k.filter((n) => n.startsWith('hark-shell-')).length === 1 ? k : null)(await caches.keys()))()",
            LOAD,
        )
        .await?;
    let errors = app.console.errors();
    chromium.close().await;
    assert!(reloaded.contains(&"hark-shell-e2e-next".to_owned()), "{reloaded:?}");
    assert!(errors.is_empty(), "the page reported errors:\n{}", errors.join("\n"));
    Ok(())
}
