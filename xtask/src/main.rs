//! hark's automation, rust-analyzer style: `cargo xtask <command>`.
//!
//! * `up`    — install what is missing, build the web app, serve everything on one port;
//! * `test`  — every test: native, wasm in headless Chromium, end-to-end in `tests/`;
//! * `build` — the release web app into `dist/`;
//! * `icons` — regenerate the PWA icons in `web/icons/`;
//! * `bench` — benchmarks: front end, decode time, training speed vs PyTorch, the collector under wrk;
//! * `data`  — install every synthesizer and run `hark data synth`;
//! * `text`  — extract the English text corpora from Debian packages (`text.rs`);
//! * `fuzz`  — libFuzzer on the collector's event decoder (`fuzz/`);
//! * `demo-drift` — the monitoring loop's story in one run (`tests/src/demo.rs`).
//!
//! Builds share one target directory outside the clone (`~/.cache/hark/target`,
//! or `$CARGO_TARGET_DIR`) so a fresh clone does not rebuild Burn and wgpu.

mod icons;
mod text;
mod tidy;
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "hark's build, serve and test automation")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Install what is missing, build the app (release), `hark serve` the app + models + collector API.
    Up {
        /// Port to serve on.
        #[arg(long, short, default_value_t = 8080)]
        port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        addr: String,
        /// Do not install missing tools; fail naming them instead.
        #[arg(long)]
        no_install: bool,
    },
    /// Run every test: native, wasm (headless Chromium), end-to-end (tests/).
    Test {
        /// Do not install missing tools; fail naming them instead.
        #[arg(long)]
        no_install: bool,
    },
    /// Build the web app in release mode into dist/.
    Build {
        #[arg(long)]
        no_install: bool,
    },
    /// Regenerate web/icons/*.png.
    Icons,
    /// Benchmarks: front end, decode time (one core), training speed against PyTorch.
    Bench,
    /// Extract the English text hark uses from Debian packages into crates/hark-data/corpus/
    /// (WordNet's example sentences for training, fortunes' sentences for evaluation).
    Text,
    /// Build the general English LM from the US English model PocketSphinx
    /// ships (PyPI): its trie read into ARPA (`xtask/sphinx_lm_to_arpa.py`,
    /// checked against PocketSphinx's own scores), pruned by `hark lm --arpa`.
    Lm {
        /// Where to write the LM (hark's binary format).
        #[arg(long, default_value = "target/english.lm")]
        out: PathBuf,
        /// Bigrams to keep.
        #[arg(long, default_value_t = 400_000)]
        bigrams: usize,
        /// Trigrams to keep.
        #[arg(long, default_value_t = 400_000)]
        trigrams: usize,
    },
    /// Install every synthesizer (MBROLA, festival, ...) and synthesize a corpus preset.
    Data {
        /// `smoke` or `standard`.
        #[arg(long, default_value = "standard")]
        preset: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        no_install: bool,
    },
    /// The monitoring loop's story in one run: `hark serve`, the app open in
    /// headless Chromium, simulated users' telemetry (new names, car noise),
    /// `hark monitor` → harvest → retrain → gate → publish, and the open
    /// page swapping to the new model. Prints WER before/after and stage times.
    DemoDrift {
        /// Toy sizes on the smoke corpus (what `cargo xtask test` runs): every stage, no bars.
        #[arg(long)]
        quick: bool,
        #[arg(long)]
        no_install: bool,
    },
    /// Fuzz the collector's event decoder with libFuzzer (cargo-fuzz, on the
    /// pinned stable toolchain with RUSTC_BOOTSTRAP=1); findings go to fuzz/artifacts/.
    Fuzz {
        /// How long to run.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = project_root();
    std::env::set_current_dir(&root)?;
    let mut env = Env { root: root.clone(), target: target_dir(), path: None };

    let install = match cli.command {
        Cmd::Up { no_install, .. }
        | Cmd::Test { no_install }
        | Cmd::Build { no_install }
        | Cmd::DemoDrift { no_install, .. } => !no_install,
        // Icons and data need no web toolchain; bench runs the native
        // benchmarks first, then the browser one on a fresh release build.
        Cmd::Icons => return icons::write_all(&root.join("web/icons")),
        Cmd::Text => return text::run(&root),
        Cmd::Lm { out, bigrams, trigrams } => return general_lm(&env, &out, bigrams, trigrams),
        Cmd::Fuzz { seconds } => return fuzz(&env, seconds),
        Cmd::Bench => {
            bench(&env)?;
            step("browser benchmark: the release app in headless Chromium");
            true
        }
        Cmd::Data { preset, seed, no_install } => {
            tools::ensure_synthesizers(!no_install)?;
            step(&format!("synthesizing the {preset} corpus (hark data synth)"));
            return run(env
                .command("cargo")
                .args(["run", "--release", "--quiet", "-p", "hark-cli", "--", "data", "synth", "--preset", &preset])
                .args(["--seed", &seed.to_string()]));
        }
    };
    let tools_bin = tools::ensure(&root, &cache_dir().join("tools"), install)?;
    env.path = Some(std::env::join_paths(
        std::iter::once(tools_bin).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )?);

    build_web(&env)?;
    match cli.command {
        Cmd::Up { port, addr, .. } => up(&env, &addr, port),
        Cmd::Test { .. } => test(&env),
        Cmd::Build { .. } => Ok(()),
        Cmd::DemoDrift { quick, .. } => demo_drift(&env, quick, install),
        Cmd::Bench => run(env
            .command("cargo")
            .args(["bench", "--workspace", "--exclude", "hark-web", "--bench", "web"])
            .env("HARK_DIST", root.join("dist"))),
        Cmd::Icons | Cmd::Text | Cmd::Lm { .. } | Cmd::Data { .. } | Cmd::Fuzz { .. } => {
            unreachable!("returned before the web build")
        }
    }
}

