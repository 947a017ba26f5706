//! Turning a live microphone stream into utterances: samples at the
//! device's rate in, 16 kHz speech segments out, ended by the endpoint
//! detector (or by the caller, for hold-to-talk). Pure Rust, so the browser's
//! capture logic is tested natively.

use hark_dsp::{EndpointConfig, Endpointer, SAMPLE_RATE, StreamResampler};

use crate::RecognizeError;

/// Longest utterance kept; speech running longer is ended here. One
/// segment of the recogniser: an utterance is never cut again.
pub const MAX_UTTERANCE_S: f64 = crate::MAX_SEGMENT_S;
/// [`MAX_UTTERANCE_S`] in 16 kHz samples.
const MAX_UTTERANCE_SAMPLES: usize = crate::MAX_SEGMENT_SAMPLES;

/// What the listener heard in one push.
#[derive(Debug, Clone, PartialEq)]
pub enum Heard {
    SpeechStarted,
    /// A finished utterance, 16 kHz mono.
    Utterance(Vec<f32>),
}

pub struct Listener {
    /// Passes 16 kHz input through unchanged.
    resampler: StreamResampler,
    endpointer: Endpointer,
    /// 16 kHz audio; `audio[0]` is stream sample `offset`.
    audio: Vec<f32>,
    offset: u64,
    start: Option<u64>,
}

impl Listener {
    pub fn new(sample_rate: u32) -> Result<Self, RecognizeError> {
        Ok(Self {
            resampler: StreamResampler::new(sample_rate, SAMPLE_RATE)?,
            endpointer: Endpointer::new(EndpointConfig::default()),
            audio: Vec::new(),
            offset: 0,
            start: None,
        })
    }

    pub fn in_speech(&self) -> bool {
        self.start.is_some()
    }

    pub fn push(&mut self, samples: &[f32]) -> Vec<Heard> {
        let samples = self.resampler.push(samples);
        self.audio.extend_from_slice(&samples);
        let mut heard = Vec::new();
        for endpoint in self.endpointer.push(&samples) {
            match endpoint {
                hark_dsp::Endpoint::SpeechStart { sample } => {
                    self.start = Some(sample.max(self.offset));
                    heard.push(Heard::SpeechStarted);
                }
                hark_dsp::Endpoint::SpeechEnd { sample } => {
                    if let Some(u) = self.take(sample) {
                        heard.push(Heard::Utterance(u));
                    }
                }
            }
        }
        let max = MAX_UTTERANCE_SAMPLES as u64;
        if let Some(start) = self.start
            && self.offset + self.audio.len() as u64 - start >= max
        {
            let end = start + max;
            if let Some(u) = self.take(end) {
                heard.push(Heard::Utterance(u));
            }
        }
        if self.start.is_none() {
            // While no speech is detected keep what `finish` would hand over.
            let keep = MAX_UTTERANCE_SAMPLES;
            if self.audio.len() > 2 * keep {
                let drop = self.audio.len() - keep;
                self.audio.drain(..drop);
                self.offset += drop as u64;
            }
        }
        heard
    }

    /// Ends listening (hold-to-talk released, or the stop button): the speech
    /// heard so far, or, if the detector heard none (a query too quiet for
    /// it), the last [`MAX_UTTERANCE_S`] of the stream.
    pub fn finish(mut self) -> Option<Vec<f32>> {
        let end = self.offset + self.audio.len() as u64;
        if self.start.is_none() {
            let max = MAX_UTTERANCE_SAMPLES as u64;
            self.start = Some(self.offset.max(end.saturating_sub(max)));
        }
        self.take(end)
    }

    /// The audio from the current start to stream sample `end`.
    fn take(&mut self, end: u64) -> Option<Vec<f32>> {
        let start = self.start.take()?;
        let from = (start - self.offset) as usize;
        let to = ((end.saturating_sub(self.offset)) as usize).min(self.audio.len()).max(from);
        let utterance = self.audio[from..to].to_vec();
        self.audio.drain(..to);
        self.offset += to as u64;
        (!utterance.is_empty()).then_some(utterance)
    }
}

