//! `hark transcribe` on awkward input and `hark eval` on the smoke corpus,
//! with a tiny model trained for one epoch.

use std::path::Path;
mod support;

use support::{hark, ok, write_wav};

#[test]
fn transcribes_awkward_input_and_writes_an_error_analysis_report() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("data"), dir.path().join("run"));
    let (data_s, run_s) = (data.to_str().unwrap(), run.to_str().unwrap());
    ok(&["data", "synth", "--preset", "smoke", "--out", data_s]);
    ok(&[
        "train",
        "--data",
        data_s,
        "--out",
        run_s,
        "--epochs",
        "1",
        "--batch",
        "8",
        "--channels",
        "32",
        "--blocks",
        "1",
    ]);

    // Awkward files.
    let speech = hark_dsp::wav::read(
        &Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../hark-recognizer/testdata/bangalore.wav"),
    )
    .unwrap();
    let f = |name: &str| dir.path().join(name);
    write_wav(&f("silence.wav"), 16_000, 1, std::iter::repeat_n(0.0, 32_000));
    write_wav(&f("clipped.wav"), 16_000, 1, speech.samples.iter().map(|s| s * 40.0));
    write_wav(&f("tiny.wav"), 16_000, 1, speech.samples.iter().take(1_600).copied());
    // Stereo 44.1 kHz: the speech resampled by linear interpolation, twice.
    let stereo = (0..(speech.samples.len() as f64 * 44_100.0 / 16_000.0) as usize).flat_map(|i| {
        let s = speech.samples[((i as f64 * 16_000.0 / 44_100.0) as usize).min(speech.samples.len() - 1)];
        [s, s]
    });
    write_wav(&f("stereo44k.wav"), 44_100, 2, stereo);
    // Ten minutes: the utterance over and over with pauses.
    let long = (0..10 * 60 * 16_000).map(|i| {
        let j = i % (speech.samples.len() + 8_000);
        speech.samples.get(j).copied().unwrap_or(0.0)
    });
    write_wav(&f("ten_minutes.wav"), 16_000, 1, long);
    std::fs::write(f("notes.wav"), "these are not audio samples").unwrap();
    std::fs::write(f("empty.wav"), "").unwrap();

    let names =
        ["silence.wav", "clipped.wav", "tiny.wav", "stereo44k.wav", "ten_minutes.wav", "notes.wav", "empty.wav"];
    let paths: Vec<String> = names.iter().map(|n| f(n).to_str().unwrap().to_string()).collect();
    let mut args = vec!["transcribe", "--model", run_s];
    args.extend(paths.iter().map(String::as_str));
    let out = hark(&args);
    assert_eq!(out.status.code(), Some(1), "bad files make the exit status 1");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), names.len(), "one line per file, in order: {stdout}");
    for (line, name) in lines.iter().zip(names) {
        assert!(line["file"].as_str().unwrap().ends_with(name));
        if name == "notes.wav" || name == "empty.wav" {
            let err = line["error"].as_str().unwrap();
            assert!(err.contains(name) && err.contains("WAV"), "{err}");
        } else {
            for key in ["text", "confidence", "audio_s", "decode_ms"] {
                assert!(!line[key].is_null(), "{name}: no {key} in {line}");
            }
        }
    }
    let audio_s = |i: usize| lines[i]["audio_s"].as_f64().unwrap();
    assert!((audio_s(0) - 2.0).abs() < 1e-3 && (audio_s(2) - 0.1).abs() < 1e-3);
    assert!((audio_s(3) - speech.duration_s()).abs() < 0.01, "stereo 44.1k duration {}", audio_s(3));
    assert!((audio_s(4) - 600.0).abs() < 1e-3);
    // The first key order is the documented one.
    assert!(stdout.lines().next().unwrap().starts_with("{\"file\":"), "{stdout}");

    // The reference profile for monitoring: the dev split through the model.
    // The smoke corpus has too few dev utterances for one, and says so; its
    // dev utterances listed five times over make enough.
    let small = hark(&[
        "profile",
        "--data",
        data_s,
        "--model",
        run_s,
        "--version",
        "0.0.1",
        "--models",
        dir.path().to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&small.stderr);
    assert!(!small.status.success() && text.contains("a profile needs at least 100"), "{text}");
    let utterances = hark_data::manifest::read(&data.join("manifest.jsonl")).unwrap();
    let dev: Vec<_> = utterances.iter().filter(|u| u.split == hark_data::Split::Dev).collect();
    let copies = (100 / dev.len().max(1)) + 1;
    let repeated: Vec<_> = (0..copies)
        .flat_map(|c| {
            dev.iter().map(move |u| hark_data::manifest::Utterance { id: format!("{}-{c}", u.id), ..(*u).clone() })
        })
        .collect();
    let enough = data.join("manifest-dev.jsonl");
    hark_data::manifest::write(&enough, &repeated).unwrap();
    // `hark profile` of the tiny model over those, as version 0.0.1.
    let profile = |models: &Path, out: Option<&Path>| {
        let mut args = vec!["profile", "--data", enough.to_str().unwrap(), "--model", run_s, "--version", "0.0.1"];
        args.extend(["--models", models.to_str().unwrap()]);
        if let Some(out) = out {
            args.extend(["--out", out.to_str().unwrap()]);
        }
        ok(&args);
    };
    let profile_path = dir.path().join("profile.json");
    profile(dir.path(), Some(&profile_path));
    let loaded_profile = hark_monitor::ReferenceProfile::load(&profile_path).unwrap();
    assert_eq!(loaded_profile.model_version, "0.0.1");
    assert_eq!(loaded_profile.events.len(), repeated.len().min(2000));
    assert!(loaded_profile.events.iter().all(|e| (0.0..=1.0).contains(&e.confidence) && e.speech_s > 0.0));
    for word in ["weather", "in"] {
        assert!(loaded_profile.vocabulary.iter().any(|w| w == word), "the decoder's vocabulary holds {word:?}");
    }
    assert!(loaded_profile.vocabulary.iter().all(|w| !w.starts_with('<')), "class tokens are not words");

    // Error analysis.
    let report = dir.path().join("report");
    ok(&["eval", "--model", run_s, "--data", data_s, "--out", report.to_str().unwrap(), "--train-sample", "10"]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("summary.json")).unwrap()).unwrap();
    for split in ["train", "dev", "test"] {
        let s = &summary["splits"][split];
        assert!(s["utterances"].as_u64().unwrap() > 0, "{split}");
        assert!(s["wer"].as_f64().is_some() && s["words"]["substitutions"].is_number());
    }
    assert!(summary["bias_variance"]["diagnosis"].as_str().is_some());
    assert!(summary["slices"]["test"]["slices"]["voice"].is_object());
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("Bias and variance"));
    let results = std::fs::read_to_string(report.join("results.jsonl")).unwrap();
    assert!(results.lines().count() >= 10);
    // The free-form set is reported apart, with its bars: the headline.
    for split in ["free-form-dev", "free-form-test"] {
        assert!(summary["splits"][split]["utterances"].as_u64().unwrap() > 0, "{split}");
    }
    assert!(summary["splits"]["test"]["utterances"].as_u64().unwrap() > 0);
    assert!(summary["freeform"]["clean_wer"].as_f64().is_some() && summary["freeform"]["car_5db_ratio"].is_number());
    assert!(html.contains("Free-form test (the headline)"));

    // `hark eval` on the free-form set alone, with one more option.
    let report_s = report.to_str().unwrap();
    let freeform = |option: &str| {
        hark(&["eval", "--model", run_s, "--data", data_s, "--out", report_s, "--freeform-only", option])
    };
    // A peer recognizer's hypotheses, scored beside hark's: a perfect one
    // reads 0 % WER; one that skipped an utterance is refused, saying so.
    let manifest = hark_data::manifest::read(&data.join("manifest.jsonl")).unwrap();
    let lines: Vec<String> = manifest
        .iter()
        .filter(|u| u.split == hark_data::Split::Test && hark_data::text::is_freeform(u))
        .map(|u| serde_json::json!({"id": u.id, "text": u.text, "decode_s": 0.1}).to_string())
        .collect();
    let peer = dir.path().join("peer.jsonl");
    std::fs::write(&peer, lines.join("\n")).unwrap();
    let peer_arg = format!("--peer=perfect={}", peer.display());
    let out = freeform(&peer_arg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains("perfect: clean WER 0.0 %"), "{stderr}");
    std::fs::write(&peer, lines[1..].join("\n")).unwrap();
    let refused = freeform(&peer_arg);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("perfect has no hypothesis for 1 of the"));

    // The general English LM: built as bytes, interpolated by hark eval; a
    // file that is not one is refused by name.
    let lm = dir.path().join("english.lm");
    let built = ok(&["lm", "--out", lm.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&built.stderr).contains("free-form dev"), "coverage is reported");
    let out = freeform(&format!("--general-lm={}", lm.display()));
    assert!(out.status.success() && String::from_utf8_lossy(&out.stderr).contains("free-form test"));
    let refused = freeform(&format!("--general-lm={}", peer.display()));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a hark language model"));

    // Decoder tuning: every combination, one row each, best (lowest WER) first.
    let out = ok(&["tune", "--model", run_s, "--data", data_s, "--alpha", "0.3,1", "--beta", "0,2", "--beam", "8"]);
    let table = String::from_utf8(out.stdout).unwrap();
    // After the title and the column names, one row per setting.
    let wers: Vec<f64> =
        table.lines().skip(2).filter_map(|l| l.split_whitespace().next()?.parse::<f64>().ok()).collect();
    assert_eq!(wers.len(), 4, "{table}");
    assert!(wers.windows(2).all(|w| w[0] <= w[1]), "{table}");
    assert!(table.contains("dev utterances, 4 settings"), "{table}");
    let refused = hark(&["tune", "--model", run_s, "--data", data_s, "--split", "holdout"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown split \"holdout\""));

    // Checkpoint averaging: a run folder that transcribes; shapes must agree.
    // Publishing with a profile: it lies beside the weights and the
    // manifest entry names it with its sha256; `hark profile` records a
    // later one the same way.
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    ok(&[
        "publish",
        "--run",
        run_s,
        "--eval",
        report.join("summary.json").to_str().unwrap(),
        "--version",
        "0.0.1",
        "--training-data",
        "smoke",
        "--models",
        models.to_str().unwrap(),
        "--profile-data",
        enough.to_str().unwrap(),
    ]);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(models.join("manifest.json")).unwrap()).unwrap();
    let entry = &manifest["models"][0];
    assert_eq!(entry["profile"]["file"], "profile-0.0.1.json");
    let written = std::fs::read(models.join("profile-0.0.1.json")).unwrap();
    assert_eq!(entry["profile"]["sha256"].as_str(), Some(hark_registry::sha256_hex(&written).as_str()));
    let published = hark_monitor::ReferenceProfile::load(&models.join("profile-0.0.1.json")).unwrap();
    assert!(published.slice_wer.keys().any(|k| k.contains("wer")), "the published WER travels with it");
    std::fs::remove_file(models.join("profile-0.0.1.json")).unwrap();
    profile(&models, None);
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(models.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(again["models"][0]["profile"]["file"], "profile-0.0.1.json");

    // Every manifest hark writes is signed by a key the app trusts.
    let trusted = hark_registry::signing::PublicKey::parse_list(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../keys/trusted.pub")).unwrap(),
    )
    .unwrap();
    let read_verified = |keys: &[hark_registry::signing::PublicKey]| {
        hark_registry::Manifest::parse_verified(&std::fs::read_to_string(models.join("manifest.json")).unwrap(), keys)
    };
    assert_eq!(read_verified(&trusted).unwrap().models.len(), 1);
    releases(&models, run_s, &report.join("summary.json"), &trusted);

    let avg = dir.path().join("avg");
    ok(&["average", "--out", avg.to_str().unwrap(), run_s, &run.join("best.bpk").to_string_lossy()]);
    assert!(avg.join("best.bpk").is_file() && avg.join("config.json").is_file());
    let heard = ok(&["transcribe", "--model", avg.to_str().unwrap(), paths[3].as_str()]);
    assert!(String::from_utf8(heard.stdout).unwrap().contains("\"text\""));
    // The gate: a candidate no better on the drift slice is rejected (exit
    // 1) with the reason; an empty drift slice cannot be judged (exit 2).
    let lines: Vec<String> = std::fs::read_to_string(data.join("manifest.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"split\":\"dev\""))
        .take(6)
        .map(str::to_owned)
        .collect();
    assert!(!lines.is_empty(), "the smoke corpus has dev utterances");
    std::fs::write(data.join("drift.jsonl"), lines.join("\n") + "\n").unwrap();
    std::fs::write(data.join("empty.jsonl"), "").unwrap();
    let gate = |drift: &str| {
        let out_dir = dir.path().join("gate");
        let args = ["gate", avg.to_str().unwrap(), "--current", run_s, "--test", data_s, "--drift", drift];
        let out = hark(&[&args[..], &["--max-utterances", "6", "--out", out_dir.to_str().unwrap()]].concat());
        (out, out_dir)
    };
    let (same, out_dir) = gate(data.join("drift.jsonl").to_str().unwrap());
    let stdout = String::from_utf8_lossy(&same.stdout);
    assert_eq!(same.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&same.stderr));
    assert!(
        stdout.starts_with("REJECT") && stdout.contains("drift slice") && stdout.contains("NOT improved"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("gate.json")).unwrap()).unwrap();
    assert_eq!(report["promote"], false);
    assert_eq!(report["drift"]["utterances"].as_u64(), Some(lines.len() as u64));
    // A candidate the gate rejected is not published on its report; the
    // manifest stays as it was.
    let before = std::fs::read(models.join("manifest.json")).unwrap();
    let gate_json = out_dir.join("gate.json");
    let refused = hark(&[
        "publish",
        "--run",
        avg.to_str().unwrap(),
        "--eval",
        gate_json.to_str().unwrap(),
        "--version",
        "99.0.0",
        "--training-data",
        "rejected",
        "--models",
        models.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("the gate rejected this candidate"));
    assert_eq!(std::fs::read(models.join("manifest.json")).unwrap(), before, "the manifest changed");
    let (empty, _) = gate(data.join("empty.jsonl").to_str().unwrap());
    assert_eq!(empty.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&empty.stderr).contains("no drift slice"),
        "{}",
        String::from_utf8_lossy(&empty.stderr)
    );

    // The loop's last turn on a tiny scale: a harvest for a flagged name,
    // a fine-tune on it with replay, and the gate judging both fixes.
    let report_json = dir.path().join("monitor.json");
    std::fs::write(
        &report_json,
        r#"{"state": "alert", "drift": {"checks": []}, "words": {"corrections": {"top_names":
            [{"text": "zorina kaltvedt", "count": 7, "example": "who is zorina kaltvedt"}], "top_words": []}}}"#,
    )
    .unwrap();
    let harvest = dir.path().join("harvest");
    let h = harvest.to_str().unwrap();
    let args = ["--per-name", "6", "--dev-per-name", "2", "--drift-per-name", "3"];
    ok(&[&["harvest", "--monitor", report_json.to_str().unwrap(), "--out", h][..], &args].concat());
    let retrained = dir.path().join("retrained");
    let r = retrained.to_str().unwrap();
    let out = ok(&[
        "retrain",
        "--harvest",
        h,
        "--replay",
        data_s,
        "--from",
        run_s,
        "--out",
        r,
        "--epochs",
        "1",
        "--batch",
        "4",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("6 + 2 harvested (train + dev), 6 + 2 replayed"), "{stderr}");
    assert!(retrained.join("best.bpk").is_file() && retrained.join("run.json").is_file());
    let mixed = support::jsonl(&retrained.join("retrain-data.jsonl"));
    assert_eq!(mixed.len(), 16);
    assert!(mixed.iter().all(|u| Path::new(u["audio"].as_str().unwrap()).is_file()), "every audio path resolves");
    let drift = harvest.join("drift.jsonl");
    let judged = |extra: &[&str]| {
        let out_dir = dir.path().join("gate-loop");
        let args =
            ["gate", "--current", run_s, "--test", data_s, "--drift", drift.to_str().unwrap(), "--max-utterances", "4"];
        let out = hark(&[&args[..], extra, &["--out", out_dir.to_str().unwrap()]].concat());
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out_dir.join("gate.json")).unwrap()).unwrap();
        assert_eq!(report["drift"]["utterances"], 3);
        report
    };
    judged(&[r]);
    let names = harvest.join("names.tsv");
    let decoder_only = judged(&[run_s, "--candidate-names", names.to_str().unwrap()]);
    assert!(decoder_only["reasons"][0].as_str().unwrap().contains("drift slice"));

    let wide = dir.path().join("wide");
    ok(&[
        "train",
        "--data",
        data_s,
        "--out",
        wide.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch",
        "8",
        "--channels",
        "48",
        "--blocks",
        "1",
        "--max-utterances",
        "16",
    ]);
    let mixed = hark(&["average", "--out", dir.path().join("mixed").to_str().unwrap(), run_s, wide.to_str().unwrap()]);
    assert!(!mixed.status.success());
    assert!(
        String::from_utf8_lossy(&mixed.stderr).contains("another shape"),
        "{}",
        String::from_utf8_lossy(&mixed.stderr)
    );
}

