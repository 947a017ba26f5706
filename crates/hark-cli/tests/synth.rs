//! `hark data synth --preset smoke` end to end: real espeak-ng and flite
//! processes, real WAV files, the JSONL manifest, resuming, bad audio.

use std::path::Path;
use std::process::Output;

use hark_data::Split;
use hark_data::manifest;

mod support;

/// `hark ARGS`, with `PATH` replaced when given (to hide synthesizers).
fn hark(args: &[&str], path: Option<&str>) -> Output {
    let mut cmd = support::command(args);
    if let Some(path) = path {
        cmd.env("PATH", path);
    }
    cmd.output().expect("the hark binary runs")
}

fn synth(out: &Path) -> Output {
    let out = hark(&["data", "synth", "--preset", "smoke", "--seed", "3", "--out", out.to_str().unwrap()], None);
    assert!(out.status.success(), "synth failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn smoke_preset_speaks_every_split_with_held_out_voices_and_engines() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path());
    let utterances = manifest::read(&dir.path().join("manifest.jsonl")).unwrap();
    for split in Split::ALL {
        assert!(utterances.iter().any(|u| u.split == split), "no {split:?} utterances");
    }
    let engines = |s: Split| utterances.iter().filter(|u| u.split == s).map(|u| u.engine.clone()).collect::<Vec<_>>();
    assert!(engines(Split::Test).iter().all(|e| e == "flite"));
    assert!(engines(Split::Train).iter().all(|e| e != "flite"), "the test engine must never speak training data");
    let voices = |s: Split| utterances.iter().filter(|u| u.split == s).map(|u| u.voice.clone()).collect::<Vec<_>>();
    assert!(voices(Split::Dev).iter().all(|v| !voices(Split::Train).contains(v)), "dev voices are held out");
    // The bar's slice exists: test queries in car noise at 5 dB.
    assert!(utterances.iter().any(|u| u.split == Split::Test && u.tags["noise"] == "car" && u.tags["snr"] == "5-10db"));
    // The free-form evaluation set: dev and test, clean and car 5 dB, both
    // kinds of text; never in training, which hears WordNet's English text.
    fn text(u: &manifest::Utterance) -> Option<&str> {
        u.tags.get("text").map(String::as_str)
    }
    for split in [Split::Dev, Split::Test] {
        for kind in ["freeform-query", "freeform-general"] {
            let of = |noise: &str| {
                utterances.iter().any(|u| u.split == split && text(u) == Some(kind) && u.tags["noise"] == noise)
            };
            assert!(of("clean") && of("car"), "{split:?} lacks {kind} clean and in car noise");
        }
    }
    assert!(utterances.iter().filter(|u| u.split == Split::Train).all(|u| !hark_data::text::is_freeform(u)));
    assert!(utterances.iter().any(|u| u.split == Split::Train && text(u) == Some("wordnet")));
    let ids: std::collections::BTreeSet<&str> = utterances.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids.len(), utterances.len(), "utterance ids are unique");
    for u in &utterances {
        let audio = hark_dsp::wav::read(&dir.path().join(&u.audio)).unwrap();
        assert_eq!(audio.sample_rate, 16_000, "{}", u.audio);
        assert!(u.duration_s > 0.3, "{} is {} s", u.id, u.duration_s);
        assert_eq!(u.text, hark_data::normalize(&u.text), "manifest text is normalised");
    }
    let stats = hark(&["data", "stats", dir.path().to_str().unwrap()], None);
    assert!(String::from_utf8_lossy(&stats.stdout).contains("train"));
}

#[test]
fn a_second_run_resumes_and_a_corrupt_wav_is_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path());
    let first = manifest::read(&dir.path().join("manifest.jsonl")).unwrap();

    let again = synth(dir.path());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("0 made"), "{stderr}");

    let victim = dir.path().join(&first[1].audio);
    std::fs::write(&victim, b"RIFF garbage").unwrap();
    let third = synth(dir.path());
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert!(stderr.contains(victim.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("1 skipped"), "{stderr}");
    let after = manifest::read(&dir.path().join("manifest.jsonl")).unwrap();
    assert_eq!(after.len(), first.len() - 1);
    // Nothing half-written is left behind.
    assert!(!dir.path().join("tmp").exists());
}

#[test]
fn same_seed_same_corpus() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    synth(a.path());
    synth(b.path());
    let (ma, mb) = (
        manifest::read(&a.path().join("manifest.jsonl")).unwrap(),
        manifest::read(&b.path().join("manifest.jsonl")).unwrap(),
    );
    assert_eq!(ma, mb);
    assert_same_audio(a.path(), b.path(), &ma);
}

/// Each utterance's audio file is byte for byte the same in both folders.
fn assert_same_audio(a: &Path, b: &Path, utterances: &[manifest::Utterance]) {
    for u in utterances {
        assert_eq!(std::fs::read(a.join(&u.audio)).unwrap(), std::fs::read(b.join(&u.audio)).unwrap(), "{}", u.id);
    }
}

#[test]
fn chosen_splits_are_the_full_runs_recordings_and_a_later_run_keeps_their_entries() {
    let (full, part) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    synth(full.path());
    let whole = manifest::read(&full.path().join("manifest.jsonl")).unwrap();
    let out = part.path().to_str().unwrap();
    let synth_splits = |splits: &str| {
        hark(&["data", "synth", "--preset", "smoke", "--seed", "3", "--out", out, "--splits", splits], None)
    };

    let first = synth_splits("dev,test");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let eval_only = manifest::read(&part.path().join("manifest.jsonl")).unwrap();
    let expected: Vec<_> = whole.iter().filter(|u| u.split != Split::Train).cloned().collect();
    assert!(!expected.is_empty());
    assert_eq!(eval_only, expected, "dev and test as a full run makes them");
    assert_same_audio(part.path(), full.path(), &eval_only);
    assert_eq!(std::fs::read_dir(part.path().join("audio/train")).unwrap().count(), 0, "train was not spoken");

    // A bad split name is refused by name and leaves the manifest as it was.
    let bad = synth_splits("dev,tset");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("tset"), "{}", String::from_utf8_lossy(&bad.stderr));
    assert_eq!(manifest::read(&part.path().join("manifest.jsonl")).unwrap(), eval_only);

    // Speaking train afterwards keeps dev and test in the manifest: the
    // folder now holds exactly the full run's corpus.
    let second = synth_splits("train");
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    assert_eq!(manifest::read(&part.path().join("manifest.jsonl")).unwrap(), whole);
}

#[test]
fn a_missing_synthesizer_names_its_debian_package() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let out =
        hark(&["data", "synth", "--preset", "smoke", "--out", dir.path().to_str().unwrap()], empty.path().to_str());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("apt-get install espeak-ng flite"), "{stderr}");
}

#[test]
fn a_bad_manifest_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.jsonl");
    std::fs::write(&path, "{\"id\": 1}\n").unwrap();
    let out = hark(&["data", "stats", path.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("manifest.jsonl:1:"));
}
