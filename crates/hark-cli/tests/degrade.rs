//! `hark data degrade` on the smoke corpus: a dev copy under one fixed condition.

mod support;

use support::{hark, jsonl, samples};

#[test]
fn writes_a_dev_copy_under_the_condition_and_never_overwrites_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    assert!(hark(&["data", "synth", "--preset", "smoke", "--out", data_s]).status.success());
    let corpus = jsonl(&data.join("manifest.jsonl"));
    let clean_dev: Vec<&serde_json::Value> =
        corpus.iter().filter(|u| u["split"] == "dev" && u["tags"]["noise"] == "clean").collect();
    assert!(!clean_dev.is_empty(), "the smoke corpus has clean dev utterances");

    let args = ["data", "degrade", "--data", data_s, "--name", "dev-dark-car5", "--split", "dev"];
    let condition = ["--noise", "car", "--snr", "5", "--shelf", "-10", "--lead", "0.25", "--seed", "3"];
    let out = hark(&[&args[..], &condition].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let copy = jsonl(&data.join("manifest-dev-dark-car5.jsonl"));
    assert_eq!(copy.len(), clean_dev.len(), "every clean dev utterance, nothing else");
    for (c, u) in copy.iter().zip(&clean_dev) {
        assert_eq!(c["text"], u["text"]);
        assert_eq!(c["id"], format!("{}-dev-dark-car5", u["id"].as_str().unwrap()));
        assert_eq!(c["tags"]["noise"], "car");
        assert_eq!(c["tags"]["snr"], "5-10db");
        assert_eq!(c["tags"]["condition"], "dev-dark-car5");
        let longer = c["duration_s"].as_f64().unwrap() - u["duration_s"].as_f64().unwrap();
        assert!((longer - 0.25).abs() < 1e-3, "0.25 s of leading silence, got {longer}");
        let noisy = samples(&data.join(c["audio"].as_str().unwrap()));
        // The leading quarter second is noise, not digital silence.
        assert!(noisy[..4_000].iter().filter(|&&s| s != 0).count() > 3_000);
    }

    // Same seed, another name: the same audio (deterministic per utterance id).
    assert!(
        hark(&[&["data", "degrade", "--data", data_s, "--name", "again"][..], &condition[..]].concat())
            .status
            .success()
    );
    let again = jsonl(&data.join("manifest-again.jsonl"));
    assert_eq!(
        samples(&data.join(again[0]["audio"].as_str().unwrap())),
        samples(&data.join(copy[0]["audio"].as_str().unwrap()))
    );

    // Refusals name what was wrong and leave the earlier copy as it was.
    let before = std::fs::read(data.join("manifest-dev-dark-car5.jsonl")).unwrap();
    let refused = |args: &[&str], says: &str| {
        let out = hark(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says), "hark {args:?}: {stderr}");
    };
    refused(&[&args[..], &condition].concat(), "already exists");
    refused(&["data", "degrade", "--data", data_s, "--name", "../up"], "--name");
    refused(&["data", "degrade", "--data", data_s, "--name", "x", "--lead=-1"], "seconds");
    refused(&["data", "degrade", "--data", data_s, "--name", "x", "--noise", "traffic"], "traffic");
    refused(&["data", "degrade", "--data", data_s, "--name", "y", "--split", "valid"], "unknown split");
    assert_eq!(std::fs::read(data.join("manifest-dev-dark-car5.jsonl")).unwrap(), before);
}
