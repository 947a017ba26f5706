//! Sample-rate conversion to 16 kHz (or any rate), whole files or streamed.
//!
//! Built on `rubato`'s synchronous FFT resampler, whose anti-aliasing filter
//! is a windowed sinc; a test holds aliasing from a 44.1 kHz sweep above
//! the new Nyquist frequency below −60 dB. The browser's microphone runs at the
//! device's native rate (44.1 or 48 kHz) and goes through [`StreamResampler`];
//! files go through [`resample`]. Both produce the same samples.

use rubato::{FftFixedIn, Resampler as _};

/// Input frames rubato consumes per call. Small enough for live audio
/// (~20 ms at 48 kHz), large enough to be efficient.
const CHUNK: usize = 1024;

/// A rate the resampler cannot work with.
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    #[error("cannot resample from {from} Hz to {to} Hz: sample rates must be between 1 kHz and 384 kHz")]
    Rate { from: u32, to: u32 },
    #[error("resampler failed: {0}")]
    Rubato(String),
}

/// Converts a stream of mono samples from one rate to another, chunk by chunk.
pub struct StreamResampler {
    inner: Option<FftFixedIn<f32>>,
    pending: Vec<f32>,
    /// Output samples still to drop: the filter's delay.
    delay_left: usize,
    consumed: u64,
    produced: u64,
    from: u32,
    to: u32,
}

impl StreamResampler {
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        let valid = |r: u32| (1_000..=384_000).contains(&r);
        if !valid(from) || !valid(to) {
            return Err(ResampleError::Rate { from, to });
        }
        let inner = if from == to {
            None
        } else {
            Some(
                FftFixedIn::<f32>::new(from as usize, to as usize, CHUNK, 2, 1)
                    .map_err(|e| ResampleError::Rubato(e.to_string()))?,
            )
        };
        let delay_left = inner.as_ref().map_or(0, |r| r.output_delay());
        Ok(Self { inner, pending: Vec::with_capacity(2 * CHUNK), delay_left, consumed: 0, produced: 0, from, to })
    }

    /// Feeds samples; returns whatever output is ready.
    pub fn push(&mut self, samples: &[f32]) -> Vec<f32> {
        self.consumed += samples.len() as u64;
        let Some(inner) = self.inner.as_mut() else {
            self.produced += samples.len() as u64;
            return samples.to_vec();
        };
        self.pending.extend_from_slice(samples);
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let need = inner.input_frames_next();
            if self.pending.len() - start < need {
                break;
            }
            let chunk = &self.pending[start..start + need];
            let produced = inner.process(&[chunk], None).expect("chunk has exactly input_frames_next frames");
            out.extend_from_slice(&produced[0]);
            start += need;
        }
        self.pending.drain(..start);
        self.trim_delay(out)
    }

    /// Flushes the filter: returns the rest of the output, so that the total
    /// is `round(input_len × to / from)` samples.
    pub fn finish(mut self) -> Vec<f32> {
        let expected = (self.consumed as u128 * self.to as u128).div_ceil(self.from as u128) as u64;
        let Some(mut inner) = self.inner.take() else { return Vec::new() };
        let mut out = Vec::new();
        let mut chunk = std::mem::take(&mut self.pending);
        // Feed the partial chunk padded with silence, then silence, until the
        // delayed tail is out.
        while self.produced + (out.len().saturating_sub(self.delay_left)) as u64 <= expected {
            chunk.resize(inner.input_frames_next(), 0.0);
            let produced =
                inner.process(&[chunk.as_slice()], None).expect("chunk has exactly input_frames_next frames");
            out.extend_from_slice(&produced[0]);
            chunk.clear();
        }
        let before = self.produced;
        let mut out = self.trim_delay(out);
        out.truncate(expected.saturating_sub(before) as usize);
        out
    }

    fn trim_delay(&mut self, mut out: Vec<f32>) -> Vec<f32> {
        let drop = self.delay_left.min(out.len());
        self.delay_left -= drop;
        out.drain(..drop);
        self.produced += out.len() as u64;
        out
    }
}

