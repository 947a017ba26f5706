//! `hark average`: checkpoint averaging — the parameter-wise mean of several
//! checkpoints of one run (e.g. its last epochs), written as a run folder
//! (`best.bpk`, `config.json`) that `hark eval` and `hark publish` take.

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::Device;
use hark_model::AcousticModel;

/// `hark average`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output folder: best.bpk and config.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Checkpoints (run folders or .bpk files, as for `--model`), two or more.
    #[arg(required = true, num_args = 2..)]
    pub models: Vec<PathBuf>,
}

pub fn run(o: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(o.models.len() >= 2, "give at least two checkpoints to average");
    let device = Device::flex();
    let mut config = None;
    let mut models = Vec::with_capacity(o.models.len());
    for path in &o.models {
        let loaded = crate::model::load(Some(path))?;
        match &config {
            None => config = Some(loaded.config.clone()),
            Some(c) if serde_json::to_value(c)? != serde_json::to_value(&loaded.config)? => {
                anyhow::bail!(
                    "{} has another shape than {}: average checkpoints of one run",
                    loaded.describe,
                    o.models[0].display()
                )
            }
            Some(_) => {}
        }
        let model = AcousticModel::from_bytes(&loaded.config, loaded.weights, &device)
            .with_context(|| format!("loading {}", loaded.describe))?;
        models.push(model);
    }
    let config = config.expect("at least two models");
    let mean = AcousticModel::average(models)?;
    std::fs::create_dir_all(&o.out).with_context(|| format!("creating {}", o.out.display()))?;
    crate::files::write_atomic(&o.out.join("best.bpk"), &mean.to_bytes()?)?;
    crate::files::write_atomic(&o.out.join("config.json"), serde_json::to_string_pretty(&config)?.as_bytes())?;
    eprintln!("averaged {} checkpoints into {}", o.models.len(), o.out.join("best.bpk").display());
    Ok(())
}
