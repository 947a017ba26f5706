//! `hark harvest` after `hark monitor` raised an alert: a new name people
//! keep correcting to, and car noise in half of the window. The harvest
//! must bring that name, in its class's templates, spoken by training
//! voices with car noise under half of them; a drift slice in voices no
//! split trains on, sharing no text with training; and the corrected
//! recordings, held-out installs apart.

mod support;

use std::collections::BTreeSet;

use hark_monitor::ReferenceProfile;
use hark_monitor::profile::PROFILE_VERSION;
use support::{Row, event, hark, jsonl, store};

#[test]
fn an_alert_becomes_data_of_the_kind_that_drifted() {
    let dir = tempfile::tempdir().unwrap();
    let profile = ReferenceProfile {
        profile_version: PROFILE_VERSION,
        model_version: "0.7.0".into(),
        events: (0..500).map(|i| event(i, 0.0)).collect(),
        vocabulary: ["who", "is", "weather", "in", "paris"].map(String::from).to_vec(),
        slice_wer: Default::default(),
    };
    let profile_path = dir.path().join("profile.json");
    profile.save(&profile_path).unwrap();

    // Half the window in a car (lower SNR, louder low bands); one query in
    // ten corrected to a name nobody searched for before, with its recording.
    let installs: Vec<String> = (0..10).map(|i| format!("install-{i}")).collect();
    let voice: Vec<f32> = (0..16_000).map(|i| 0.3 * (i as f32 * 0.05).sin()).collect();
    let rows: Vec<Row> = (0..200)
        .map(|i| {
            let mut e = event(5000 + i, if i % 2 == 0 { 15.0 } else { 0.0 });
            if i % 2 == 0 {
                e.band_mean[..4].iter_mut().for_each(|b| *b += 1.5);
            }
            let corrected = i % 10 == 0;
            Row {
                event: e,
                heard: "who is paris",
                correction: corrected.then_some("who is zorina kaltvedt"),
                install: &installs[(i / 10) % 10],
                audio: corrected.then(|| voice.clone()),
            }
        })
        .collect();
    let data = dir.path().join("store");
    store(&data, &rows);
    let report_dir = dir.path().join("report");
    let out = hark(&[
        "monitor",
        "--store",
        data.to_str().unwrap(),
        "--model",
        "0.7.0",
        "--profile",
        profile_path.to_str().unwrap(),
        "--out",
        report_dir.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}{}", String::from_utf8_lossy(&out.stderr));

    let harvest = dir.path().join("harvest");
    let out = hark(&[
        "harvest",
        "--monitor",
        report_dir.join("summary.json").to_str().unwrap(),
        "--store",
        data.to_str().unwrap(),
        "--out",
        harvest.to_str().unwrap(),
        "--per-name",
        "4",
        "--dev-per-name",
        "1",
        "--drift-per-name",
        "2",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("zorina kaltvedt as person") && stdout.contains("noise shift: car"), "{stdout}");

    let train = jsonl(&harvest.join("manifest.jsonl"));
    let drift = jsonl(&harvest.join("drift.jsonl"));
    let synthesized = |rows: &[serde_json::Value], split: &str| -> Vec<serde_json::Value> {
        rows.iter().filter(|u| u["split"] == split && u["engine"] != "recorded").cloned().collect()
    };
    let (train_synth, dev_synth, drift_synth) =
        (synthesized(&train, "train"), synthesized(&train, "dev"), synthesized(&drift, "test"));
    assert_eq!((train_synth.len(), dev_synth.len(), drift_synth.len()), (4, 1, 2));
    for u in train_synth.iter().chain(&dev_synth).chain(&drift_synth) {
        assert!(u["text"].as_str().unwrap().contains("zorina kaltvedt"), "{u}");
        let audio = harvest.join(u["audio"].as_str().unwrap());
        assert_eq!(hound::WavReader::open(&audio).unwrap().spec().sample_rate, 16_000);
    }
    // Training and dev voices are the training splits' (espeak-ng, and the
    // MBROLA, festival, Pico and RHVoice voices where installed); the drift
    // slice is spoken by flite, which no split trains on.
    assert!(train_synth.iter().chain(&dev_synth).all(|u| u["engine"] != "flite"));
    assert!(drift_synth.iter().all(|u| u["engine"] == "flite"));
    let voice_of = |u: &serde_json::Value| format!("{} {}", u["engine"], u["voice"]);
    let train_voices: BTreeSet<String> = train_synth.iter().map(voice_of).collect();
    assert!(dev_synth.iter().all(|u| !train_voices.contains(&voice_of(u))), "a dev voice is a training voice");
    let train_texts: BTreeSet<&str> = train_synth.iter().map(|u| u["text"].as_str().unwrap()).collect();
    assert!(drift_synth.iter().all(|u| !train_texts.contains(u["text"].as_str().unwrap())), "no shared text");
    // The noise that drifted, under half of them.
    assert_eq!(train_synth.iter().filter(|u| u["tags"]["noise"] == "car").count(), 2);

    // Every corrected recording, as its correction; held-out installs only in the drift slice.
    let recorded: Vec<&serde_json::Value> = train.iter().chain(&drift).filter(|u| u["engine"] == "recorded").collect();
    assert_eq!(recorded.len(), 20);
    assert!(recorded.iter().all(|u| u["text"] == "who is zorina kaltvedt"));
    let voices = |rows: &[serde_json::Value]| -> BTreeSet<String> {
        rows.iter().filter(|u| u["engine"] == "recorded").map(|u| u["voice"].as_str().unwrap().to_owned()).collect()
    };
    assert!(voices(&train).is_disjoint(&voices(&drift)), "a held-out speaker was trained on");
    assert_eq!(std::fs::read_to_string(harvest.join("names.tsv")).unwrap(), "person\tzorina kaltvedt\n");
    assert!(!harvest.join("tmp").exists(), "the synthesizers' raw files are gone");

    // Nothing to harvest, or not a report: each says so.
    let calm = dir.path().join("calm.json");
    std::fs::write(
        &calm,
        r#"{"state":"ok","drift":{"checks":[]},"words":{"corrections":{"top_names":[],"top_words":[]}}}"#,
    )
    .unwrap();
    let out = hark(&["harvest", "--monitor", calm.to_str().unwrap(), "--out", dir.path().join("h2").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no drift to fix"));
    let out = hark(&[
        "harvest",
        "--monitor",
        profile_path.to_str().unwrap(),
        "--out",
        dir.path().join("h3").to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a `hark monitor` summary.json"));
    let out = hark(&[
        "harvest",
        "--monitor",
        report_dir.join("summary.json").to_str().unwrap(),
        "--store",
        dir.path().to_str().unwrap(),
        "--out",
        dir.path().join("h4").to_str().unwrap(),
        "--per-name",
        "1",
        "--dev-per-name",
        "1",
        "--drift-per-name",
        "1",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no collector store"));
}
