//! `training.svg`: loss per step (smoothed) and dev WER per epoch, drawn from
//! `metrics.jsonl`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use hark_eval::svg::{Series, line_chart};

pub fn training_curves(metrics: &Path, out: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(metrics).with_context(|| format!("reading {}", metrics.display()))?;
    // A resumed run may repeat steps after its last checkpoint: the later
    // line wins.
    let (mut loss, mut wer) = (BTreeMap::new(), BTreeMap::new());
    for (n, line) in text.lines().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{} line {}", metrics.display(), n + 1))?;
        let step = v["step"].as_u64().unwrap_or(0);
        if let Some(l) = v["loss"].as_f64() {
            loss.insert(step, l);
        }
        if let Some(w) = v["dev_wer"].as_f64() {
            wer.insert(v["epoch"].as_u64().unwrap_or(0), (step, 100.0 * w));
        }
    }
    // Exponential moving average, then at most ~500 points.
    let mut smooth = Vec::new();
    let mut ema: Option<f64> = None;
    for (&step, &l) in &loss {
        if l.is_finite() {
            ema = Some(ema.map_or(l, |e| 0.98 * e + 0.02 * l));
            smooth.push((step as f64, ema.unwrap_or(l)));
        }
    }
    let every = smooth.len().div_ceil(500).max(1);
    let smooth: Vec<_> = smooth.into_iter().step_by(every).collect();
    let loss_svg = line_chart(
        "CTC loss (train, smoothed)",
        "step",
        "loss",
        &[Series { name: "train loss", points: smooth, color: "#c0392b" }],
        true,
    );
    let wer_points: Vec<(f64, f64)> = wer.values().map(|&(step, w)| (step as f64, w)).collect();
    let wer_svg = line_chart(
        "dev WER (greedy) per epoch",
        "step",
        "WER %",
        &[Series { name: "dev WER", points: wer_points, color: "#2c6fbb" }],
        false,
    );
    // Two charts stacked in one SVG (nested <svg> elements are valid SVG).
    let svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 640 650" width="640" height="650">{loss_svg}<g transform="translate(0 330)">{wer_svg}</g></svg>"#
    );
    crate::files::write_atomic(out, svg.as_bytes())
}
