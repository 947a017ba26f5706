//! Endpoint detection: where speech starts and stops, on a live stream.
//!
//! Works on 10 ms frames of 16 kHz audio fed in chunks of any size, so the
//! browser can stop listening by itself at the end of a query. A frame counts
//! as speech when its energy stands [`EndpointConfig::threshold_db`] above an
//! adaptive noise floor *and* its spectrum is not flat like noise (spectral
//! flatness over 300–4000 Hz), or when it is very loud. Speech starts after
//! [`EndpointConfig::min_speech_ms`] of speech frames and ends after
//! [`EndpointConfig::hangover_ms`] without any (the hangover bridges the pauses
//! between words).

use std::sync::Arc;

use realfft::num_complex::Complex32;
use realfft::{RealFftPlanner, RealToComplex};

const FRAME: usize = 160; // 10 ms at 16 kHz
const FFT: usize = 256;

/// Tuning of the endpoint detector; defaults suit voice-search queries.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointConfig {
    /// Energy above the noise floor that makes a frame a speech candidate.
    pub threshold_db: f32,
    /// Frames quieter than this (dBFS) are never speech.
    pub absolute_floor_dbfs: f32,
    /// Spectral flatness below which a candidate counts as speech (white noise ≈ 0.56).
    pub max_flatness: f32,
    /// Speech needed before a start is reported.
    pub min_speech_ms: u32,
    /// Silence needed after speech before an end is reported.
    pub hangover_ms: u32,
    /// Audio kept before the detected start and after the last speech frame.
    pub padding_ms: u32,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            threshold_db: 12.0,
            absolute_floor_dbfs: -55.0,
            max_flatness: 0.35,
            min_speech_ms: 100,
            hangover_ms: 700,
            padding_ms: 150,
        }
    }
}

/// A boundary of speech, as a sample index of the 16 kHz stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    SpeechStart { sample: u64 },
    SpeechEnd { sample: u64 },
}

/// Streaming endpoint detector for 16 kHz mono audio.
pub struct Endpointer {
    config: EndpointConfig,
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    frame_buf: Vec<f32>,
    fft_in: Vec<f32>,
    fft_out: Vec<Complex32>,
    frames_seen: u64,
    noise_db: Option<f32>,
    in_speech: bool,
    /// First frame of the current run of speech candidates, and its length.
    run_start: u64,
    run_len: u32,
    gap: u32,
    last_speech_frame: u64,
}

