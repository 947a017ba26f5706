//! `cargo xtask demo-drift [--quick]`: the monitoring loop's story in one
//! run (see `hark_e2e::demo`). Exit 0 when every stage ran and (full run)
//! every bar was met, 1 when a bar was missed, 2 when a stage failed.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use hark_e2e::demo::{self, Options};

#[derive(Parser)]
#[command(name = "demo-drift", about = "The world drifts, monitoring notices, a better model reaches the open page")]
struct Args {
    /// Toy sizes on the smoke corpus (the test suite's run): every stage, no bars.
    #[arg(long)]
    quick: bool,
    /// The `hark` binary (a release build: the full run trains).
    #[arg(long)]
    hark: PathBuf,
    /// Scratch folder [default: a fresh temporary one, removed afterwards].
    #[arg(long)]
    work: Option<PathBuf>,
    /// Where the standard corpus samples are kept between runs.
    #[arg(long)]
    corpus: PathBuf,
}

/// The bars for the full run.
const MIN_DRIFT_REDUCTION: f64 = 0.50;
const MAX_FROZEN_REGRESSION: f64 = 0.005;
const MAX_TIME: Duration = Duration::from_secs(30 * 60);

fn main() {
    let args = Args::parse();
    let scratch = match &args.work {
        Some(_) => None,
        None => match tempfile::tempdir() {
            Ok(dir) => Some(dir),
            Err(e) => {
                eprintln!("error: cannot make a scratch folder: {e}");
                std::process::exit(2);
            }
        },
    };
    let work = args.work.clone().unwrap_or_else(|| scratch.as_ref().expect("made above").path().to_owned());
    let options = Options { quick: args.quick, hark: args.hark, work, corpus: args.corpus };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let outcome = match runtime.map_err(anyhow::Error::from).and_then(|rt| rt.block_on(demo::run(&options))) {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("error: {e:#}\n(logs of every stage: {})", options.work.join("logs").display());
            std::process::exit(2);
        }
    };
    println!("{}", outcome.report());
    if args.quick {
        return;
    }
    let mut missed = Vec::new();
    if outcome.drift_reduction() < MIN_DRIFT_REDUCTION {
        missed.push(format!("drift slice WER reduced by {:.0} % (bar: ≥ 50 %)", outcome.drift_reduction() * 100.0));
    }
    if outcome.frozen_after - outcome.frozen_before > MAX_FROZEN_REGRESSION {
        missed.push(format!(
            "frozen test regressed by {:.2} points (bar: ≤ 0.5)",
            (outcome.frozen_after - outcome.frozen_before) * 100.0
        ));
    }
    if outcome.total() > MAX_TIME {
        missed.push(format!("took {:.1} min (bar: ≤ 30)", outcome.total().as_secs_f64() / 60.0));
    }
    if outcome.heard_after != demo::BROWSER_QUERY {
        missed.push(format!("the open page heard {:?} after the update", outcome.heard_after));
    }
    if missed.is_empty() {
        println!("every bar met");
    } else {
        println!("bars missed:\n  {}", missed.join("\n  "));
        std::process::exit(1);
    }
}
