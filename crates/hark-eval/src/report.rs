//! The error-analysis report of `hark eval`: per-split WER/CER with the
//! alignment counts, slices, bias/variance, worst examples, confusions and a
//! prioritisation table, as a JSON summary and a standalone HTML page.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::svg::bar_chart;
use crate::{Confusions, ErrorCounts, SliceTable};

/// Noisy WER ÷ clean WER; 1 when both are 0, infinite when only clean is.
fn noisy_to_clean(noisy: f64, clean: f64) -> f64 {
    if clean > 0.0 {
        noisy / clean
    } else if noisy == 0.0 {
        1.0
    } else {
        f64::INFINITY
    }
}

/// Issue 18's bars over the free-form test half; `None` without clean and
/// car 5 dB utterances.
pub fn freeform_bars(test: &[&Scored]) -> Option<FreeformBars> {
    let of = |noise: &str, text: Option<&str>| -> Vec<&Scored> {
        test.iter()
            .copied()
            .filter(|s| match noise {
                "clean" => slice_value(s, "noise") == Some("clean"),
                _ => slice_value(s, "condition") == Some("car5db"),
            })
            .filter(|s| text.is_none() || slice_value(s, "text") == text)
            .collect()
    };
    let (clean, car5) = (of("clean", None), of("car5db", None));
    if clean.is_empty() || car5.is_empty() {
        return None;
    }
    let (c, _) = wer_of(clean.iter().copied());
    let (k, _) = wer_of(car5.iter().copied());
    let mut greedy = ErrorCounts::default();
    for s in &clean {
        greedy += ErrorCounts::words(&s.reference, &s.greedy);
    }
    let ratio = noisy_to_clean(k, c);
    Some(FreeformBars {
        utterances: test.len(),
        clean_wer: c,
        clean_query_wer: wer_of_nonempty(of("clean", Some("freeform-query"))),
        clean_general_wer: wer_of_nonempty(of("clean", Some("freeform-general"))),
        clean_greedy_wer: greedy.rate(),
        clean_bar: 0.15,
        clean_met: c <= 0.15,
        car_5db_wer: k,
        car_5db_ratio: ratio,
        car_bar_ratio: 1.5,
        car_met: ratio <= 1.5,
    })
}

/// The WER of `items`; `None` when there are none, so an empty slice is not
/// reported as 0 %.
fn wer_of_nonempty(items: Vec<&Scored>) -> Option<f64> {
    (!items.is_empty()).then(|| wer_of(items.into_iter()).0)
}

/// A percentage, or "—" for a slice with no utterances.
fn pct_or_dash(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{:.1} %", 100.0 * v))
}

/// One scored utterance.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    pub id: String,
    pub split: String,
    /// (slice key, value), e.g. ("noise", "car").
    pub slices: Vec<(String, String)>,
    pub reference: String,
    /// Beam search with the language model (what the product outputs).
    pub hypothesis: String,
    /// Greedy decoding of the same model output (acoustic model alone).
    pub greedy: String,
    pub confidence: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct SplitSummary {
    pub utterances: usize,
    pub wer: f64,
    pub cer: f64,
    pub greedy_wer: f64,
    pub words: ErrorCounts,
    pub chars: ErrorCounts,
}