impl Endpointer {
    pub fn new(config: EndpointConfig) -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(FFT);
        let window = crate::mel::periodic_hann(FRAME).into_iter().map(|w| w as f32).collect();
        Self {
            fft_in: vec![0.0; FFT],
            fft_out: fft.make_output_vec(),
            fft,
            window,
            frame_buf: Vec::with_capacity(FRAME),
            config,
            frames_seen: 0,
            noise_db: None,
            in_speech: false,
            run_start: 0,
            run_len: 0,
            gap: 0,
            last_speech_frame: 0,
        }
    }

    /// Whether speech has started and not yet ended.
    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// Feeds 16 kHz samples; returns the boundaries they completed.
    pub fn push(&mut self, samples: &[f32]) -> Vec<Endpoint> {
        let mut events = Vec::new();
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (FRAME - self.frame_buf.len()).min(rest.len());
            self.frame_buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.frame_buf.len() == FRAME {
                let speech = self.classify();
                self.frame_buf.clear();
                if let Some(e) = self.advance(speech) {
                    events.push(e);
                }
                self.frames_seen += 1;
            }
        }
        events
    }

    /// End of the stream: closes an utterance still open.
    pub fn finish(&mut self) -> Option<Endpoint> {
        if !self.in_speech {
            return None;
        }
        self.in_speech = false;
        Some(Endpoint::SpeechEnd { sample: self.end_sample() })
    }

    fn ms_to_frames(ms: u32) -> u32 {
        ms.div_ceil(10)
    }

    fn end_sample(&self) -> u64 {
        let pad = Self::ms_to_frames(self.config.padding_ms) as u64;
        ((self.last_speech_frame + 1 + pad).min(self.frames_seen + 1)) * FRAME as u64
    }

    fn advance(&mut self, speech: bool) -> Option<Endpoint> {
        let frame = self.frames_seen;
        if self.in_speech {
            if speech {
                self.last_speech_frame = frame;
                self.gap = 0;
                return None;
            }
            self.gap += 1;
            if self.gap >= Self::ms_to_frames(self.config.hangover_ms) {
                self.in_speech = false;
                self.run_len = 0;
                return Some(Endpoint::SpeechEnd { sample: self.end_sample() });
            }
            return None;
        }
        if speech {
            if self.run_len == 0 {
                self.run_start = frame;
            }
            self.run_len += 1;
            self.gap = 0;
            self.last_speech_frame = frame;
            if self.run_len >= Self::ms_to_frames(self.config.min_speech_ms) {
                self.in_speech = true;
                let pad = Self::ms_to_frames(self.config.padding_ms) as u64;
                return Some(Endpoint::SpeechStart { sample: self.run_start.saturating_sub(pad) * FRAME as u64 });
            }
        } else if self.run_len > 0 {
            // Short dips inside a word do not break a run; longer ones do.
            self.gap += 1;
            if self.gap > 3 {
                self.run_len = 0;
                self.gap = 0;
            }
        }
        None
    }

    /// Is the buffered frame a speech frame? Also updates the noise floor.
    fn classify(&mut self) -> bool {
        let energy = self.frame_buf.iter().map(|x| x * x).sum::<f32>() / FRAME as f32;
        let db = 10.0 * (energy + 1e-12).log10();
        let noise = *self.noise_db.get_or_insert(db);

        for (dst, (x, w)) in self.fft_in.iter_mut().zip(self.frame_buf.iter().zip(&self.window)) {
            *dst = x * w;
        }
        self.fft_in[FRAME..].fill(0.0);
        self.fft.process(&mut self.fft_in, &mut self.fft_out).expect("buffers sized by the planner");
        // Bins covering 300–4000 Hz (62.5 Hz per bin).
        let band = &self.fft_out[5..=64];
        let powers = band.iter().map(|c| c.norm_sqr() + 1e-20);
        let (log_sum, sum) = powers.fold((0.0f32, 0.0f32), |(l, s), p| (l + p.ln(), s + p));
        let n = band.len() as f32;
        let flatness = (log_sum / n).exp() / (sum / n);

        let above = db - noise;
        let loud_enough = db > self.config.absolute_floor_dbfs;
        let speech = loud_enough
            && ((above > self.config.threshold_db && flatness < self.config.max_flatness)
                || above > 2.0 * self.config.threshold_db);

        // The floor falls at once to quieter frames and rises slowly, faster
        // outside speech, so steady noise is learnt but speech is not.
        let rate = if speech { 0.002 } else { 0.05 };
        self.noise_db = Some(if db < noise { db } else { noise + rate * (db - noise) });
        speech
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic white noise at `dbfs` RMS (xorshift; no RNG crate needed).
    fn noise(len: usize, dbfs: f32, seed: u64) -> Vec<f32> {
        let mut state = seed | 1;
        let amp = 10f32.powf(dbfs / 20.0) * 3f32.sqrt();
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0) * amp
            })
            .collect()
    }

    fn query() -> Vec<f32> {
        let audio = crate::wav::read_from(
            std::io::Cursor::new(include_bytes!("../testdata/query.wav").as_slice()),
            "query.wav",
        )
        .unwrap();
        audio.samples
    }

    fn run(samples: &[f32], chunk: usize) -> Vec<Endpoint> {
        let mut ep = Endpointer::new(EndpointConfig::default());
        let mut events: Vec<Endpoint> = samples.chunks(chunk).flat_map(|c| ep.push(c)).collect();
        events.extend(ep.finish());
        events
    }

    /// One second of quiet noise, the query, 1.5 s of the same noise.
    fn padded_query() -> (Vec<f32>, f64, f64) {
        let speech = query();
        let first = speech.iter().position(|s| s.abs() > 0.02).unwrap();
        let last = speech.iter().rposition(|s| s.abs() > 0.02).unwrap();
        let mut signal = noise(16_000, -50.0, 7);
        let bg = noise(speech.len(), -50.0, 8);
        signal.extend(speech.iter().zip(bg).map(|(s, n)| s + n));
        signal.extend(noise(24_000, -50.0, 9));
        (signal, 1.0 + first as f64 / 16_000.0, 1.0 + last as f64 / 16_000.0)
    }

    #[test]
    fn finds_the_start_and_end_of_a_spoken_query() {
        let (signal, onset, offset) = padded_query();
        let events = run(&signal, 4096);
        let [Endpoint::SpeechStart { sample: start }, Endpoint::SpeechEnd { sample: end }] = events[..] else {
            panic!("expected one start and one end, got {events:?}");
        };
        let (start, end) = (start as f64 / 16_000.0, end as f64 / 16_000.0);
        assert!(start <= onset && start >= onset - 0.3, "start {start:.3}s, speech begins at {onset:.3}s");
        assert!(end >= offset && end <= offset + 0.35, "end {end:.3}s, speech ends at {offset:.3}s");
    }

    #[test]
    fn reports_nothing_in_steady_noise() {
        for dbfs in [-60.0, -35.0, -20.0] {
            let events = run(&noise(48_000, dbfs, 3), 1000);
            assert!(events.is_empty(), "{dbfs} dBFS noise gave {events:?}");
        }
    }

    #[test]
    fn chunk_size_does_not_change_the_result() {
        let (signal, _, _) = padded_query();
        let reference = run(&signal, signal.len());
        for chunk in [1, 127, 160, 941] {
            assert_eq!(run(&signal, chunk), reference, "chunk size {chunk}");
        }
    }

    #[test]
    fn an_utterance_cut_off_by_the_stream_end_is_closed() {
        let speech = query();
        let mut ep = Endpointer::new(EndpointConfig::default());
        let mut events = ep.push(&speech[..speech.len() / 2]);
        assert!(ep.in_speech());
        events.extend(ep.finish());
        assert!(matches!(events[..], [Endpoint::SpeechStart { .. }, Endpoint::SpeechEnd { .. }]), "{events:?}");
    }
}
