//! The seed's story as one run (`cargo xtask demo-drift`): the world drifts
//! away from the published model, monitoring notices, and a better model
//! reaches a browser that had the app open all along.
//!
//! 1. `hark serve` (a real process) serves the app, the models and the
//!    collector API from a scratch folder.
//! 2. Headless Chromium opens the app with a fake microphone that says a
//!    query holding a reserved new name, in a voice no split trains on; the
//!    person consents to sharing predictions, the model mishears the name and
//!    the person types the correction — the real app sends the event.
//! 3. `hark simulate`: simulated installs send consented telemetry with
//!    corrections (and, for half of them, recordings) through the real HTTP
//!    API — a quarter of their queries hold reserved names, 30 % are spoken
//!    in a car.
//! 4. `hark monitor` must raise an alert naming new names and the noise shift.
//! 5. `hark harvest` → `hark retrain` → `hark gate` for both fixes (the
//!    decoder-only update and the retrained model, each with the new names)
//!    → `hark publish` (signed) of the better promoted one.
//! 6. The open page swaps to it without a reload and hears the query again.
//!
//! It prints the WER on the drift slice and the frozen test before and
//! after, and the time of each stage. `quick` runs the same stages at toy
//! sizes on the smoke corpus (the test suite's `e2e/demo.rs`); the full run
//! checks the bars and fails when one is missed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{Chromium, LaunchOptions, repo_root};

const LOAD: Duration = Duration::from_secs(120);
const STATUS: &str = "document.querySelector('#model-status').textContent";

/// What the browser's microphone says: a reserved name (`new_names.txt`) in
/// a query template, spoken by flite's `slt` (a test voice: no split, and no
/// harvest, trains on it) in a query template (a name met only in a query
/// no template fits cannot be classed, so `hark harvest` leaves it out).
/// The run checks that no harvested training utterance has this text.
pub const BROWSER_QUERY: &str = "how far is luang prabang from paris";
const BROWSER_VOICE: &str = "slt";

/// How big a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Toy sizes on the smoke corpus, for the test suite.
    pub quick: bool,
    /// The `hark` binary (a release build for the full run).
    pub hark: PathBuf,
    /// Scratch folder for everything the run makes.
    pub work: PathBuf,
    /// Where the full run keeps its synthesized corpus samples between runs
    /// (`hark data synth --every`: resumable, so a second run reuses them).
    pub corpus: PathBuf,
}

/// What the run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    pub stages: Vec<(String, Duration)>,
    pub published: Option<String>,
    pub drift_before: f64,
    pub drift_after: f64,
    pub frozen_before: f64,
    pub frozen_after: f64,
    pub heard_before: String,
    pub heard_after: String,
    pub alerts: Vec<String>,
    pub new_names: Vec<String>,
}

impl Outcome {
    pub fn drift_reduction(&self) -> f64 {
        if self.drift_before > 0.0 { 1.0 - self.drift_after / self.drift_before } else { 0.0 }
    }

    pub fn total(&self) -> Duration {
        self.stages.iter().map(|(_, d)| *d).sum()
    }

    /// The report printed at the end.
    pub fn report(&self) -> String {
        let mut out = String::from("\nhark demo-drift\n\n| stage | time |\n|---|---|\n");
        for (stage, took) in &self.stages {
            out += &format!("| {stage} | {:.1} s |\n", took.as_secs_f64());
        }
        out += &format!("| **all** | **{:.1} min** |\n\n", self.total().as_secs_f64() / 60.0);
        out += &format!("monitor alerts: {}\n", self.alerts.join("; "));
        out += &format!("new names flagged: {}\n\n", self.new_names.join(", "));
        out += "| WER | before | after | change |\n|---|---|---|---|\n";
        out += &format!(
            "| drift slice | {:.2} % | {:.2} % | {:+.2} points ({:.0} % relative reduction) |\n",
            self.drift_before * 100.0,
            self.drift_after * 100.0,
            (self.drift_after - self.drift_before) * 100.0,
            self.drift_reduction() * 100.0
        );
        out += &format!(
            "| frozen test | {:.2} % | {:.2} % | {:+.2} points |\n\n",
            self.frozen_before * 100.0,
            self.frozen_after * 100.0,
            (self.frozen_after - self.frozen_before) * 100.0
        );
        out += &format!(
            "published: {}\nthe open page heard {BROWSER_QUERY:?} as {:?} before and {:?} after\n",
            self.published.as_deref().unwrap_or("nothing"),
            self.heard_before,
            self.heard_after
        );
        out
    }
}

