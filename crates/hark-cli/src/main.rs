//! `hark`: the command line of the hark cycle.
//!
//! `hark data synth` (speak the query corpus with Debian's synthesizers,
//! augment, write a JSONL manifest), `hark data stats`, `hark train` (Burn,
//! CPU), `hark eval` (error analysis report) and `hark transcribe` (WAV →
//! JSON with the pipeline the browser uses), `hark serve` (the collector, the
//! app and the models on one address), `hark monitor` and `hark profile`
//! (drift from the collected logs), `hark harvest` (data of the kind that
//! drifted), `hark simulate` (simulated users' telemetry), `hark retrain`, `hark gate` (may a candidate replace
//! the current model), `hark keygen`, `hark sign` and
//! `hark rollback` (the signed model manifest), and the tools around them.
//!
//! Each command owns its arguments: a `clap::Args` struct beside its `run`
//! in the command's module (`train::Args`, ...), with the values several
//! commands share parsed in [`flags`]. This file only dispatches; a new
//! command is a module and one line in each of `Command` and `main`.

mod average;
mod degrade;
mod eval;
mod files;
mod flags;
mod gate;
mod harvest;
mod lexicon;
mod lm;
mod model;
mod monitor;
mod plot;
mod profile;
mod publish;
mod release;
mod report;
mod retrain;
mod serve;
mod simulate;
mod synth;
mod train;
mod transcribe;
mod tune;
mod voices;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "hark", version, about = "hark: private in-browser voice search, and the ML cycle behind it")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train the acoustic model on a synthesized corpus (CPU, Burn flex).
    Train(train::Args),
    /// Transcribe WAV files (any rate, any length): one JSON object per file.
    Transcribe(transcribe::Args),
    /// Error analysis on a corpus: report.html, summary.json, results.jsonl.
    Eval(eval::Args),
    /// Tune the decoder: run the model once over held-out utterances, then
    /// decode them with every combination of the given settings.
    Tune(tune::Args),
    /// Build the general English LM (binary) the decoder can interpolate.
    Lm(lm::Args),
    /// Build the pronunciation lexicon a phone model trains and decodes with (festival).
    Lexicon(lexicon::Args),
    /// Average checkpoints of one run (parameter-wise mean) into a run folder.
    Average(average::Args),
    /// Harvest the data of the kind monitoring flagged: new names spoken in
    /// their query templates (training voices; a drift slice in others), in
    /// the noise that drifted, and the corrected recordings people shared.
    Harvest(harvest::Args),
    /// Simulated people using the app: synthesized queries (new names, car
    /// noise) recognised by the current model, sent to a collector as
    /// consented telemetry with corrections and recordings (drills of the loop).
    Simulate(simulate::Args),
    /// Fine-tune the current model on a harvest plus a replay sample of the
    /// original training data (`hark train --init` over the mix).
    Retrain(retrain::Args),
    /// Judge a candidate model against the current one on the frozen test
    /// split and the drift slice (exit 0 promote, 1 reject, 2 could not judge).
    Gate(gate::Args),
    /// Publish a trained model into the static model folder (f16 weights + manifest entry).
    Publish(publish::Args),
    /// Withdraw the newest published model: browsers swap back to the one before.
    Rollback(release::RollbackArgs),
    /// Sign the model manifest as it stands (after a hand edit, or with a new key).
    Sign(release::SignArgs),
    /// Make a new ed25519 key for signing the model manifest.
    Keygen(release::KeygenArgs),
    /// Serve the collector API, the web app and the published models on one address.
    Serve(serve::Args),
    /// Report drift, new words and the real error rate from the collected
    /// logs (exit 0 ok, 1 alert, 2 could not run).
    Monitor(monitor::Args),
    /// Write a model's reference profile (dev-split feature summaries,
    /// confidences, vocabulary) for `hark monitor`.
    Profile(profile::Args),
    /// Data collection: synthesize and inspect the voice-search corpus.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Speak the query corpus with many synthetic voices, augment it, write manifest.jsonl.
    Synth(synth::Args),
    /// Copy a split's clean utterances under one fixed condition (noise at an
    /// SNR, spectral tilt, leading silence): a dev stand-in for a slice that
    /// fails on test. Writes manifest-NAME.jsonl and audio/NAME/ in the corpus.
    Degrade(degrade::Args),
    /// Hours and counts per split and tag of a manifest.
    Stats {
        /// A manifest.jsonl, or the folder holding it.
        manifest: PathBuf,
    },
}

fn main() {
    let result = match Cli::parse().command {
        Command::Train(args) => train::run(&args),
        Command::Transcribe(args) => match transcribe::run(&args) {
            Ok(true) => Ok(()),
            Ok(false) => std::process::exit(1),
            Err(e) => Err(e),
        },
        Command::Eval(args) => eval::run(&args),
        Command::Tune(args) => tune::run(&args),
        Command::Lm(args) => lm::run(&args),
        Command::Lexicon(args) => lexicon::run(&args),
        Command::Average(args) => average::run(&args),
        Command::Harvest(args) => harvest::run(&args),
        Command::Simulate(args) => simulate::run(&args),
        Command::Retrain(args) => retrain::run(&args),
        Command::Gate(args) => std::process::exit(gate::run(&args)),
        Command::Publish(args) => publish::run(&args),
        Command::Rollback(args) => release::rollback(&args),
        Command::Sign(args) => release::sign(&args),
        Command::Keygen(args) => release::keygen(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Monitor(args) => std::process::exit(monitor::run(&args)),
        Command::Profile(args) => profile::run(&args),
        Command::Data { command: DataCommand::Synth(args) } => synth::run(&args),
        Command::Data { command: DataCommand::Degrade(args) } => degrade::run(&args),
        Command::Data { command: DataCommand::Stats { manifest } } => stats(&manifest),
    };
    if let Err(e) = result {
        crate::report::eprint(&e);
        std::process::exit(1);
    }
}

fn stats(path: &std::path::Path) -> anyhow::Result<()> {
    let (path, _) = flags::corpus_manifest(path);
    let utterances = hark_data::manifest::read(&path)?;
    print!("{}", hark_data::manifest::Stats::of(&utterances).table());
    Ok(())
}