/// Level of a block in dBFS (RMS), for the level meter; −100 for silence.
pub fn level_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return -100.0;
    }
    let ms = samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32;
    (10.0 * ms.max(1e-10).log10()).max(-100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speech_like(seconds: f32, rate: u32) -> Vec<f32> {
        // Voiced harmonics with a syllable-rate envelope.
        (0..(seconds * rate as f32) as usize)
            .map(|i| {
                let t = i as f32 / rate as f32;
                let env = 0.5 + 0.5 * (2.0 * std::f32::consts::PI * 4.0 * t).sin().abs();
                env * (1..8).map(|h| (2.0 * std::f32::consts::PI * 140.0 * h as f32 * t).sin() / h as f32).sum::<f32>()
                    * 0.2
            })
            .collect()
    }

    #[test]
    fn one_utterance_from_a_48k_stream_with_pauses_around_it() {
        let rate = 48_000;
        let mut stream = vec![0.0f32; rate as usize];
        stream.extend(speech_like(1.5, rate));
        stream.extend(vec![0.0f32; 2 * rate as usize]);
        let mut l = Listener::new(rate).unwrap();
        let mut heard = Vec::new();
        for block in stream.chunks(960) {
            heard.extend(l.push(block));
        }
        assert_eq!(heard.first(), Some(&Heard::SpeechStarted), "{:?}", heard.len());
        let utterances: Vec<&Vec<f32>> =
            heard.iter().filter_map(|h| if let Heard::Utterance(u) = h { Some(u) } else { None }).collect();
        assert_eq!(utterances.len(), 1);
        let secs = utterances[0].len() as f32 / 16_000.0;
        assert!((1.4..2.6).contains(&secs), "utterance of {secs} s for 1.5 s of speech");
        assert!(!l.in_speech());
    }

    #[test]
    fn finishing_early_returns_what_was_heard_and_silence_alone_yields_nothing_long() {
        let mut l = Listener::new(16_000).unwrap();
        l.push(&speech_like(0.8, 16_000));
        let u = l.finish().unwrap();
        assert!(u.len() >= 8_000, "{}", u.len());
        // Minutes of silence stay bounded in memory, and stopping hands over
        // at most the longest utterance.
        let mut l = Listener::new(44_100).unwrap();
        for _ in 0..600 {
            assert!(l.push(&vec![0.0; 4_410]).is_empty());
        }
        assert!(l.audio.len() <= 2 * 20 * 16_000 + 4_410);
        assert_eq!(l.finish().map(|u| u.len()), Some(20 * 16_000));
    }

    #[test]
    fn stopping_hands_over_a_query_too_quiet_for_the_detector() {
        // About -60 dBFS: under the detector's absolute floor.
        let quiet: Vec<f32> = speech_like(3.0, 16_000).iter().map(|s| s * 0.002).collect();
        let mut stream = vec![0.0f32; 16_000];
        stream.extend(&quiet);
        let mut l = Listener::new(16_000).unwrap();
        for block in stream.chunks(320) {
            assert!(l.push(block).is_empty(), "the detector heard the quiet query");
        }
        let u = l.finish().unwrap();
        assert!(u.len() >= quiet.len(), "{:.2} s handed over of 3 s", u.len() as f32 / 16_000.0);
    }

    /// The test query (espeak-ng, 16 kHz) and where its voice starts and ends, s.
    fn query() -> (Vec<f32>, f64, f64) {
        let wav = include_bytes!("../../hark-dsp/testdata/query.wav");
        let speech = hark_dsp::wav::read_from(std::io::Cursor::new(wav.as_slice()), "query.wav").unwrap().samples;
        let first = speech.iter().position(|s| s.abs() > 0.02).unwrap();
        let last = speech.iter().rposition(|s| s.abs() > 0.02).unwrap();
        (speech, first as f64 / 16_000.0, last as f64 / 16_000.0)
    }

    /// A car at `speed_kmh` with the microphone open `lead_s` before a dark
    /// voice speaks (high frequencies 10 dB down) at 5 dB SNR, 1.5 s after.
    fn in_car(speech: &[f32], speed_kmh: f32, lead_s: f32, seed: u64) -> Vec<f32> {
        use hark_data::augment::{Condition, NoiseKind};
        use rand::SeedableRng;
        let condition =
            Condition { noise: Some(NoiseKind::Car { speed_kmh }), snr_db: 5.0, shelf_db: -10.0, lead_s, trail_s: 1.5 };
        condition.apply(speech, &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed))
    }

    #[test]
    fn a_query_spoken_in_a_car_is_heard_from_its_first_sound_to_its_last() {
        let (speech, onset, offset) = query();
        let lead = 1.0;
        for (seed, speed) in [(1, 40.0), (2, 70.0), (3, 100.0), (4, 130.0), (5, 90.0), (6, 60.0)] {
            let stream = in_car(&speech, speed, lead, seed);
            let mut endpointer = Endpointer::new(EndpointConfig::default());
            let mut events: Vec<_> = stream.chunks(320).flat_map(|b| endpointer.push(b)).collect();
            events.extend(endpointer.finish());
            let [hark_dsp::Endpoint::SpeechStart { sample: start }, hark_dsp::Endpoint::SpeechEnd { sample: end }] =
                events[..]
            else {
                panic!("{speed} km/h: expected one start and one end, got {events:?}");
            };
            let (start, end) = (start as f64 / 16_000.0 - lead as f64, end as f64 / 16_000.0 - lead as f64);
            assert!(
                start <= onset && start >= onset - 0.8,
                "{speed} km/h: start at {start:.2} s, the voice starts at {onset:.2} s"
            );
            assert!(end >= offset, "{speed} km/h: end at {end:.2} s, the voice ends at {offset:.2} s");

            // The listener hands all of it to the recognizer.
            let mut listener = Listener::new(16_000).unwrap();
            let heard: Vec<Heard> = stream.chunks(320).flat_map(|b| listener.push(b)).collect();
            let [Heard::SpeechStarted, Heard::Utterance(u)] = &heard[..] else {
                panic!("{speed} km/h: expected one utterance, got {} events", heard.len());
            };
            let secs = u.len() as f64 / 16_000.0;
            assert!(secs >= offset - onset, "{speed} km/h: {secs:.2} s heard of {:.2} s of voice", offset - onset);
        }
    }

    #[test]
    fn a_car_with_nobody_speaking_starts_no_utterance() {
        for (seed, speed) in [(11, 30.0), (12, 80.0), (13, 130.0)] {
            // 20 s of the car alone (the "speech" is one silent sample).
            let stream = in_car(&[0.0], speed, 20.0, seed);
            let mut listener = Listener::new(16_000).unwrap();
            for block in stream.chunks(320) {
                assert!(listener.push(block).is_empty(), "{speed} km/h: speech heard in the car's noise");
            }
        }
    }

    #[test]
    fn levels() {
        assert_eq!(level_dbfs(&[]), -100.0);
        assert!((level_dbfs(&[0.5, -0.5]) - (-6.02)).abs() < 0.01);
    }
}