/// Sizes of one run.
struct Sizes {
    events: &'static str,
    per_name: &'static str,
    dev_per_name: &'static str,
    drift_per_name: &'static str,
    max_names: &'static str,
    epochs: &'static str,
    batch: &'static str,
    replay_ratio: &'static str,
    max_utterances: &'static str,
}

const QUICK: Sizes = Sizes {
    events: "100",
    per_name: "3",
    dev_per_name: "1",
    drift_per_name: "2",
    max_names: "3",
    epochs: "1",
    batch: "4",
    replay_ratio: "1",
    max_utterances: "12",
};

const FULL: Sizes = Sizes {
    events: "300",
    per_name: "80",
    dev_per_name: "4",
    drift_per_name: "10",
    max_names: "16",
    epochs: "10",
    batch: "16",
    replay_ratio: "1",
    max_utterances: "400",
};

/// One stage's clock.
struct Clock<'a> {
    outcome: &'a mut Outcome,
}

impl Clock<'_> {
    async fn stage<T, F: std::future::Future<Output = anyhow::Result<T>>>(
        &mut self,
        name: &str,
        f: F,
    ) -> anyhow::Result<T> {
        eprintln!("\n==> demo-drift: {name}");
        let started = Instant::now();
        let value = f.await.with_context(|| format!("stage {name:?}"))?;
        let took = started.elapsed();
        eprintln!("    {name}: {:.1} s", took.as_secs_f64());
        self.outcome.stages.push((name.to_owned(), took));
        Ok(value)
    }
}

/// Runs `hark ARGS`, its output in `logs/NAME.log`; returns its exit code
/// (a code of 2 or a signal fails with the log's tail).
async fn hark(o: &Options, name: &str, args: &[&str]) -> anyhow::Result<i32> {
    let log = o.work.join("logs").join(format!("{name}.log"));
    std::fs::create_dir_all(log.parent().expect("logs/"))?;
    let (exe, args): (PathBuf, Vec<String>) = (o.hark.clone(), args.iter().map(|a| a.to_string()).collect());
    let shown = format!("hark {}", args.join(" "));
    eprintln!("    $ {shown}");
    let file = std::fs::File::create(&log)?;
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe).args(&args).stdout(file.try_clone()?).stderr(file).status()
    })
    .await?
    .with_context(|| format!("starting {}", o.hark.display()))?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let tail: String = text.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    match status.code() {
        Some(code @ (0 | 1)) => {
            for line in text.lines().filter(|l| !l.contains('\r')).rev().take(4).collect::<Vec<_>>().into_iter().rev() {
                eprintln!("    | {line}");
            }
            Ok(code)
        }
        _ => bail!("{shown} failed ({status}); {}:\n{tail}", log.display()),
    }
}

