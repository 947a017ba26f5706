//! `hark monitor` as cron runs it: a report written over a collector store,
//! and an exit status that says ok (0), alert (1) or could not run (2) with
//! a message that names the problem.

mod support;

use std::path::Path;

use hark_monitor::ReferenceProfile;
use hark_monitor::profile::PROFILE_VERSION;
use support::{Row, event, hark, store};

#[test]
fn the_exit_status_says_ok_alert_or_could_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let profile = ReferenceProfile {
        profile_version: PROFILE_VERSION,
        model_version: "0.7.0".into(),
        events: (0..500).map(|i| event(i, 0.0)).collect(),
        vocabulary: ["weather", "in", "paris", "lisbon"].map(String::from).to_vec(),
        slice_wer: Default::default(),
    };
    let profile_path = dir.path().join("profile.json");
    profile.save(&profile_path).unwrap();
    let p = profile_path.to_str().unwrap();
    let run = |store: &Path, extra: &[&str]| {
        let out_dir = store.join("report");
        let mut args = vec!["monitor", "--store", store.to_str().unwrap(), "--model", "0.7.0", "--profile", p];
        args.extend(["--out", out_dir.to_str().unwrap()]);
        args.extend(extra);
        let out = hark(&args);
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };

    // Undrifted, with corrections: ok, and both files written.
    let calm = dir.path().join("calm");
    let rows: Vec<_> = (0..200)
        .map(|i| Row::new(event(1000 + i, 0.0), "weather in paris", (i % 10 == 0).then_some("weather in lisbon")))
        .collect();
    store(&calm, &rows);
    let (code, text) = run(&calm, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with("ok: 200 events"), "{text}");
    assert!(calm.join("report/index.html").is_file() && calm.join("report/summary.json").is_file());

    // A noisier world, and a name people keep correcting to: alert.
    let noisy = dir.path().join("noisy");
    let rows: Vec<_> = (0..200)
        .map(|i| {
            Row::new(
                event(2000 + i, if i % 2 == 0 { 15.0 } else { 0.0 }),
                "weather in paris",
                (i % 10 == 0).then_some("weather in ushuaia"),
            )
        })
        .collect();
    store(&noisy, &rows);
    let (code, text) = run(&noisy, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("signal-to-noise ratio") && text.contains("ushuaia"), "{text}");

    // Could not run: each says what is wrong.
    let (code, text) = run(&calm, &["--since", "2030-01-01"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("no events"), "{text}");
    let (code, text) = run(&calm, &["--since", "last tuesday"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("not a time"), "{text}");
    let out = hark(&["monitor", "--store", calm.to_str().unwrap(), "--model", "9.9.9", "--profile", p]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("no events of model version \"9.9.9\"") && text.contains("0.7.0 (200 events)"), "{text}");
    let missing = dir.path().join("none.json");
    let out = hark(&[
        "monitor",
        "--store",
        calm.to_str().unwrap(),
        "--model",
        "0.7.0",
        "--profile",
        missing.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("none.json cannot be read") && text.contains("hark profile"), "{text}");
    // No corrections at all: the report is written, the real error rate cannot be measured.
    let quiet = dir.path().join("quiet");
    let rows: Vec<_> = (0..100).map(|i| Row::new(event(3000 + i, 0.0), "weather in paris", None)).collect();
    store(&quiet, &rows);
    let (code, text) = run(&quiet, &[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("No corrections"), "{text}");
}
