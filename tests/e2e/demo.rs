//! `cargo xtask demo-drift --quick`: every stage of the monitoring loop's
//! story at toy sizes, against the real `hark` binary, server and browser.

use std::path::PathBuf;

use hark_e2e::demo::{self, Options};

/// The `hark` binary beside this test's own build (`target/debug/hark`).
fn hark_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("HARK_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(|deps| deps.parent()).ok_or_else(|| anyhow::anyhow!("no target folder"))?;
    let hark = dir.join("hark");
    anyhow::ensure!(
        hark.is_file(),
        "{} is missing: build it with `cargo build -p hark-cli` (cargo xtask test does)",
        hark.display()
    );
    Ok(hark)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drift_story_runs_end_to_end_and_the_open_page_swaps_to_the_published_fix() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let options =
        Options { quick: true, hark: hark_binary()?, work: work.path().to_owned(), corpus: work.path().join("corpus") };
    let outcome = demo::run(&options).await?;
    println!("{}", outcome.report());
    // The monitor named reserved names and the car noise; the gate promoted
    // a fix that lowered the drift slice's WER; the page swapped to it.
    let reserved: Vec<String> =
        std::fs::read_to_string(hark_e2e::repo_root().join("crates/hark-data/corpus/new_names.txt"))?
            .lines()
            .filter_map(|l| l.split_once('\t').map(|(_, n)| n.trim().to_owned()))
            .collect();
    assert!(outcome.new_names.iter().any(|n| reserved.contains(n)), "flagged {:?}", outcome.new_names);
    assert!(outcome.alerts.iter().any(|a| a == "snr_db" || a.starts_with("band_")), "alerts {:?}", outcome.alerts);
    assert!(outcome.drift_after < outcome.drift_before, "{}", outcome.report());
    assert!(outcome.published.is_some());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.path().join("models/manifest.json"))?)?;
    let newest = manifest["models"].as_array().and_then(|m| m.last()).cloned().unwrap_or_default();
    assert!(newest["names"]["file"].is_string(), "the published entry carries the new names: {newest}");
    assert!(manifest["signatures"].as_array().is_some_and(|s| !s.is_empty()), "the manifest is signed");
    Ok(())
}