async fn hark_ok(o: &Options, name: &str, args: &[&str]) -> anyhow::Result<()> {
    let code = hark(o, name, args).await?;
    anyhow::ensure!(code == 0, "hark {} exited with {code}; see {}", args.join(" "), o.work.join("logs").display());
    Ok(())
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A free loopback port (bound, then released for `hark serve`).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `hark serve` as a child process, killed when dropped.
struct Served {
    child: std::process::Child,
    base_url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(o: &Options, models: &Path) -> anyhow::Result<Served> {
    let port = free_port()?;
    let data = o.work.join("collector");
    let log = std::fs::File::create(o.work.join("logs/serve.log"))?;
    let child = std::process::Command::new(&o.hark)
        .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--data", &s(&data)])
        .args(["--site", &s(&crate::dist_dir()?), "--models", &s(models)])
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {} serve", o.hark.display()))?;
    let served = Served { child, base_url: format!("http://127.0.0.1:{port}") };
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "hark serve did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(served)
}

/// [`BROWSER_QUERY`] as the microphone hears it: flite's voice at 16 kHz,
/// with a second of silence before (the endpointer learns the noise floor)
/// and three after (it hears the end).
fn microphone(dir: &Path) -> anyhow::Result<PathBuf> {
    let raw = dir.join("browser-query-raw.wav");
    let status = std::process::Command::new("flite")
        .args(["-voice", BROWSER_VOICE, "-t", BROWSER_QUERY, "-o"])
        .arg(&raw)
        .status()
        .context("running flite (Debian package `flite`)")?;
    anyhow::ensure!(status.success(), "flite failed ({status})");
    crate::as_microphone(&raw, &dir.join("browser-query.wav"))
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// (current, candidate) WER of one set of a gate report.
fn gate_wer(gate: &serde_json::Value, set: &str) -> (f64, f64) {
    let rate = |c: &serde_json::Value| {
        let counts = serde_json::from_value::<hark_eval::ErrorCounts>(c.clone()).ok();
        counts.filter(|c| c.reference > 0).map_or(0.0, |c| c.rate())
    };
    (rate(&gate[set]["current"]), rate(&gate[set]["candidate"]))
}

/// The whole story. Fails when a stage fails; the bars are the caller's.
pub async fn run(o: &Options) -> anyhow::Result<Outcome> {
    let sizes = if o.quick { &QUICK } else { &FULL };
    std::fs::create_dir_all(o.work.join("logs"))?;
    let mut outcome = Outcome::default();
    let mut clock = Clock { outcome: &mut outcome };

    // The corpus the current model was trained on (a replay sample) and its
    // frozen test split: the smoke preset, or samples of the standard one.
    let corpus = if o.quick { o.work.join("smoke") } else { o.corpus.clone() };
    clock
        .stage("corpus samples (replay, frozen test, dev reference)", async {
            if o.quick {
                hark_ok(o, "synth", &["data", "synth", "--preset", "smoke", "--out", &s(&corpus)]).await
            } else {
                let every = [("train", "40"), ("dev", "3"), ("test", "7")];
                for (split, every) in every {
                    let args = ["data", "synth", "--preset", "standard", "--splits", split, "--every", every];
                    hark_ok(o, &format!("synth-{split}"), &[&args[..], &["--out", &s(&corpus)]].concat()).await?;
                }
                Ok(())
            }
        })
        .await?;

    // The published models, copied: this run publishes into the copy.
    let models = o.work.join("models");
    copy_dir(&repo_root().join("web/models"), &models)?;
    let current: String = read_json(&models.join("manifest.json"))?["models"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["version"].as_str())
        .map(str::to_owned)
        .context("web/models/manifest.json lists no model")?;
    let (server, chromium, app) = clock
        .stage("hark serve + the app open in headless Chromium", async {
            let server = serve(o, &models).await?;
            let wav = microphone(&o.work)?;
            let chromium = Chromium::launch(LaunchOptions { fake_microphone: Some(wav), ..Default::default() }).await?;
            // The app checks the manifest every ~2 s instead of every 30 minutes.
            let app = chromium.open(&format!("{}/?update-minutes=0.03", server.base_url)).await?;
            app.model_ready(LOAD).await?;
            Ok((server, chromium, app))
        })
        .await?;

    let heard_before = clock
        .stage("the browser: a new-name query, corrected, shared with consent", async {
            app.choose_consent("predictions").await?;
            let (heard, _) = app.speak(1, LOAD).await?;
            app.type_into("#query", BROWSER_QUERY).await?;
            app.page.evaluate("document.querySelector('#search').click()").await?;
            let sent = "(() => { const s = document.querySelector('#telemetry-status'); \
                        return s && s.dataset.sent === '1' && s.dataset.waiting === '0' ? true : null; })()";
            let _: bool = app.wait(sent, LOAD).await?;
            Ok(heard)
        })
        .await?;

    clock
        .stage("simulated users send telemetry (hark simulate)", async {
            let args = ["simulate", "--collector", &server.base_url, "--events", sizes.events, "--model-version"];
            hark_ok(
                o,
                "simulate",
                &[&args[..], &[current.as_str(), "--model", &s(&models.join("manifest.json"))]].concat(),
            )
            .await
        })
        .await?;

    let monitor_out = o.work.join("monitor");
    let summary = clock
        .stage("hark monitor", async {
            let data = o.work.join("collector");
            let args = ["monitor", "--store", &s(&data), "--models", &s(&models), "--out", &s(&monitor_out)];
            let code = hark(o, "monitor", &args).await?;
            anyhow::ensure!(code == 1, "hark monitor raised no alert (exit {code})");
            read_json(&monitor_out.join("summary.json"))
        })
        .await?;
    let (alerts, new_names) = alerts_of(&summary);
    anyhow::ensure!(!new_names.is_empty(), "the monitor named no new name: {summary}");
    clock.outcome.alerts = alerts;
    clock.outcome.new_names = new_names;

    let harvest = o.work.join("harvest");
    clock
        .stage("hark harvest", async {
            let args = ["harvest", "--monitor", &s(&monitor_out.join("summary.json")), "--store"];
            let sizes = [
                "--per-name",
                sizes.per_name,
                "--dev-per-name",
                sizes.dev_per_name,
                "--drift-per-name",
                sizes.drift_per_name,
                "--max-names",
                sizes.max_names,
            ];
            let rest = [s(&o.work.join("collector")), "--out".into(), s(&harvest)];
            let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
            hark_ok(o, "harvest", &[&args[..], &rest, &sizes].concat()).await
        })
        .await?;
    // The drift slice the gate judges on: the synthesized queries in test
    // voices. The held-out installs' recordings are left out: simulated
    // installs that share recordings all speak with one voice (flite kal16),
    // which the other installs' recordings put into training.
    let drift = harvest.join("drift-voices.jsonl");
    let rows: Vec<String> = std::fs::read_to_string(harvest.join("drift.jsonl"))?
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["engine"] != "recorded"))
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(!rows.is_empty(), "the harvest's drift slice holds no synthesized query");
    let trained_texts = std::fs::read_to_string(harvest.join("manifest.jsonl"))?;
    anyhow::ensure!(
        !trained_texts
            .lines()
            .any(|l| { serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["text"] == BROWSER_QUERY) }),
        "the harvest trains on the browser's query {BROWSER_QUERY:?}: the check after the update would flatter the model"
    );
    std::fs::write(&drift, rows.join("\n") + "\n")?;

    let run_dir = o.work.join("retrain");
    clock
        .stage("hark retrain (fine-tune on harvest + replay)", async {
            let args = [
                "retrain",
                "--harvest",
                &s(&harvest),
                "--replay",
                &s(&corpus),
                "--from",
                &s(&models.join("manifest.json")),
                "--out",
                &s(&run_dir),
                "--epochs",
                sizes.epochs,
                "--batch",
                sizes.batch,
                "--replay-ratio",
                sizes.replay_ratio,
                "--lr",
                "4e-4",
            ];
            hark_ok(o, "retrain", &args).await
        })
        .await?;

    let names = harvest.join("names.tsv");
    let manifest = models.join("manifest.json");
    let gates = clock
        .stage("hark gate: decoder-only update and retrained model", async {
            let mut judged = Vec::new();
            let retrained = run_dir.join("candidate");
            for (kind, candidate) in [("decoder-only", &manifest), ("retrained", &retrained)] {
                let out = o.work.join(format!("gate-{kind}"));
                let args = [
                    "gate",
                    &s(candidate),
                    "--candidate-names",
                    &s(&names),
                    "--current",
                    &s(&manifest),
                    "--test",
                    &s(&corpus),
                    "--drift",
                    &s(&drift),
                    "--max-utterances",
                    sizes.max_utterances,
                    "--out",
                    &s(&out),
                ];
                let code = hark(o, &format!("gate-{kind}"), &args).await?;
                judged.push((kind, candidate.clone(), code == 0, read_json(&out.join("gate.json"))?, out));
            }
            Ok(judged)
        })
        .await?;
    // The better of the promoted fixes ships: the lower drift-slice WER.
    let best = gates
        .iter()
        .filter(|(_, _, promoted, _, _)| *promoted)
        .min_by(|a, b| gate_wer(&a.3, "drift").1.total_cmp(&gate_wer(&b.3, "drift").1));
    let Some((kind, candidate, _, gate, gate_dir)) = best else {
        let why: Vec<String> = gates.iter().map(|(k, _, _, g, _)| format!("{k}: {}", g["reasons"])).collect();
        bail!("the gate promoted neither fix:\n{}", why.join("\n"));
    };
    (clock.outcome.drift_before, clock.outcome.drift_after) = gate_wer(gate, "drift");
    (clock.outcome.frozen_before, clock.outcome.frozen_after) = gate_wer(gate, "frozen");
    let version = next_version(&current)?;
    clock
        .stage(&format!("hark publish {version} ({kind}, signed)"), async {
            let mut args = vec![
                "publish".to_owned(),
                "--run".into(),
                s(candidate),
                "--eval".into(),
                s(&gate_dir.join("gate.json")),
                "--version".into(),
                version.clone(),
                "--training-data".into(),
                format!("{current} + demo-drift harvest ({kind})"),
                "--models".into(),
                s(&models),
                "--names".into(),
                s(&names),
            ];
            if !o.quick {
                args.extend(["--profile-data".into(), s(&corpus)]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            hark_ok(o, "publish", &args).await
        })
        .await?;
    clock.outcome.published = Some(format!("{version} ({kind})"));

    let heard_after = clock
        .stage("the open page swaps to it and hears the query again", async {
            let wait = format!(
                "(() => {{ const t = {STATUS}; return t.startsWith('Model {version} is ready') ? t : null; }})()"
            );
            let swapped: String = app.wait(&wait, LOAD).await?;
            anyhow::ensure!(swapped.contains(&format!("Updated from {current} without a reload")), "{swapped}");
            let (heard, _) = app.speak(2, LOAD).await?;
            Ok(heard)
        })
        .await?;
    clock.outcome.heard_before = heard_before;
    clock.outcome.heard_after = heard_after;
    let errors = app.console.errors();
    chromium.close().await;
    drop(server);
    anyhow::ensure!(errors.is_empty(), "the page reported errors:\n{}", errors.join("\n"));
    Ok(outcome)
}

/// The monitor's alerting drift checks and the new names its corrections hold.
fn alerts_of(summary: &serde_json::Value) -> (Vec<String>, Vec<String>) {
    let alerts = summary["drift"]["checks"]
        .as_array()
        .map(|c| {
            c.iter().filter(|c| c["state"] == "alert").filter_map(|c| c["key"].as_str().map(str::to_owned)).collect()
        })
        .unwrap_or_default();
    let names = summary["words"]["corrections"]["top_names"]
        .as_array()
        .map(|n| n.iter().filter_map(|n| n["text"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    (alerts, names)
}

/// `MAJOR.MINOR.PATCH+1`.
fn next_version(current: &str) -> anyhow::Result<String> {
    let mut parts: Vec<u64> =
        current.split('.').map(str::parse).collect::<Result<_, _>>().with_context(|| format!("version {current}"))?;
    let last = parts.last_mut().with_context(|| format!("version {current}"))?;
    *last += 1;
    Ok(parts.iter().map(u64::to_string).collect::<Vec<_>>().join("."))
}