#[derive(Debug, Clone, Serialize)]
pub struct BiasVariance {
    /// Proxy for human-level error: a person transcribes clean synthetic
    /// queries essentially perfectly.
    pub human_proxy_wer: f64,
    pub train_wer: f64,
    pub dev_wer: f64,
    pub test_wer: f64,
    /// train − human.
    pub avoidable_bias: f64,
    /// dev − train (dev: unseen names, held-out voices of training engines).
    pub variance: f64,
    /// test − dev (test: engines never heard in training).
    pub mismatch: f64,
    pub diagnosis: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Priority {
    pub slice: String,
    pub utterances: usize,
    pub wer: f64,
    /// Slice WER − clean WER of the same split.
    pub room: f64,
    /// Share of (test) traffic.
    pub share: f64,
    /// room × share: the WER points the whole product would gain.
    pub gain: f64,
}

/// Issue 18's bars, on the free-form test half (text no template produced,
/// test-only voices): what a user meets, and hark's headline figure.
#[derive(Debug, Clone, Serialize)]
pub struct FreeformBars {
    pub utterances: usize,
    pub clean_wer: f64,
    /// Clean WER of the hand-written voice-search queries and of the general
    /// English sentences apart; `None` when the set has none of that kind.
    pub clean_query_wer: Option<f64>,
    pub clean_general_wer: Option<f64>,
    pub clean_greedy_wer: f64,
    pub clean_bar: f64,
    pub clean_met: bool,
    pub car_5db_wer: f64,
    pub car_5db_ratio: f64,
    pub car_bar_ratio: f64,
    pub car_met: bool,
}

/// A peer recognizer's figures on the free-form test half.
#[derive(Debug, Clone, Serialize)]
pub struct Peer {
    pub name: String,
    pub bars: FreeformBars,
    /// Mean decode time per second of audio, where the peer reported it.
    pub real_time_factor: Option<f64>,
}

/// The split name under which free-form utterances of `split` are reported
/// (apart from the template splits, whose figures stay comparable).
pub fn freeform_split_name(split: &str) -> String {
    format!("{FREEFORM}-{split}")
}

/// The `queries` slice of the free-form evaluation set.
pub const FREEFORM: &str = "free-form";

#[derive(Debug, Clone, Serialize)]
pub struct Bars {
    pub clean_unseen_engine_wer: f64,
    pub clean_bar: f64,
    pub clean_met: bool,
    pub car_5db_wer: f64,
    pub car_5db_ratio: f64,
    pub car_bar_ratio: f64,
    pub car_met: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub model: String,
    pub data: String,
    pub decoder: String,
    pub splits: BTreeMap<String, SplitSummary>,
    pub bias_variance: Option<BiasVariance>,
    pub bars: Option<Bars>,
    /// The headline: free-form test half.
    pub freeform: Option<FreeformBars>,
    /// Another recognizer on the same free-form test audio (`hark eval
    /// --peer`), scored by the same code: the measuring stick.
    pub peer: Option<Peer>,
    /// split → slice key → value → row.
    pub slices: BTreeMap<String, SliceTable>,
    pub worst: Vec<Scored>,
    pub confusions: Vec<(String, String, u64)>,
    pub priorities: Vec<Priority>,
}

/// The `queries` slice of utterances from the vocabulary data release.
pub const VOCABULARY: &str = "vocabulary";

fn slice_value<'a>(s: &'a Scored, key: &str) -> Option<&'a str> {
    s.slices.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn wer_of<'a>(items: impl IntoIterator<Item = &'a Scored>) -> (f64, usize) {
    let mut c = ErrorCounts::default();
    let mut n = 0;
    for s in items {
        c += ErrorCounts::words(&s.reference, &s.hypothesis);
        n += 1;
    }
    (c.rate(), n)
}

