//! Endpoint detection: where speech starts and stops, on a live stream.
//!
//! Works on 10 ms frames of 16 kHz audio fed in chunks of any size, so the
//! browser can stop listening by itself at the end of a query. A frame counts
//! as speech when its energy over 300–4000 Hz stands
//! [`EndpointConfig::threshold_db`] above an adaptive noise floor *and* its
//! spectrum there is not flat like noise (spectral flatness), or when it is
//! very loud. The band leaves out the rumble below 300 Hz (engine, road,
//! fans) that would otherwise mask speech: in a car at 5 dB SNR the full-band
//! detector missed one query in six. Speech starts after
//! [`EndpointConfig::min_speech_ms`] of speech frames and ends after
//! [`EndpointConfig::hangover_ms`] without any (the hangover bridges the pauses
//! between words). The reported boundaries then reach out to where the sound
//! rose out of the noise and faded back into it
//! ([`EndpointConfig::onset_db`]), since a query's first and last sounds are
//! its quietest and the threshold is set for confirming speech, not for
//! finding its edges.

use std::sync::Arc;

use realfft::num_complex::Complex32;
use realfft::{RealFftPlanner, RealToComplex};

const FRAME: usize = 160; // 10 ms at 16 kHz
const FFT: usize = 256;
/// Frame levels kept for reaching out to a start or an end (1 s: longer
/// than the start back-off and the hangover).
const RECENT_FRAMES: usize = 100;

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
    /// Level over the noise floor that still counts as the onset of speech
    /// once a start is confirmed (see [`Endpointer`]'s start back-off).
    pub onset_db: f32,
    /// How far before the confirmed run the onset may be found.
    pub max_onset_backoff_ms: u32,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            threshold_db: 9.0,
            absolute_floor_dbfs: -55.0,
            max_flatness: 0.35,
            min_speech_ms: 100,
            hangover_ms: 700,
            padding_ms: 150,
            onset_db: 3.0,
            max_onset_backoff_ms: 600,
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
    /// Level over the noise floor of the latest frames, newest last.
    recent: std::collections::VecDeque<f32>,
    /// Frame index of `recent`'s last entry.
    recent_newest: u64,
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
            recent: std::collections::VecDeque::with_capacity(RECENT_FRAMES),
            recent_newest: 0,
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
        ((self.offset_frame() + 1 + pad).min(self.frames_seen + 1)) * FRAME as u64
    }

    /// The last frame of the sound that faded out after the last speech
    /// frame (a final consonant, a word's tail under noise): the mirror of
    /// [`Self::onset_frame`], within the frames seen since.
    fn offset_frame(&self) -> u64 {
        let from = self.last_speech_frame;
        self.reach(from, from.max(self.oldest_recent()) + 1..=self.recent_newest)
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
                let onset = self.onset_frame(self.run_start);
                return Some(Endpoint::SpeechStart { sample: onset.saturating_sub(pad) * FRAME as u64 });
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

    /// Is the buffered frame a speech frame? Also updates the noise floor
    /// and records the frame's level for [`Self::onset_frame`].
    fn classify(&mut self) -> bool {
        let energy = self.frame_buf.iter().map(|x| x * x).sum::<f32>() / FRAME as f32;
        let db = 10.0 * (energy + 1e-12).log10();

        for (dst, (x, w)) in self.fft_in.iter_mut().zip(self.frame_buf.iter().zip(&self.window)) {
            *dst = x * w;
        }
        self.fft_in[FRAME..].fill(0.0);
        self.fft.process(&mut self.fft_in, &mut self.fft_out).expect("buffers sized by the planner");
        // Bins covering 300–4000 Hz (62.5 Hz per bin): where speech carries
        // its energy and the rumble of engines, roads and fans mostly does not.
        let band = &self.fft_out[5..=64];
        let powers = band.iter().map(|c| c.norm_sqr() + 1e-20);
        let (log_sum, sum) = powers.fold((0.0f32, 0.0f32), |(l, s), p| (l + p.ln(), s + p));
        let n = band.len() as f32;
        let flatness = (log_sum / n).exp() / (sum / n);
        let band_db = 10.0 * (sum / n).log10();
        let noise = *self.noise_db.get_or_insert(band_db);

        let above = band_db - noise;
        let loud_enough = db > self.config.absolute_floor_dbfs;
        let speech = loud_enough
            && ((above > self.config.threshold_db && flatness < self.config.max_flatness)
                || above > 2.0 * self.config.threshold_db);
        if self.recent.len() == RECENT_FRAMES {
            self.recent.pop_front();
        }
        // Frames under the absolute floor are never part of speech, however
        // far above a floor learnt in digital silence they stand.
        self.recent.push_back(if loud_enough { above } else { f32::NEG_INFINITY });
        self.recent_newest = self.frames_seen;

        // The floor falls at once to quieter frames and rises slowly, faster
        // outside speech, so steady noise is learnt but speech is not.
        let rate = if speech { 0.002 } else { 0.05 };
        self.noise_db = Some(if band_db < noise { band_db } else { noise + rate * (band_db - noise) });
        speech
    }

    /// The frame where the sound that became speech at `run_start` rose out
    /// of the noise: the run is confirmed only once its loudest part clears
    /// the threshold, but a query's first sounds (a fricative, a soft onset,
    /// a word masked by car noise) are quieter.
    fn onset_frame(&self, run_start: u64) -> u64 {
        let backoff = Self::ms_to_frames(self.config.max_onset_backoff_ms) as u64;
        let limit = run_start.saturating_sub(backoff).max(self.oldest_recent());
        self.reach(run_start, (limit..run_start).rev())
    }

    /// Walks `frames` (moving away from `from`) while they stay
    /// [`EndpointConfig::onset_db`] over the noise floor, bridging dips of up
    /// to 3 frames (a stop closure); the furthest such frame, else `from`.
    fn reach(&self, from: u64, frames: impl Iterator<Item = u64>) -> u64 {
        let oldest = self.oldest_recent();
        let mut furthest = from;
        let mut quiet = 0;
        for frame in frames {
            if self.recent[(frame - oldest) as usize] > self.config.onset_db {
                furthest = frame;
                quiet = 0;
            } else {
                quiet += 1;
                if quiet > 3 {
                    break;
                }
            }
        }
        furthest
    }

    /// Frame index of `recent`'s first entry.
    fn oldest_recent(&self) -> u64 {
        self.recent_newest + 1 - self.recent.len() as u64
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
