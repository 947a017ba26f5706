//! Speaking to the app: a test-split synthesizer voice (flite, never heard
//! in training) is fed to headless Chromium as its microphone; the page must
//! recognise it on the device and put the words in the search box.

use std::path::Path;
use std::time::Duration;

use hark_e2e::{AppServer, Chromium, LaunchOptions, repo_root};

const LOAD: Duration = Duration::from_secs(90);

const MODEL_READY: &str = r#"(() => {
    const el = document.querySelector('#model-status');
    return el && ['ready', 'failed', 'none'].includes(el.dataset.state) ? el.dataset.state : null;
})()"#;

/// The utterance with a second of silence before it (the endpointer learns
/// the noise floor) and three after (it hears the end).
fn microphone_wav(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let source = repo_root().join("crates/hark-recognizer/testdata/bangalore.wav");
    let mut reader = hound::WavReader::open(&source)?;
    let spec = reader.spec();
    let samples: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
    let path = dir.join("mic.wav");
    let mut w = hound::WavWriter::create(&path, spec)?;
    let pad = |s: u32| std::iter::repeat_n(0i16, (s * spec.sample_rate) as usize);
    for s in pad(1).chain(samples).chain(pad(3)) {
        w.write_sample(s)?;
    }
    w.finalize()?;
    Ok(path)
}

fn published_test_wer() -> anyhow::Result<f64> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("web/models/manifest.json"))?)?;
    let models = manifest["models"].as_array().cloned().unwrap_or_default();
    let newest = models.last().ok_or_else(|| anyhow::anyhow!("web/models/manifest.json lists no model"))?;
    newest["metrics"]["test_wer"].as_f64().ok_or_else(|| anyhow::anyhow!("the published model has no test_wer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoken_query_reaches_the_search_box_on_the_cpu_path() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let wav = microphone_wav(dir.path())?;
    let reference = "temperature in bangalore at three twenty p m";
    let server = AppServer::start().await?;
    let chromium = Chromium::launch(LaunchOptions { webgpu: false, fake_microphone: Some(wav) }).await?;
    let app = chromium.open(&server.base_url).await?;
    let state: String = app.wait(MODEL_READY, LOAD).await?;
    anyhow::ensure!(state == "ready", "the model did not load: {state}");
    app.page.evaluate("document.querySelector('#mic').click()").await?;
    let heard: String = app
        .wait(
            "(() => { const t = document.querySelector('#transcript'); return t && t.dataset.decodeMs ? document.querySelector('#query').value : null; })()",
            LOAD,
        )
        .await?;
    let decode_ms: String = app.wait("document.querySelector('#transcript').dataset.decodeMs", LOAD).await?;
    let errors = app.console.errors();
    chromium.close().await;
    let bar = published_test_wer()? + 0.10;
    let measured = hark_eval::ErrorCounts::words(reference, &heard).rate();
    eprintln!("heard {heard:?} (WER {measured:.2}, bar {bar:.2}); end of speech → transcript {decode_ms} ms");
    assert!(measured <= bar, "heard {heard:?} for {reference:?}: WER {measured:.2} > test WER + 10 points ({bar:.2})");
    assert!(errors.is_empty(), "the page reported errors:\n{}", errors.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_microphone_the_page_says_so_and_typing_still_works() -> anyhow::Result<()> {
    let server = AppServer::start().await?;
    // No fake device and no auto-accepted prompt: headless Chromium has no
    // microphone to give.
    let chromium = Chromium::launch(LaunchOptions::default()).await?;
    let app = chromium.open(&server.base_url).await?;
    let _: String = app.wait(MODEL_READY, LOAD).await?;
    app.page.evaluate("document.querySelector('#mic').click()").await?;
    let message: String = app.wait("document.querySelector('#mic-error')?.textContent", LOAD).await?;
    assert!(message.contains("type your search"), "{message}");
    let state: String = app.wait("document.querySelector('#mic').dataset.state", LOAD).await?;
    assert_eq!(state, "idle");
    chromium.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_weights_are_refused_and_the_previous_model_is_used() -> anyhow::Result<()> {
    // A models folder whose newest weights were damaged after publishing.
    let models = tempfile::tempdir()?;
    let published = repo_root().join("web/models");
    for entry in std::fs::read_dir(&published)? {
        let entry = entry?;
        std::fs::copy(entry.path(), models.path().join(entry.file_name()))?;
    }
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(published.join("manifest.json"))?)?;
    let newest = manifest["models"].as_array().and_then(|m| m.last()).cloned().unwrap_or_default();
    let file = models.path().join(newest["file"].as_str().unwrap_or_default());
    let mut bytes = std::fs::read(&file)?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes)?;

    let server = AppServer::start_with_models(models.path().to_path_buf()).await?;
    let chromium = Chromium::launch(LaunchOptions::default()).await?;
    let app = chromium.open(&server.base_url).await?;
    let state: String = app.wait(MODEL_READY, LOAD).await?;
    let text: String = app.wait("document.querySelector('#model-status').textContent", LOAD).await?;
    chromium.close().await;
    let previous = manifest["models"].as_array().and_then(|m| m.iter().rev().nth(1)).cloned();
    let newest_version = newest["version"].as_str().unwrap_or("?");
    assert!(text.contains("sha256") && text.contains(&format!("model {newest_version} was not loaded")), "{text}");
    match previous {
        // Rollback: the model before it is loaded instead.
        Some(p) => {
            assert_eq!(state, "ready", "{text}");
            assert!(text.starts_with(&format!("Model {} is ready", p["version"].as_str().unwrap_or("?"))), "{text}");
        }
        None => assert_eq!(state, "failed", "{text}"),
    }
    Ok(())
}