impl Summary {
    pub fn build(model: &str, data: &str, decoder: &str, scored: &[Scored]) -> Self {
        let mut splits = BTreeMap::new();
        let mut slices: BTreeMap<String, SliceTable> = BTreeMap::new();
        let mut by_split: BTreeMap<&str, Vec<&Scored>> = BTreeMap::new();
        for s in scored {
            by_split.entry(&s.split).or_default().push(s);
            slices.entry(s.split.clone()).or_default().add(
                s.slices.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                &s.reference,
                &s.hypothesis,
            );
        }
        for (split, items) in &by_split {
            let (mut words, mut chars, mut greedy) =
                (ErrorCounts::default(), ErrorCounts::default(), ErrorCounts::default());
            for s in items {
                words += ErrorCounts::words(&s.reference, &s.hypothesis);
                chars += ErrorCounts::chars(&s.reference, &s.hypothesis);
                greedy += ErrorCounts::words(&s.reference, &s.greedy);
            }
            splits.insert(
                split.to_string(),
                SplitSummary {
                    utterances: items.len(),
                    wer: words.rate(),
                    cer: chars.rate(),
                    greedy_wer: greedy.rate(),
                    words,
                    chars,
                },
            );
        }
        // Like with like: the test split holds only voice-search queries, so
        // train and dev are compared on theirs too, without the vocabulary
        // release's utterances ("define despotic"), whose words the query
        // language model does not know.
        let rate = |split: &str| {
            let items = by_split.get(split)?;
            let queries = items.iter().copied().filter(|s| slice_value(s, "queries") != Some(VOCABULARY));
            let (wer, n) = wer_of(queries);
            (n > 0).then_some(wer)
        };
        let bias_variance = match (rate("train"), rate("dev"), rate("test")) {
            (Some(train), Some(dev), Some(test)) => {
                let (bias, variance, mismatch) = (train, dev - train, test - dev);
                let biggest = [(bias, "avoidable bias: the model underfits its own training data — a bigger model, longer training or a better optimiser come first"),
                    (variance, "variance: the model does not generalise to held-out voices and names — more varied training data, regularisation (SpecAugment, dropout) come first"),
                    (mismatch, "data mismatch: engines never heard in training are much harder — more speaker/engine variety in training data comes first")]
                    .into_iter()
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, d)| d.to_string())
                    .unwrap_or_default();
                Some(BiasVariance {
                    human_proxy_wer: 0.0,
                    train_wer: train,
                    dev_wer: dev,
                    test_wer: test,
                    avoidable_bias: bias,
                    variance,
                    mismatch,
                    diagnosis: format!("largest gap is {biggest}"),
                })
            }
            _ => None,
        };
        let freeform = by_split.get(freeform_split_name("test").as_str()).and_then(|test| freeform_bars(test));
        let test: Vec<&Scored> = by_split.get("test").cloned().unwrap_or_default();
        let clean: Vec<&Scored> = test.iter().copied().filter(|s| slice_value(s, "noise") == Some("clean")).collect();
        let car5: Vec<&Scored> =
            test.iter().copied().filter(|s| slice_value(s, "condition") == Some("car5db")).collect();
        let bars = (!clean.is_empty() && !car5.is_empty()).then(|| {
            let (c, _) = wer_of(clean.iter().copied());
            let (k, _) = wer_of(car5.iter().copied());
            let ratio = noisy_to_clean(k, c);
            Bars {
                clean_unseen_engine_wer: c,
                clean_bar: 0.10,
                clean_met: c <= 0.10,
                car_5db_wer: k,
                car_5db_ratio: ratio,
                car_bar_ratio: 1.5,
                car_met: ratio <= 1.5,
            }
        });
        // Prioritisation over noise × SNR band on test.
        let mut priorities = Vec::new();
        if !test.is_empty() {
            let (clean_wer, _) = wer_of(clean.iter().copied());
            let mut groups: BTreeMap<String, Vec<&Scored>> = BTreeMap::new();
            for s in &test {
                let noise = slice_value(s, "noise").unwrap_or("unknown");
                let key = match slice_value(s, "snr") {
                    Some(band) => format!("{noise} {band}"),
                    None => noise.to_string(),
                };
                groups.entry(key).or_default().push(s);
            }
            for (slice, items) in groups {
                let (wer, n) = wer_of(items.iter().copied());
                let share = n as f64 / test.len() as f64;
                let room = (wer - clean_wer).max(0.0);
                priorities.push(Priority { slice, utterances: n, wer, room, share, gain: room * share });
            }
            priorities.sort_by(|a, b| b.gain.total_cmp(&a.gain));
        }
        let mut confusions = Confusions::default();
        for s in scored.iter().filter(|s| s.split == "test") {
            confusions.add(&s.reference, &s.hypothesis);
        }
        let confusions = confusions.top(25).into_iter().map(|(r, h, c)| (r.to_string(), h.to_string(), c)).collect();
        let mut worst: Vec<&Scored> = scored.iter().filter(|s| s.split == "test").collect();
        worst.sort_by(|a, b| {
            let e = |s: &Scored| ErrorCounts::words(&s.reference, &s.hypothesis).rate();
            e(b).total_cmp(&e(a)).then_with(|| a.id.cmp(&b.id))
        });
        let worst = worst.into_iter().take(25).cloned().collect();
        Summary {
            model: model.into(),
            data: data.into(),
            decoder: decoder.into(),
            splits,
            bias_variance,
            bars,
            freeform,
            peer: None,
            slices,
            worst,
            confusions,
            priorities,
        }
    }

    /// Adds a peer recognizer's hypotheses for the same utterances (id →
    /// text), scored on the free-form test half like hark's own. Fails
    /// naming how many free-form test utterances the peer lacks.
    pub fn add_peer(
        &mut self,
        name: &str,
        scored: &[Scored],
        hypotheses: &BTreeMap<String, String>,
        real_time_factor: Option<f64>,
    ) -> Result<(), String> {
        let test = freeform_split_name("test");
        let ours: Vec<&Scored> = scored.iter().filter(|s| s.split == test).collect();
        let missing = ours.iter().filter(|s| !hypotheses.contains_key(&s.id)).count();
        if missing > 0 {
            return Err(format!(
                "{name} has no hypothesis for {missing} of the {} free-form test utterances",
                ours.len()
            ));
        }
        let theirs: Vec<Scored> = ours
            .iter()
            .map(|s| {
                let h = hypotheses[&s.id].clone();
                Scored { hypothesis: h.clone(), greedy: h, ..(*s).clone() }
            })
            .collect();
        let bars = freeform_bars(&theirs.iter().collect::<Vec<_>>())
            .ok_or_else(|| format!("no free-form test utterances (clean and car 5 dB) to compare {name} on"))?;
        self.peer = Some(Peer { name: name.to_owned(), bars, real_time_factor });
        Ok(())
    }

    /// One line for a terminal: the free-form bars, and the peer's beside them.
    pub fn freeform_line(&self) -> Option<String> {
        let f = self.freeform.as_ref()?;
        let peer = self.peer.as_ref().map(|p| {
            format!(
                "\n{:>14}: clean WER {:.1} % (queries {}, general English {}), car 5 dB {:.1} % = {:.2}× clean{}; hark {} it clean",
                p.name,
                100.0 * p.bars.clean_wer,
                pct_or_dash(p.bars.clean_query_wer),
                pct_or_dash(p.bars.clean_general_wer),
                100.0 * p.bars.car_5db_wer,
                p.bars.car_5db_ratio,
                p.real_time_factor.map(|r| format!(", {r:.3}× real time")).unwrap_or_default(),
                if f.clean_wer < p.bars.clean_wer { "beats" } else { "does NOT beat" }
            )
        });
        let met = |ok: bool| if ok { "met" } else { "NOT met" };
        Some(
            format!(
                "free-form test ({} utterances): clean WER {:.1} % (queries {}, general English {}; greedy {:.1} %; ≤ 15 %: {}), car 5 dB {:.1} % = {:.2}× clean (≤ 1.5×: {})",
                f.utterances,
                100.0 * f.clean_wer,
                pct_or_dash(f.clean_query_wer),
                pct_or_dash(f.clean_general_wer),
                100.0 * f.clean_greedy_wer,
                met(f.clean_met),
                100.0 * f.car_5db_wer,
                f.car_5db_ratio,
                met(f.car_met)
            ) + &peer.unwrap_or_default(),
        )
    }

    /// A standalone HTML page (inline SVG charts, no scripts).
    pub fn html(&self) -> String {
        let pct = |v: f64| format!("{:.1} %", 100.0 * v);
        let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        let mut h = String::new();
        let _ = write!(
            h,
            "<!doctype html><html lang=en><meta charset=utf-8><title>hark error analysis</title><style>body{{font-family:sans-serif;max-width:980px;margin:2em auto;padding:0 1em}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}.pass{{color:#1a7f37}}.fail{{color:#c0392b}}</style><h1>hark error analysis</h1><p>Model: <code>{}</code><br>Data: <code>{}</code><br>Decoder: {}</p>",
            esc(&self.model),
            esc(&self.data),
            esc(&self.decoder)
        );
        let mark = |ok: bool| if ok { "<b class=pass>met</b>" } else { "<b class=fail>not met</b>" };
        if let Some(f) = &self.freeform {
            let _ = write!(
                h,
                "<h2>Free-form test (the headline)</h2><p>{} utterances: text no template produced (hand-written voice-search queries and general English sentences), spoken by test-only voices.</p><table><tr><th>bar</th><th>target</th><th>measured</th><th></th></tr><tr><td>WER, clean</td><td>≤ 15 %</td><td>{} (queries {}, general {}; greedy {})</td><td>{}</td></tr><tr><td>WER with car noise at 5 dB SNR ÷ clean WER</td><td>≤ 1.5×</td><td>{:.2}× ({})</td><td>{}</td></tr></table>",
                f.utterances,
                pct(f.clean_wer),
                pct_or_dash(f.clean_query_wer),
                pct_or_dash(f.clean_general_wer),
                pct(f.clean_greedy_wer),
                mark(f.clean_met),
                f.car_5db_ratio,
                pct(f.car_5db_wer),
                mark(f.car_met)
            );
            if let Some(p) = &self.peer {
                let _ = write!(
                    h,
                    "<p>{} on the same audio, scored by the same code: clean {} (queries {}, general {}), car 5 dB {} = {:.2}× clean. hark {} it clean.</p>",
                    esc(&p.name),
                    pct(p.bars.clean_wer),
                    pct_or_dash(p.bars.clean_query_wer),
                    pct_or_dash(p.bars.clean_general_wer),
                    pct(p.bars.car_5db_wer),
                    p.bars.car_5db_ratio,
                    if f.clean_wer < p.bars.clean_wer { "beats" } else { "does <b class=fail>not</b> beat" }
                );
            }
        }
        if let Some(b) = &self.bars {
            let _ = write!(
                h,
                "<h2>Bars (template test split)</h2><table><tr><th>bar</th><th>target</th><th>measured</th><th></th></tr><tr><td>WER, unseen-engine test split, clean</td><td>≤ 10 %</td><td>{}</td><td>{}</td></tr><tr><td>WER with car noise at 5 dB SNR ÷ clean WER</td><td>≤ 1.5×</td><td>{:.2}× ({})</td><td>{}</td></tr></table>",
                pct(b.clean_unseen_engine_wer),
                mark(b.clean_met),
                b.car_5db_ratio,
                pct(b.car_5db_wer),
                mark(b.car_met)
            );
        }
        h.push_str("<h2>Splits</h2><table><tr><th>split</th><th>utterances</th><th>WER (beam + LM)</th><th>WER (greedy)</th><th>CER</th><th>subs</th><th>dels</th><th>ins</th><th>ref words</th></tr>");
        for (name, s) in &self.splits {
            let _ = write!(
                h,
                "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                s.utterances,
                pct(s.wer),
                pct(s.greedy_wer),
                pct(s.cer),
                s.words.substitutions,
                s.words.deletions,
                s.words.insertions,
                s.words.reference
            );
        }
        h.push_str("</table>");
        if let Some(bv) = &self.bias_variance {
            let _ = write!(
                h,
                "<h2>Bias and variance</h2><table><tr><th>level</th><th>WER</th><th>gap</th></tr><tr><td>human-level proxy (clean synthetic speech)</td><td>{}</td><td></td></tr><tr><td>train (sample; voice-search queries, as in test)</td><td>{}</td><td>avoidable bias {}</td></tr><tr><td>dev (held-out voices, unseen names; voice-search queries)</td><td>{}</td><td>variance {}</td></tr><tr><td>test (unseen engines)</td><td>{}</td><td>mismatch {}</td></tr></table><p>{}</p>",
                pct(bv.human_proxy_wer),
                pct(bv.train_wer),
                pct(bv.avoidable_bias),
                pct(bv.dev_wer),
                pct(bv.variance),
                pct(bv.test_wer),
                pct(bv.mismatch),
                esc(&bv.diagnosis)
            );
        }
        if !self.priorities.is_empty() {
            h.push_str("<h2>What to work on</h2><p>Room to improve (slice WER − clean WER) × share of traffic (the test split's mix), largest first.</p><table><tr><th>slice</th><th>utterances</th><th>WER</th><th>room</th><th>share</th><th>gain (WER points)</th></tr>");
            for p in &self.priorities {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td></tr>",
                    esc(&p.slice),
                    p.utterances,
                    pct(p.wer),
                    pct(p.room),
                    pct(p.share),
                    100.0 * p.gain
                );
            }
            h.push_str("</table>");
        }
        for (split, table) in &self.slices {
            let _ = write!(h, "<h2>Slices: {split}</h2>");
            for (key, values) in &table.slices {
                if values.len() > 12 {
                    // Long slices (template) as a table only.
                    let _ = write!(
                        h,
                        "<details><summary>{} ({} values)</summary><table><tr><th>{}</th><th>utterances</th><th>WER</th><th>CER</th></tr>",
                        esc(key),
                        values.len(),
                        esc(key)
                    );
                    let mut rows: Vec<_> = values.iter().collect();
                    rows.sort_by(|a, b| b.1.words.rate().total_cmp(&a.1.words.rate()));
                    for (v, row) in rows {
                        let _ = write!(
                            h,
                            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            esc(v),
                            row.utterances,
                            pct(row.words.rate()),
                            pct(row.chars.rate())
                        );
                    }
                    h.push_str("</table></details>");
                    continue;
                }
                let bars: Vec<(String, f64)> = values
                    .iter()
                    .map(|(v, row)| (format!("{v} ({})", row.utterances), 100.0 * row.words.rate()))
                    .collect();
                h.push_str(&bar_chart(&format!("{split}: WER by {key}"), " %", &bars));
            }
        }
        h.push_str("<h2>Most frequent confusions (test)</h2><table><tr><th>reference</th><th>recognised</th><th>count</th></tr>");
        for (r, hyp, c) in &self.confusions {
            let show = |w: &str| if w.is_empty() { "<i>(none)</i>".to_string() } else { esc(w) };
            let _ = write!(h, "<tr><td>{}</td><td>{}</td><td>{c}</td></tr>", show(r), show(hyp));
        }
        h.push_str("</table><h2>Worst examples (test)</h2><table><tr><th>id</th><th>reference</th><th>recognised</th><th>confidence</th></tr>");
        for s in &self.worst {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td></tr>",
                esc(&s.id),
                esc(&s.reference),
                esc(&s.hypothesis),
                s.confidence
            );
        }
        h.push_str("</table></html>\n");
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(id: &str, split: &str, noise: &str, condition: &str, reference: &str, hypothesis: &str) -> Scored {
        let mut slices =
            vec![("noise".to_string(), noise.to_string()), ("condition".to_string(), condition.to_string())];
        if noise != "clean" {
            slices.push(("snr".into(), "5-10db".into()));
        }
        Scored {
            id: id.into(),
            split: split.into(),
            slices,
            reference: reference.into(),
            hypothesis: hypothesis.into(),
            greedy: hypothesis.into(),
            confidence: 0.5,
        }
    }

    fn vocabulary(mut s: Scored) -> Scored {
        s.slices.push(("queries".into(), VOCABULARY.into()));
        s
    }

    #[test]
    fn summary_measures_bars_gaps_and_priorities() {
        let items = vec![
            scored("t1", "train", "clean", "clean", "a b c d", "a b c d"),
            vocabulary(scored("t2", "train", "clean", "clean", "define b", "define x")),
            scored("d1", "dev", "clean", "clean", "a b c d", "a b c x"),
            vocabulary(scored("d2", "dev", "clean", "clean", "define b", "x x")),
            scored("c1", "test", "clean", "clean", "a b c d", "a b c x"),
            scored("c2", "test", "clean", "clean", "a b c d", "a b c d"),
            scored("k1", "test", "car", "car5db", "a b c d", "a x x d"),
            scored("k2", "test", "car", "car5db", "a b c d", "a b c d"),
        ];
        let s = Summary::build("m", "d", "beam", &items);
        let bars = s.bars.as_ref().unwrap();
        assert!((bars.clean_unseen_engine_wer - 0.125).abs() < 1e-9);
        assert!((bars.car_5db_wer - 0.25).abs() < 1e-9);
        assert!((bars.car_5db_ratio - 2.0).abs() < 1e-9 && !bars.car_met && !bars.clean_met);
        let bv = s.bias_variance.as_ref().unwrap();
        // Vocabulary utterances count in their split's WER, not in the gaps.
        assert!((bv.variance - 0.25).abs() < 1e-9 && bv.avoidable_bias == 0.0, "{bv:?}");
        assert!(s.splits["train"].wer > 0.0);
        assert!(bv.diagnosis.contains("variance"), "{}", bv.diagnosis);
        assert_eq!(s.priorities[0].slice, "car 5-10db");
        assert!((s.priorities[0].gain - 0.125 * 0.5).abs() < 1e-9);
        assert_eq!(s.worst[0].id, "k1");
        assert_eq!(s.confusions[0], ("b".to_string(), "x".to_string(), 1));
        let html = s.html();
        assert!(html.contains("not met") && html.contains("<svg") && html.contains("car 5-10db"));
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"clean_unseen_engine_wer\":0.125"));
    }

    #[test]
    fn a_free_form_set_without_general_sentences_reports_none_not_zero() {
        let text = |mut s: Scored| {
            s.slices.push(("text".into(), "freeform-query".into()));
            s
        };
        let ff = freeform_split_name("test");
        let items = vec![
            text(scored("q1", &ff, "clean", "clean", "play some jazz", "play sum jazz")),
            text(scored("q2", &ff, "car", "car5db", "play some jazz", "play some jazz")),
        ];
        let s = Summary::build("m", "d", "beam", &items);
        let f = s.freeform.as_ref().unwrap();
        assert_eq!(f.clean_general_wer, None);
        let line = s.freeform_line().unwrap();
        assert!(line.contains("queries 33.3 %, general English —"), "{line}");
        assert!(!s.html().contains("general 0.0 %"));
    }

    #[test]
    fn freeform_bars_are_the_free_form_test_half_apart_from_the_template_split() {
        let text = |mut s: Scored, kind: &str| {
            s.slices.push(("text".into(), kind.into()));
            s
        };
        let ff = freeform_split_name("test");
        let items = vec![
            scored("c1", "test", "clean", "clean", "a b c d", "a b c d"),
            scored("k1", "test", "car", "car5db", "a b c d", "a b c d"),
            text(scored("q1", &ff, "clean", "clean", "play some jazz", "play sum jazz"), "freeform-query"),
            text(scored("g1", &ff, "clean", "clean", "a b c d e", "a b c d e"), "freeform-general"),
            text(scored("q2", &ff, "car", "car5db", "play some jazz", "flights to geneva"), "freeform-query"),
            text(scored("g2", &ff, "car", "car5db", "a b c d e", "a b c d e"), "freeform-general"),
        ];
        let s = Summary::build("m", "d", "beam", &items);
        // The template split's figures do not see the free-form utterances.
        assert_eq!(s.splits["test"].utterances, 2);
        assert_eq!(s.bars.as_ref().unwrap().clean_unseen_engine_wer, 0.0);
        let f = s.freeform.as_ref().unwrap();
        assert_eq!(f.utterances, 4);
        assert!((f.clean_wer - 1.0 / 8.0).abs() < 1e-9, "{f:?}");
        assert!((f.clean_query_wer.unwrap() - 1.0 / 3.0).abs() < 1e-9 && f.clean_general_wer == Some(0.0));
        assert!((f.car_5db_wer - 3.0 / 8.0).abs() < 1e-9);
        assert!((f.car_5db_ratio - 3.0).abs() < 1e-9 && f.clean_met && !f.car_met);
        assert!(s.freeform_line().unwrap().contains("clean WER 12.5 %"));
        assert!(s.html().contains("Free-form test (the headline)"));
        // A peer is scored on the same utterances by the same code.
        let mut s = s;
        let peer: BTreeMap<String, String> =
            [("q1", "play some jazz"), ("g1", "a b"), ("q2", "play some jazz"), ("g2", "a b c d e")]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
        s.add_peer("pocketsphinx", &items, &peer, Some(0.3)).unwrap();
        let p = s.peer.as_ref().unwrap();
        assert!((p.bars.clean_wer - 3.0 / 8.0).abs() < 1e-9 && p.bars.car_5db_wer == 0.0, "{p:?}");
        assert!(s.freeform_line().unwrap().contains("hark beats it clean"));
        let mut partial = peer.clone();
        partial.remove("g2");
        assert!(
            s.add_peer("pocketsphinx", &items, &partial, None).unwrap_err().contains("no hypothesis for 1 of the 4")
        );
        // Without a free-form half there is no headline to report.
        assert!(Summary::build("m", "d", "beam", &items[..2]).freeform.is_none());
    }
}
