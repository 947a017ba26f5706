//! `hark train` on the smoke corpus: metrics, checkpoint, resume, training-time noise.

mod support;

use support::{hark, ok};

#[test]
fn trains_checkpoints_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("data"), dir.path().join("run"));
    let (data_s, run_s) = (data.to_str().unwrap(), run.to_str().unwrap());
    ok(&["data", "synth", "--preset", "smoke", "--out", data_s]);
    let tiny = ["--batch", "8", "--channels", "32", "--blocks", "1"];
    ok(&[&["train", "--data", data_s, "--out", run_s, "--epochs", "1"][..], &tiny].concat());
    for file in ["best.bpk", "config.json", "progress.json", "training.svg"] {
        assert!(run.join(file).is_file(), "no {file}");
    }
    let states = std::fs::read_dir(&run)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("state-"))
        .count();
    assert_eq!(states, 1, "older checkpoints are removed");
    assert!(std::fs::read_to_string(run.join("training.svg")).unwrap().contains("dev WER"));
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().any(|l| l["loss"].as_f64().is_some_and(f64::is_finite)));
    assert!(lines.iter().any(|l| l["dev_wer"].is_number()));

    // A run stopped inside its first epoch has no best.bpk: `--model RUN` reads
    // the checkpoint progress.json points at.
    let stopped = dir.path().join("stopped");
    std::fs::create_dir(&stopped).unwrap();
    for entry in std::fs::read_dir(&run).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "config.json" || name == "progress.json" || name.starts_with("state-") {
            std::fs::copy(entry.path(), stopped.join(&name)).unwrap();
        }
    }
    let wav = std::fs::read_dir(data.join("audio/test")).unwrap().flatten().next().unwrap().path();
    let (stopped_s, wav_s) = (stopped.to_str().unwrap(), wav.to_str().unwrap());
    let heard = ok(&["transcribe", "--model", stopped_s, wav_s]);
    assert!(String::from_utf8_lossy(&heard.stderr).contains("state-"), "{}", String::from_utf8_lossy(&heard.stderr));
    std::fs::remove_file(stopped.join("progress.json")).unwrap();
    let out = hark(&["transcribe", "--model", stopped_s, wav_s]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no best.bpk or progress.json"));

    // A phone model started from the letter model: a new output layer, the
    // run's own copy of the lexicon, and words read back through it.
    let (lexicon, phones) = (dir.path().join("lexicon.txt"), dir.path().join("phones"));
    let (lexicon_s, phones_s) = (lexicon.to_str().unwrap(), phones.to_str().unwrap());
    let no_lexicon = [&["train", "--data", data_s, "--out", phones_s, "--units", "phones"][..], &tiny].concat();
    let out = hark(&no_lexicon);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("needs --lexicon"));
    std::fs::remove_dir_all(&phones).unwrap();
    ok(&["lexicon", "--out", lexicon_s, "--data", data_s, "--only-data"]);
    let entries = std::fs::read_to_string(&lexicon).unwrap();
    assert!(entries.lines().any(|l| l == "twenty\tt w eh n t iy"), "festival's reading of a corpus word");
    let from_letters = ["--units", "phones", "--lexicon", lexicon_s, "--init", run_s, "--epochs", "1"];
    let trained = ok(&[&["train", "--data", data_s, "--out", phones_s][..], &from_letters, &tiny].concat());
    assert!(String::from_utf8_lossy(&trained.stderr).contains("a new output layer over 43"));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(phones.join("config.json")).unwrap()).unwrap();
    assert_eq!((&config["units"], &config["vocab"]), (&serde_json::json!("phones"), &serde_json::json!(43)));
    assert!(phones.join("lexicon.txt").is_file());
    let heard = ok(&["transcribe", "--model", phones_s, wav_s]);
    let line: serde_json::Value = serde_json::from_slice(&heard.stdout).unwrap();
    assert!(line["text"].is_string(), "{line}");
    // Published, it carries its lexicon: the manifest entry names it, and
    // the model read back through the manifest transcribes.
    let (report, models) = (dir.path().join("report"), dir.path().join("models"));
    let small = ["--max-utterances", "4", "--train-sample", "4"];
    ok(&[&["eval", "--model", phones_s, "--data", data_s, "--out", report.to_str().unwrap()][..], &small].concat());
    let summary = report.join("summary.json");
    let (summary_s, models_s) = (summary.to_str().unwrap(), models.to_str().unwrap());
    ok(&[
        "publish",
        "--run",
        phones_s,
        "--eval",
        summary_s,
        "--version",
        "0.0.1",
        "--training-data",
        "smoke",
        "--models",
        models_s,
    ]);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(models.join("manifest.json")).unwrap()).unwrap();
    let entry = &manifest["models"][0];
    assert_eq!(entry["architecture"]["units"], "phones");
    let lexicon_file = entry["lexicon"]["file"].as_str().unwrap();
    assert!(lexicon_file.starts_with("lexicon-") && models.join(lexicon_file).is_file(), "{entry}");
    let manifest_s = models.join("manifest.json");
    let heard = ok(&["transcribe", "--model", manifest_s.to_str().unwrap(), wav_s]);
    assert!(serde_json::from_slice::<serde_json::Value>(&heard.stdout).unwrap()["text"].is_string());
    // A decoder-only update adding a name the lexicon lacks: the name's
    // words get festival's pronunciation, in a new lexicon file of the new
    // entry; the old entry keeps its own.
    let names = dir.path().join("names.tsv");
    std::fs::write(&names, "person\tzorina kaltvedt\n").unwrap();
    assert!(!entries.contains("zorina\t"));
    let update = [
        "publish",
        "--run",
        manifest_s.to_str().unwrap(),
        "--names",
        names.to_str().unwrap(),
        "--eval",
        summary_s,
        "--version",
        "0.0.2",
        "--training-data",
        "smoke + names",
        "--models",
        models_s,
    ];
    ok(&update);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(models.join("manifest.json")).unwrap()).unwrap();
    let grown_file = manifest["models"][1]["lexicon"]["file"].as_str().unwrap();
    assert_ne!(grown_file, lexicon_file);
    let grown = std::fs::read_to_string(models.join(grown_file)).unwrap();
    assert!(grown.contains("zorina\t") && grown.contains("kaltvedt\t") && models.join(lexicon_file).is_file());
    let heard = ok(&["transcribe", "--model", manifest_s.to_str().unwrap(), wav_s]);
    assert!(serde_json::from_slice::<serde_json::Value>(&heard.stdout).unwrap()["text"].is_string());
    std::fs::remove_file(models.join(grown_file)).unwrap();
    let out = hark(&["transcribe", "--model", manifest_s.to_str().unwrap(), wav_s]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("the lexicon of model 0.0.2"), "{out:?}");

    let again = ok(&[&["train", "--data", data_s, "--out", run_s, "--epochs", "2"][..], &tiny].concat());
    assert!(String::from_utf8_lossy(&again.stderr).contains("resuming at epoch 2 batch 0"));
    let progress: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("progress.json")).unwrap()).unwrap();
    assert_eq!(progress["epoch"], 2);

    // Another model shape in the same folder is refused, naming the problem.
    let out = hark(&["train", "--data", data_s, "--out", run_s, "--epochs", "3", "--channels", "48", "--blocks", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("was trained with model"));

    // --init grows a shallower model of the same width; another width is refused.
    let deeper = dir.path().join("deeper");
    let deeper_s = deeper.to_str().unwrap();
    let two_blocks = ["--batch", "8", "--channels", "32", "--blocks", "2", "--init", run_s];
    let grown = ok(&[&["train", "--data", data_s, "--out", deeper_s, "--epochs", "1"][..], &two_blocks].concat());
    assert!(String::from_utf8_lossy(&grown.stderr).contains("deepening it from 1 to 2 blocks"));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deeper.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["blocks"], 2);
    let wider = dir.path().join("wider");
    let wider_args = ["--epochs", "1", "--channels", "48", "--blocks", "2", "--init", run_s];
    let out = hark(&[&["train", "--data", data_s, "--out", wider.to_str().unwrap()][..], &wider_args].concat());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass the same --channels and --kernel"));

    // Training-time noise is part of the run: recorded, and a resume must ask for the same.
    let noisy = dir.path().join("noisy");
    let noisy_s = noisy.to_str().unwrap();
    let renoise = ["--renoise", "0.5", "--renoise-snr=-5,10"];
    ok(&[&["train", "--data", data_s, "--out", noisy_s, "--epochs", "1"][..], &renoise, &tiny].concat());
    let run_config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(noisy.join("run.json")).unwrap()).unwrap();
    let recorded = &run_config["renoise"];
    assert_eq!(recorded["config"]["share"], 0.5);
    assert_eq!(recorded["config"]["snr_db"], serde_json::json!([-5.0, 10.0]));
    let refused = |args: &[&str], says: &str| {
        let out = hark(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says), "hark {args:?}: {stderr}");
    };
    refused(
        &[&["train", "--data", data_s, "--out", noisy_s, "--epochs", "2"][..], &tiny].concat(),
        "was trained with renoise",
    );
    // So are the optimizer's settings and the batch: a resume names the field that differs.
    let resume_noisy = [&["train", "--data", data_s, "--out", noisy_s, "--epochs", "2"][..], &renoise, &tiny].concat();
    refused(&[&resume_noisy[..], &["--lr", "0.001"]].concat(), "was trained with peak_lr 0.003, not 0.001");
    let other_batch =
        ["train", "--data", data_s, "--out", noisy_s, "--epochs", "2", "--channels", "32", "--blocks", "1"];
    refused(&[&other_batch[..], &renoise, &["--batch", "4"]].concat(), "was trained with batch 8, not 4");
    assert_eq!(run_config["optimizer"]["weight_decay"], 1e-3, "{run_config}");
    refused(&["train", "--data", data_s, "--out", noisy_s, "--renoise", "1.5"], "between 0 and 1");
    refused(&["train", "--data", data_s, "--out", noisy_s, "--renoise", "0.5", "--renoise-snr=10,0"], "LOW ≤ HIGH");
    refused(&["train", "--data", data_s, "--out", noisy_s, "--renoise", "0.5", "--renoise-shelf", "-3"], "LOW,HIGH");
    refused(&["train", "--data", data_s, "--out", noisy_s, "--renoise", "0.5", "--renoise-pad=0.5"], "LEAD,TRAIL");
    refused(&["train", "--data", data_s, "--out", noisy_s, "--renoise", "0.5", "--renoise-pad=0.5,-1"], "LEAD,TRAIL");
}