/// Signing, rollback and an interrupted publish, on the folder that holds
/// 0.0.1: the manifest is always whole and signed.
fn releases(models: &Path, run: &str, summary: &Path, trusted: &[hark_registry::signing::PublicKey]) {
    use hark_registry::Manifest;
    let manifest_text = || std::fs::read_to_string(models.join("manifest.json")).unwrap();
    let versions = |text: &str| -> Vec<String> {
        Manifest::parse_verified(text, trusted).unwrap().models.iter().map(|e| e.version.to_string()).collect()
    };
    let publish = |version: &str| {
        let args = [
            "publish",
            "--run",
            run,
            "--eval",
            summary.to_str().unwrap(),
            "--version",
            version,
            "--training-data",
            "smoke",
            "--models",
            models.to_str().unwrap(),
        ];
        support::command(&args)
    };

    // A publish killed part-way leaves the old manifest or the new one, signed.
    let before = manifest_text();
    let mut finished = false;
    for delay_ms in [20, 80, 200, 400, 800, 1600] {
        let mut child = publish("0.0.2").spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        child.wait().unwrap();
        let now = manifest_text();
        if now == before {
            continue;
        }
        assert_eq!(versions(&now), ["0.0.1", "0.0.2"], "after a kill at {delay_ms} ms");
        finished = true;
        break;
    }
    if !finished {
        let out = publish("0.0.2").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(versions(&manifest_text()), ["0.0.1", "0.0.2"]);
    assert!(models.join("hark-0.0.2.bpk").is_file());

    // A manifest edited by hand no longer verifies until `hark sign`.
    let edited = manifest_text().replace("\"rollout_percent\": 100", "\"rollout_percent\": 90");
    std::fs::write(models.join("manifest.json"), &edited).unwrap();
    let err = Manifest::parse_verified(&edited, trusted).unwrap_err();
    assert!(err.to_string().contains("changed after signing"), "{err}");
    ok(&["sign", "--models", models.to_str().unwrap()]);
    assert!(
        Manifest::parse_verified(&manifest_text(), trusted).unwrap().models.iter().all(|e| e.rollout_percent == 90)
    );

    // Rollback withdraws the newest; with one left there is nothing to go back to.
    let out = ok(&["rollback", "--models", models.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("rolled back from 0.0.2 to 0.0.1"));
    assert_eq!(versions(&manifest_text()), ["0.0.1"]);
    assert!(!models.join("hark-0.0.2.bpk").exists());
    let refused = hark(&["rollback", "--models", models.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("needs the newest and one before"));

    // A decoder-only update: the current weights, new names. A class the
    // LM does not have is refused before anything is written.
    let names = models.parent().unwrap().join("new-names.tsv");
    std::fs::write(&names, "# kind<TAB>name\nperson\tzorina kaltvedt\nplace\tvelmora\n").unwrap();
    let bad_names = models.parent().unwrap().join("bad-names.tsv");
    std::fs::write(&bad_names, "planet\tzorgon\n").unwrap();
    let manifest_path = models.join("manifest.json");
    // Publishes the current weights again as `version`, with `extra` flags.
    let republish = |version: &str, extra: &[&str]| {
        let mut args = vec![
            "publish",
            "--run",
            manifest_path.to_str().unwrap(),
            "--eval",
            summary.to_str().unwrap(),
            "--version",
            version,
            "--training-data",
            "same weights, more for the decoder",
            "--models",
            models.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        hark(&args)
    };
    let decoder_only = |version: &str, names: &Path| republish(version, &["--names", names.to_str().unwrap()]);
    let before = manifest_text();
    let refused = decoder_only("0.0.2", &bad_names);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("\"planet\" is not a name class"), "{stderr}");
    assert_eq!(manifest_text(), before);
    let out = decoder_only("0.0.2", &names);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read = Manifest::parse_verified(&manifest_text(), trusted).unwrap();
    let entry = read.models.iter().find(|e| e.version.to_string() == "0.0.2").unwrap();
    let names_ref = entry.names.clone().expect("the entry names its names file");
    let written = std::fs::read(models.join(&names_ref.file)).unwrap();
    assert_eq!(names_ref.sha256, hark_registry::sha256_hex(&written));
    let list = hark_registry::NameList::parse(&written).unwrap();
    assert_eq!(list.pairs(), [("person".into(), "zorina kaltvedt".into()), ("place".into(), "velmora".into())]);
    let heard = hark(&["transcribe", "--model", manifest_path.to_str().unwrap(), summary.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&heard.stderr).contains("model 0.0.2"),
        "{}",
        String::from_utf8_lossy(&heard.stderr)
    );
    // A names file changed after publishing is refused by every reader.
    std::fs::write(models.join(&names_ref.file), b"{\"names\": []}").unwrap();
    let changed = hark(&["transcribe", "--model", manifest_path.to_str().unwrap(), summary.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&changed.stderr).contains("refusing a changed file (the names of model"));
    std::fs::write(models.join(&names_ref.file), &written).unwrap();
    ok(&["rollback", "--models", models.to_str().unwrap()]);
    assert!(!models.join(&names_ref.file).exists(), "rollback removes the withdrawn model's names");

    // A general English LM published with a model: checked, content-addressed,
    // kept by the next update, and left in place while an entry uses it.
    // Built the way the shipped one is: `hark lm --arpa` over a backoff model.
    let lm_path = models.parent().unwrap().join("english.lm");
    let arpa = models.parent().unwrap().join("english.arpa");
    std::fs::write(&arpa, SMALL_ARPA).unwrap();
    ok(&[
        "lm",
        "--arpa",
        arpa.to_str().unwrap(),
        "--bigrams",
        "3",
        "--trigrams",
        "1",
        "--out",
        lm_path.to_str().unwrap(),
    ]);
    let lm_bytes = std::fs::read(&lm_path).unwrap();
    let lm = hark_decode::NgramLm::from_bytes(&lm_bytes).unwrap();
    assert_eq!((lm.vocabulary_size(), lm.ngrams()), (3, (3, 1)), "pruned to the sizes asked for");
    assert!(lm.log_prob(None, Some("play"), "some") > lm.log_prob(None, Some("play"), "music"));
    let not_lm = models.parent().unwrap().join("not.lm");
    std::fs::write(&not_lm, b"hello").unwrap();
    let before = manifest_text();
    let refused = republish("0.0.3", &["--general-lm", not_lm.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("not.lm"), "{stderr}");
    assert_eq!(manifest_text(), before);
    let out = republish("0.0.3", &["--general-lm", lm_path.to_str().unwrap(), "--general-weight", "0.2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = republish("0.0.4", &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read = Manifest::parse_verified(&manifest_text(), trusted).unwrap();
    let general: Vec<_> = read.models.iter().map(|e| e.general_lm.clone().expect("both carry the LM")).collect();
    assert_eq!(general.len(), 2);
    assert_eq!(general[0], general[1], "the update keeps the model's general LM");
    assert_eq!(general[0].weight, 0.2);
    assert!(general[0].file.file.starts_with("english-") && general[0].file.file.ends_with(".lm"));
    assert_eq!(general[0].file.sha256, hark_registry::sha256_hex(&std::fs::read(&lm_path).unwrap()));
    let heard = hark(&["transcribe", "--model", manifest_path.to_str().unwrap(), summary.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&heard.stderr).contains("model 0.0.4"),
        "{}",
        String::from_utf8_lossy(&heard.stderr)
    );
    ok(&["rollback", "--models", models.to_str().unwrap()]);
    assert!(models.join(&general[0].file.file).exists(), "0.0.3 still uses the LM: rollback keeps it");
    std::fs::write(models.join(&general[0].file.file), b"changed").unwrap();
    let changed = hark(&["transcribe", "--model", manifest_path.to_str().unwrap(), summary.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&changed.stderr).contains("refusing a changed file (the general LM of model 0.0.3)")
    );
    std::fs::write(models.join(&general[0].file.file), &lm_bytes).unwrap();

    // Search settings chosen for a model travel in its entry; a bad one is
    // refused before anything is written, and a flag overrides them.
    let before = manifest_text();
    let refused = republish("0.0.5", &["--beam", "0"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("search.beam must be 1..=4096, got 0"), "{stderr}");
    assert_eq!(manifest_text(), before);
    assert!(!models.join("hark-0.0.5.bpk").exists(), "nothing written");
    let out = republish("0.0.5", &["--alpha", "0.7", "--beta=-1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = republish("0.0.6", &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read = Manifest::parse_verified(&manifest_text(), trusted).unwrap();
    let searches: Vec<_> = read.models.iter().map(|e| e.search).collect();
    let chosen = hark_registry::Search { beam: 384, alpha: 0.7, beta: -1.0 };
    assert_eq!(searches, [Some(chosen); 2], "recorded with the app's default beam, and kept by the update");
    let used = |extra: &[&str]| {
        let mut args = vec!["transcribe", "--model", manifest_path.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(summary.to_str().unwrap());
        String::from_utf8_lossy(&hark(&args).stderr).into_owned()
    };
    let heard = used(&[]);
    assert!(heard.contains("model 0.0.6") && heard.contains("(beam 384, α 0.7, β -1)"), "{heard}");
    let heard = used(&["--beam", "16"]);
    assert!(heard.contains("(beam 16, α 0.7, β -1)"), "{heard}");

    // A key of one's own: keygen prints the public key; a manifest signed
    // with it is refused by an app that trusts only the development key.
    let key = models.parent().unwrap().join("release.key");
    let out = ok(&["keygen", "--out", key.to_str().unwrap()]);
    let public = String::from_utf8(out.stdout).unwrap();
    let public = public.trim().strip_prefix("HARK_MANIFEST_KEYS=").unwrap().to_owned();
    let again = hark(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
    ok(&["sign", "--models", models.to_str().unwrap(), "--signing-key", key.to_str().unwrap()]);
    let own = hark_registry::signing::PublicKey::from_hex(&public).unwrap();
    assert!(Manifest::parse_verified(&manifest_text(), &[own]).is_ok());
    let err = Manifest::parse_verified(&manifest_text(), trusted).unwrap_err();
    assert!(err.to_string().contains("does not trust"), "{err}");
    let bad = models.parent().unwrap().join("bad.key");
    std::fs::write(&bad, "not a key").unwrap();
    let refused = hark(&["sign", "--models", models.to_str().unwrap(), "--signing-key", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("bad.key") && stderr.contains("64 hex digits"), "{stderr}");
    ok(&["sign", "--models", models.to_str().unwrap()]);
}

/// A published manifest that does not parse stops `hark publish`, `hark
/// rollback` and `hark sign` with a message naming it, and stays as it was.
#[test]
fn a_manifest_that_does_not_parse_is_named_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let broken = b"{\"schema_version\": 2, \"models\": [";
    std::fs::write(models.join("manifest.json"), broken).unwrap();
    let current = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/models/manifest.json");
    let eval = dir.path().join("summary.json");
    std::fs::write(&eval, r#"{"splits": {"test": {"wer": 0.1}}}"#).unwrap();
    let m = models.to_str().unwrap();
    let runs = [
        hark(&[
            "publish",
            "--run",
            current.to_str().unwrap(),
            "--eval",
            eval.to_str().unwrap(),
            "--version",
            "9.0.0",
            "--training-data",
            "x",
            "--models",
            m,
        ]),
        hark(&["rollback", "--models", m]),
        hark(&["sign", "--models", m]),
    ];
    for out in runs {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains("manifest.json"), "the message names the file: {stderr}");
    }
    assert_eq!(std::fs::read(models.join("manifest.json")).unwrap(), broken);
    assert!(!models.join("hark-9.0.0.bpk").exists(), "nothing was written beside it");
}

/// Issue 18's bad input, spoken (flite slt, a voice no training split uses)
/// to the published model: a query of only words outside every lexicon, a
/// spelled-out word, a date and an amount spoken as words, a 19 s ramble.
/// Each gets a reading — never an error, a panic or an empty answer where
/// words were spoken. (How *good* the reading is, is `hark eval`'s
/// free-form slice.)
#[test]
fn speech_outside_the_grammar_always_gets_a_reading() {
    let dir = tempfile::tempdir().unwrap();
    let spoken = [
        ("oov", "xylophone quasar zeppelin marmalade"),
        ("spelled", "how do you spell rhythm r h y t h m"),
        ("date", "what happened on the third of march nineteen eighty four"),
        ("amount", "convert one hundred and twenty five dollars to euros"),
        (
            "ramble",
            "I was wondering whether you could tell me about the best places to eat near the old harbour, because \
             my friends are visiting next weekend and we would like to try some local seafood, maybe a place with a \
             view of the water, and not too expensive, and also somewhere we can walk to from the train station",
        ),
    ];
    let mut args = vec!["transcribe".to_owned(), "--model".to_owned()];
    args.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/models/manifest.json").display().to_string());
    for (name, text) in spoken {
        let wav = dir.path().join(format!("{name}.wav"));
        let status = std::process::Command::new("flite")
            .args(["-voice", "slt", "-t", text, "-o"])
            .arg(&wav)
            .status()
            .expect("flite runs (`cargo xtask test` installs it)");
        assert!(status.success(), "flite could not speak {text:?}");
        args.push(wav.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ok(&args);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), spoken.len(), "{stdout}");
    for (line, (name, text)) in lines.iter().zip(spoken) {
        let heard = line["text"].as_str().unwrap_or_default();
        assert!(!heard.trim().is_empty(), "{name}: words were spoken ({text:?}) but nothing was read: {line}");
        assert!(line["confidence"].as_f64().is_some_and(|c| (0.0..=1.0).contains(&c)), "{line}");
    }
    let ramble = &lines[4];
    assert!(ramble["audio_s"].as_f64().unwrap() > 15.0, "{ramble}");
    let words = ramble["text"].as_str().unwrap().split_whitespace().count();
    assert!(words >= 8, "a 19 s ramble read as {words} words: {ramble}");
}

/// A small, normalised trigram model in the ARPA format (log10): hark-decode's.
const SMALL_ARPA: &str = include_str!("../../hark-decode/testdata/small.arpa");