/// Resamples a whole mono signal.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, ResampleError> {
    let mut stream = StreamResampler::new(from, to)?;
    let mut out = stream.push(samples);
    out.extend(stream.finish());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(rate: u32, f0: f64, f1: f64, seconds: f64) -> Vec<f32> {
        let n = (rate as f64 * seconds) as usize;
        let k = (f1 - f0) / seconds;
        (0..n)
            .map(|i| {
                let t = i as f64 / rate as f64;
                (0.5 * (2.0 * std::f64::consts::PI * (f0 * t + 0.5 * k * t * t)).sin()) as f32
            })
            .collect()
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn aliasing_from_a_sweep_above_nyquist_stays_below_minus_60_db() {
        for from in [44_100, 48_000] {
            let pass = resample(&sweep(from, 100.0, 7_000.0, 1.0), from, 16_000).unwrap();
            let stop = resample(&sweep(from, 8_500.0, (from / 2) as f64 - 100.0, 1.0), from, 16_000).unwrap();
            // Ignore the filter's edges.
            let (p, s) = (&pass[800..pass.len() - 800], &stop[800..stop.len() - 800]);
            let db = 20.0 * (rms(s) / rms(p)).log10();
            eprintln!("{from} Hz → 16 kHz: aliasing {db:.1} dB");
            assert!(db < -60.0, "{from} Hz → 16 kHz: aliasing at {db:.1} dB");
            // The passband is kept (within 0.5 dB of the input's 0.5/√2 RMS).
            let pass_db = 20.0 * (rms(p) / (0.5 / 2f64.sqrt())).log10();
            assert!(pass_db.abs() < 0.5, "passband level {pass_db:.2} dB");
        }
    }

    #[test]
    fn output_length_follows_the_rate_ratio_and_tones_keep_their_frequency() {
        let from = 44_100;
        let tone: Vec<f32> =
            (0..from).map(|i| (2.0 * std::f32::consts::PI * 1_000.0 * i as f32 / from as f32).sin()).collect();
        let out = resample(&tone, from, 16_000).unwrap();
        assert_eq!(out.len(), 16_000);
        // A 1 kHz tone crosses zero 2000 times a second, wherever it is sampled.
        let crossings = out[100..15_900].windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
        assert!((crossings as i64 - 1_975).abs() <= 3, "{crossings} zero crossings");
        // Aligned, not delayed: compare with the ideal 16 kHz tone.
        let ideal = |i: usize| (2.0 * std::f32::consts::PI * 1_000.0 * i as f32 / 16_000.0).sin();
        let err = out[200..15_800].iter().enumerate().map(|(i, v)| (v - ideal(i + 200)).abs()).fold(0.0f32, f32::max);
        assert!(err < 0.01, "max deviation from the ideal tone {err}");
    }

    #[test]
    fn streaming_in_odd_chunks_equals_whole_file() {
        let input = sweep(48_000, 50.0, 7_000.0, 0.7);
        let whole = resample(&input, 48_000, 16_000).unwrap();
        let mut stream = StreamResampler::new(48_000, 16_000).unwrap();
        let mut out = Vec::new();
        for chunk in input.chunks(333) {
            out.extend(stream.push(chunk));
        }
        out.extend(stream.finish());
        assert_eq!(out.len(), whole.len());
        assert!(out.iter().zip(&whole).all(|(a, b)| (a - b).abs() < 1e-6));
    }

    #[test]
    fn same_rate_is_a_copy_and_bad_rates_are_named() {
        let x = vec![0.1, -0.2, 0.3];
        assert_eq!(resample(&x, 16_000, 16_000).unwrap(), x);
        let err = resample(&x, 0, 16_000).unwrap_err();
        assert!(err.to_string().contains("0 Hz"), "{err}");
    }
}