/// The clone `cargo xtask` was run in. Read at run time (`cargo run` sets
/// `CARGO_MANIFEST_DIR`): with the target directory shared between clones,
/// the xtask binary cargo runs may have been built from another clone, and
/// the compile-time path would point there.
fn project_root() -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let dir = dir.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.parent().map(Path::to_path_buf).expect("xtask/ lives in the repository root")
}

/// `~/.cache/hark` (or `$XDG_CACHE_HOME/hark`): build outputs, tools, local data.
fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("hark")
}

/// `$CARGO_TARGET_DIR`, else `~/.cache/hark/target`: outside the clone, so a
/// fresh clone reuses what an earlier one built.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| cache_dir().join("target"))
}

/// What every command xtask starts runs with: the clone, the shared target
/// directory, and (once the tools are installed) a `PATH` that finds them.
/// Set on each child rather than on xtask's own environment.
struct Env {
    root: PathBuf,
    target: PathBuf,
    path: Option<std::ffi::OsString>,
}

impl Env {
    /// `program`, to run in the clone with this environment.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.root).env("CARGO_TARGET_DIR", &self.target);
        if let Some(path) = &self.path {
            cmd.env("PATH", path);
        }
        cmd
    }
}

/// Runs `cmd`, failing with its command line if it fails.
pub(crate) fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("could not start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

fn step(what: &str) {
    eprintln!("\n==> {what}");
}

fn build_web(env: &Env) -> anyhow::Result<()> {
    // Trunk.toml makes trunk call cargo `--offline`, so every crate in
    // Cargo.lock (for every target, the WebGPU worker's included) must be in
    // the local registry cache first; on a fresh machine it is not. A no-op
    // when it is.
    step("fetching the crates of Cargo.lock (cargo fetch)");
    run(env.command("cargo").args(["fetch", "--locked"]))?;
    step("building the web app (trunk build --release)");
    run(env.command("trunk").args(["build", "--release"]))
}

/// `cargo xtask demo-drift`: `hark` in release (the full run trains; the
/// quick one is the test suite's, on the debug build), then the story
/// (`hark-e2e`'s `demo-drift`) against the app just built.
fn demo_drift(env: &Env, quick: bool, install: bool) -> anyhow::Result<()> {
    if !quick {
        // The harvest speaks the new names with every training voice.
        tools::ensure_synthesizers(install)?;
    }
    let profile = if quick { "dev" } else { "release" };
    step(&format!("building hark ({profile})"));
    let mut build = env.command("cargo");
    build.args(["build", "-p", "hark-cli"]);
    if !quick {
        build.arg("--release");
    }
    run(&mut build)?;
    let hark = env.target.join(if quick { "debug" } else { "release" }).join("hark");
    step("the drift story (hark-e2e's demo-drift)");
    let mut demo = env.command("cargo");
    demo.args(["run", "--quiet", "-p", "hark-e2e", "--bin", "demo-drift", "--"])
        .arg("--hark")
        .arg(&hark)
        .arg("--corpus")
        .arg(cache_dir().join("data").join("standard"))
        .env("HARK_DIST", env.root.join("dist"));
    if quick {
        demo.arg("--quick");
    }
    run(&mut demo)
}

fn up(env: &Env, addr: &str, port: u16) -> anyhow::Result<()> {
    let root = &env.root;
    step("building the server (hark serve, release)");
    run(env.command("cargo").args(["build", "--release", "--quiet", "-p", "hark-cli"]))?;
    let url = format!("http://{addr}:{port}");
    step(&format!("hark is up at {url} (app, /models/, /v1/); Ctrl-C stops it"));
    run(env
        .command(env.target.join("release/hark"))
        .args(["serve", "--addr", &format!("{addr}:{port}")])
        .arg("--site")
        .arg(root.join("dist"))
        .arg("--models")
        .arg(root.join("web/models")))
}

/// libFuzzer on `fuzz/` (its own workspace), without a sanitizer: the
/// decoder is safe Rust, so the findings are panics, and uninstrumented std
/// keeps it fast. `-s none` also needs no nightly-only std rebuild.
fn fuzz(env: &Env, seconds: u64) -> anyhow::Result<()> {
    tools::ensure_cargo_fuzz()?;
    std::fs::create_dir_all(env.root.join("fuzz/corpus/events"))?;
    step(&format!("fuzzing the event decoder for {seconds} s (cargo fuzz run events)"));
    run(env
        .command("cargo")
        // The corpus grows in fuzz/corpus/events, starting from the
        // committed seeds (valid batches of both schemas) and the dictionary.
        .args(["fuzz", "run", "events", "-s", "none", "corpus/events", "seeds/events", "--"])
        .arg(format!("-max_total_time={seconds}"))
        .arg("-dict=events.dict")
        .arg("-print_final_stats=1")
        .current_dir(env.root.join("fuzz"))
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", env.target.join("fuzz")))
}

fn bench(env: &Env) -> anyhow::Result<()> {
    step("front-end benchmarks (criterion; 16 Melem/s = 1000x real time)");
    // `--workspace` everywhere: `-p` would unify features differently and
    // rebuild Burn.
    let bench = |name: &str| {
        let mut c = env.command("cargo");
        c.args(["bench", "--workspace", "--exclude", "hark-web", "--exclude", "hark-e2e", "--bench", name]);
        c
    };
    run(&mut bench("frontend"))?;

    step("decode benchmark, one core (criterion; bar: end_to_end ≤ 50 ms for 5 s of audio)");
    let mut decode = env.command("taskset");
    decode.args(["-c", "0", "cargo", "bench", "--workspace", "--exclude", "hark-web", "--exclude", "hark-e2e"]);
    run(decode.args(["--bench", "decode"]).env("RAYON_NUM_THREADS", "1"))?;

    step("training speed, Burn vs PyTorch on this CPU");
    if let Err(e) = tools::ensure_torch() {
        eprintln!("PyTorch is not available ({e:#}); its rows will say n/a");
    }
    run(&mut bench("train_step"))?;

    step("collector under load: wrk on loopback (bars: ≥ 20,000 events/s; p99 ≤ 25 ms at 2,000 requests/s; ≤ 100 MB)");
    tools::ensure_bench_packages()?;
    run(&mut bench("load"))?;

    step("hark monitor over a SQLite store of 10^5 and 10^6 events (goal: ≥ 100,000 events/s; memory flat)");
    run(&mut bench("monitor"))?;
    recognition_against_pocketsphinx(env)
}

/// `cargo xtask lm`: PocketSphinx's US English LM → ARPA → `hark lm --arpa`.
fn general_lm(env: &Env, out: &Path, bigrams: usize, trigrams: usize) -> anyhow::Result<()> {
    let python = tools::ensure_pocketsphinx()?;
    let arpa = cache_dir().join("en-us.arpa");
    step("reading PocketSphinx's en-us.lm.bin into ARPA");
    run(env.command(&python).arg(env.root.join("xtask/sphinx_lm_to_arpa.py")).arg(&arpa))?;
    step("pruning it into hark's general LM (hark lm --arpa)");
    run(env
        .command("cargo")
        .args(["run", "--release", "--quiet", "-p", "hark-cli", "--", "lm", "--arpa"])
        .arg(&arpa)
        .args(["--bigrams", &bigrams.to_string(), "--trigrams", &trigrams.to_string(), "--out"])
        .arg(out))
}

/// The free-form test half (text no template made, test-only voices, clean
/// and car 5 dB) recognised by hark's shipped model and by CMU PocketSphinx
/// (PyPI, its shipped en-us model), scored side by side by `hark eval --peer`.
fn recognition_against_pocketsphinx(env: &Env) -> anyhow::Result<()> {
    let root = &env.root;
    step("recognition, hark against PocketSphinx on the free-form test half (same audio, same scoring)");
    let python = tools::ensure_pocketsphinx()?;
    let data = cache_dir().join("data/standard");
    let hark = |args: &[&str]| {
        let mut c = env.command("cargo");
        c.args(["run", "--release", "--quiet", "-p", "hark-cli", "--"]).args(args);
        c
    };
    let data_s = data.to_string_lossy().into_owned();
    // Resumable: only what is missing is spoken (flite only: the test voices).
    run(&mut hark(&["data", "synth", "--preset", "standard", "--splits", "test", "--out", &data_s]))?;
    let out = target_dir().join("bench");
    std::fs::create_dir_all(&out)?;
    let hypotheses = out.join("pocketsphinx-freeform-test.jsonl");
    run(env
        .command(&python)
        .arg(root.join("xtask/pocketsphinx_eval.py"))
        .arg(data.join("manifest.jsonl"))
        .arg(&hypotheses)
        .args(["--split", "test"]))?;
    let peer = format!("--peer=pocketsphinx={}", hypotheses.display());
    let report = out.join("freeform-eval").to_string_lossy().into_owned();
    run(&mut hark(&["eval", "--freeform-only", "--data", &data_s, "--out", &report, &peer]))
}

fn test(env: &Env) -> anyhow::Result<()> {
    let root = &env.root;
    step("native tests (cargo test --workspace; hark-web's pure rules natively)");
    run(env.command("cargo").args(["test", "--workspace"]).env("HARK_DIST", root.join("dist")))?;

    step("wasm tests in headless Chromium (wasm-bindgen-test)");
    run(env
        .command("cargo")
        // hark-decode has no browser tests yet; building its tests for wasm
        // proves the browser can decode with it.
        .args(["test", "-p", "hark-dsp", "-p", "hark-decode", "--target", "wasm32-unknown-unknown"])
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", "wasm-bindgen-test-runner")
        .env("CHROMEDRIVER", tools::CHROMEDRIVER)
        .env("WASM_BINDGEN_TEST_WEBDRIVER_JSON", root.join("tests/webdriver.json"))
        .env("WASM_BINDGEN_TEST_TIMEOUT", "180"))?;

    step("all tests passed");
    Ok(())
}
