//! Turning a live microphone stream into utterances: samples at the
//! device's rate in, 16 kHz speech segments out, ended by the endpoint
//! detector (or by the caller, for hold-to-talk). Pure Rust, so the browser's
//! capture logic is tested natively.

use hark_dsp::{EndpointConfig, Endpointer, SAMPLE_RATE, StreamResampler};

use crate::RecognizeError;

/// Longest utterance kept; speech running longer is ended here.
pub const MAX_UTTERANCE_S: f64 = 20.0;
/// Audio kept from before speech starts (the detector's padding reaches
/// back into it).
const PRE_ROLL_S: f64 = 1.0;

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
        let max = (MAX_UTTERANCE_S * SAMPLE_RATE as f64) as u64;
        if let Some(start) = self.start
            && self.offset + self.audio.len() as u64 - start >= max
        {
            let end = start + max;
            if let Some(u) = self.take(end) {
                heard.push(Heard::Utterance(u));
            }
        }
        if self.start.is_none() {
            // Keep only the pre-roll while nobody speaks.
            let keep = (PRE_ROLL_S * SAMPLE_RATE as f64) as usize;
            if self.audio.len() > 2 * keep {
                let drop = self.audio.len() - keep;
                self.audio.drain(..drop);
                self.offset += drop as u64;
            }
        }
        heard
    }

    /// Ends listening (hold-to-talk released, or the stop button): the speech
    /// heard so far, or everything still buffered if no start was detected.
    pub fn finish(mut self) -> Option<Vec<f32>> {
        let end = self.offset + self.audio.len() as u64;
        if self.start.is_none() {
            self.start = Some(self.offset);
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
        // Minutes of silence stay bounded in memory.
        let mut l = Listener::new(44_100).unwrap();
        for _ in 0..600 {
            assert!(l.push(&vec![0.0; 4_410]).is_empty());
        }
        assert!(l.audio.len() <= 2 * 16_000 + 4_410);
    }

    #[test]
    fn levels() {
        assert_eq!(level_dbfs(&[]), -100.0);
        assert!((level_dbfs(&[0.5, -0.5]) - (-6.02)).abs() < 0.01);
    }
}
