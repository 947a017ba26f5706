//! A compact summary of how an utterance sounds, for drift monitoring: the
//! log-mel energy of [`SUMMARY_BANDS`] bands (mean and standard deviation
//! over the utterance), an SNR estimate and how long the speech lasts.
//! Computed from the same log-mel features the model reads, by this one
//! function on every side — the browser (for opt-in telemetry), the
//! reference profile written beside a model, and the monitor's simulations —
//! so a shift it shows is a shift in the sound, not in the code.
//!
//! The SNR and speech estimates read frame energies: the quietest tenth of
//! the frames is the noise floor, the loudest tenth the speech (plus noise)
//! level; a frame 6 dB over the floor counts as speech. Made for 1–30 s
//! voice queries: an utterance without pauses has no floor to find, and
//! its SNR reads low.

/// Groups of adjacent mel bands summarised (the 80 model bands, 5 per group).
pub const SUMMARY_BANDS: usize = 16;
/// A frame this far over the noise floor is speech.
const SPEECH_OVER_FLOOR_DB: f32 = 6.0;

#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSummary {
    /// Per band group, mean log-mel (natural log of power) over the frames.
    pub band_mean: Vec<f32>,
    /// Per band group, its standard deviation over the frames.
    pub band_std: Vec<f32>,
    /// Estimated speech-to-noise ratio, dB (0 when no speech rises over the floor).
    pub snr_db: f32,
    /// Seconds of frames over the noise floor by [`SPEECH_OVER_FLOOR_DB`].
    pub speech_s: f32,
    /// Frames summarised.
    pub frames: u32,
}

impl FeatureSummary {
    /// The summary of `log_mel` (row-major `[frames, n_mels]`, as
    /// [`crate::LogMel::compute`] returns it, *before* normalisation), frames
    /// `hop_s` seconds apart; `None` without a whole frame or bands.
    pub fn of(log_mel: &[f32], n_mels: usize, hop_s: f32) -> Option<Self> {
        if n_mels < SUMMARY_BANDS || log_mel.len() < n_mels {
            return None;
        }
        let frames = log_mel.len() / n_mels;
        // One pass over the frames, each value turned back into power once:
        // each band group's log mean power, and the frame's energy in dB.
        let mut groups: Vec<Vec<f64>> = (0..SUMMARY_BANDS).map(|_| Vec::with_capacity(frames)).collect();
        let mut energy = Vec::with_capacity(frames);
        for row in log_mel.chunks_exact(n_mels) {
            let mut total = 0.0;
            for (g, values) in groups.iter_mut().enumerate() {
                let (lo, hi) = (g * n_mels / SUMMARY_BANDS, (g + 1) * n_mels / SUMMARY_BANDS);
                let power: f64 = row[lo..hi].iter().map(|&v| (v as f64).exp()).sum();
                total += power;
                values.push((power / (hi - lo) as f64).max(1e-30).ln());
            }
            energy.push((10.0 * total.max(1e-30).log10()) as f32);
        }
        let mut band_mean = Vec::with_capacity(SUMMARY_BANDS);
        let mut band_std = Vec::with_capacity(SUMMARY_BANDS);
        for values in &groups {
            let mean = values.iter().sum::<f64>() / frames as f64;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / frames as f64;
            band_mean.push(mean as f32);
            band_std.push(var.sqrt() as f32);
        }
        let mut sorted = energy.clone();
        sorted.sort_by(f32::total_cmp);
        let floor = sorted[(frames - 1) / 10];
        let loud = sorted[(frames - 1) * 9 / 10];
        let speech = energy.iter().filter(|&&e| e > floor + SPEECH_OVER_FLOOR_DB).count();
        // (speech + noise) over noise → speech over noise, in power.
        let snr_db = if loud - floor > SPEECH_OVER_FLOOR_DB {
            (10.0 * (10f64.powf(((loud - floor) / 10.0) as f64) - 1.0).log10()) as f32
        } else {
            0.0
        };
        Some(Self { band_mean, band_std, snr_db, speech_s: speech as f32 * hop_s, frames: frames as u32 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LogMel, LogMelConfig};

    const RATE: f32 = 16_000.0;

    /// Deterministic white noise of RMS `rms`.
    fn noise(n: usize, rms: f32, seed: u32) -> Vec<f32> {
        let mut state = seed | 1;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state as f32 / u32::MAX as f32 - 0.5) * rms * 12f32.sqrt()
            })
            .collect()
    }

    fn summary(samples: &[f32]) -> FeatureSummary {
        let mut mel = LogMel::new(LogMelConfig::default());
        let features = mel.compute(samples);
        FeatureSummary::of(&features, 80, 0.01).expect("long enough")
    }

    /// 2 s of white noise with 1 s of louder sound in the middle: a tone of
    /// `hz`, or (`hz` 0) more white noise — broadband like speech, so its
    /// power over the background's is the SNR whatever the mel weighting.
    fn burst(snr_db: f32, hz: f32) -> Vec<f32> {
        let noise_rms = 0.01;
        let rms = noise_rms * 10f32.powf(snr_db / 20.0);
        let mut x = noise(32_000, noise_rms, 7);
        let loud = noise(16_000, rms, 11);
        for (i, s) in x.iter_mut().enumerate().skip(8_000).take(16_000) {
            *s += if hz > 0.0 {
                rms * 2f32.sqrt() * (2.0 * std::f32::consts::PI * hz * i as f32 / RATE).sin()
            } else {
                loud[i - 8_000]
            };
        }
        x
    }

    #[test]
    fn snr_and_speech_duration_are_recovered() {
        for snr in [10.0, 20.0, 30.0] {
            let s = summary(&burst(snr, 0.0));
            assert!((s.snr_db - snr).abs() < 2.0, "snr {snr} dB estimated as {}", s.snr_db);
            assert!((s.speech_s - 1.0).abs() < 0.1, "speech lasted 1 s, estimated {}", s.speech_s);
        }
    }

    #[test]
    fn noise_alone_has_no_speech() {
        let s = summary(&noise(32_000, 0.01, 3));
        assert!(s.snr_db < 3.0, "{}", s.snr_db);
        assert!(s.speech_s < 0.1, "{}", s.speech_s);
        assert_eq!(s.band_mean.len(), SUMMARY_BANDS);
        assert_eq!(s.frames, 198);
    }

    #[test]
    fn band_energies_show_where_the_sound_is() {
        let low = summary(&burst(30.0, 300.0));
        let high = summary(&burst(30.0, 5_000.0));
        assert!(low.band_mean[1] > high.band_mean[1] + 1.0, "{:?} vs {:?}", low.band_mean, high.band_mean);
        assert!(high.band_mean[13] > low.band_mean[13] + 1.0, "{:?} vs {:?}", low.band_mean, high.band_mean);
        // A tone that comes and goes varies over time in its band.
        assert!(low.band_std[1] > 1.0, "{:?}", low.band_std);
    }

    #[test]
    fn too_little_input_is_none() {
        assert_eq!(FeatureSummary::of(&[], 80, 0.01), None);
        assert_eq!(FeatureSummary::of(&[0.0; 79], 80, 0.01), None);
        assert_eq!(FeatureSummary::of(&[0.0; 8], 8, 0.01), None, "fewer bands than groups");
    }
}
