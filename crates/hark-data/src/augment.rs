//! Augmentation: the noises and channels the product will meet, so error
//! analysis can ask "how do we do in a car at 5 dB?" and training can fix it.
//!
//! Every function is deterministic given its RNG. Noises are generated, not
//! downloaded: car noise (engine harmonics that follow a simulated rpm, road
//! rumble, wind), babble (other utterances mixed down), white and pink noise.
//! Channel effects: telephone band, synthetic room reverberation, speed
//! perturbation, gain, spectral tilt. [`mix_at_snr`] mixes speech and noise
//! at a target SNR. Training-time transforms: [`renoise`] (fresh noise under
//! clean utterances as they are loaded) and [`spec_augment`] (features).

use std::collections::BTreeMap;

use hark_dsp::SAMPLE_RATE;
use rand::Rng;
use realfft::RealFftPlanner;
use serde::{Deserialize, Serialize};

const SR: f32 = SAMPLE_RATE as f32;

/// A background noise to mix under speech.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum NoiseKind {
    /// A car at a steady speed (km/h): engine, road and wind.
    Car {
        speed_kmh: f32,
    },
    /// Other people talking.
    Babble,
    White,
    Pink,
}

impl NoiseKind {
    /// Tag value for slicing ("car", "babble", ...).
    pub fn tag(&self) -> &'static str {
        match self {
            NoiseKind::Car { .. } => "car",
            NoiseKind::Babble => "babble",
            NoiseKind::White => "white",
            NoiseKind::Pink => "pink",
        }
    }

    /// Car noise at a whole-number speed drawn from 30–130 km/h.
    pub fn random_car(rng: &mut impl Rng) -> Self {
        NoiseKind::Car { speed_kmh: rng.random_range(30.0..130.0f32).round() }
    }

    /// The manifest tags of an utterance under this noise at `snr_db`:
    /// `noise`, `snr` (its band) and, for a car, `car_speed` (to 10 km/h).
    pub fn tags(&self, snr_db: f32) -> BTreeMap<String, String> {
        let mut t = BTreeMap::from([("noise".into(), self.tag().into()), ("snr".into(), snr_band(snr_db).into())]);
        if let NoiseKind::Car { speed_kmh } = self {
            t.insert("car_speed".into(), format!("{}", (speed_kmh / 10.0).round() * 10.0));
        }
        t
    }
}

/// SNR band tag used by error analysis.
pub fn snr_band(snr_db: f32) -> &'static str {
    match snr_db {
        s if s < 5.0 => "0-5db",
        s if s < 10.0 => "5-10db",
        s if s < 20.0 => "10-20db",
        _ => "20db+",
    }
}

fn power(x: &[f32]) -> f64 {
    if x.is_empty() { 0.0 } else { x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / x.len() as f64 }
}

/// Scales `x` to unit RMS (silence stays silence).
fn unit_rms(mut x: Vec<f32>) -> Vec<f32> {
    let p = power(&x);
    if p > 0.0 {
        let g = (1.0 / p.sqrt()) as f32;
        x.iter_mut().for_each(|v| *v *= g);
    }
    x
}

/// Approximately Gaussian white noise (sum of four uniforms), unit RMS.
pub fn white(len: usize, rng: &mut impl Rng) -> Vec<f32> {
    unit_rms((0..len).map(|_| (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>()).collect())
}

/// Pink (1/f) noise by Paul Kellet's filter over white noise, unit RMS.
pub fn pink(len: usize, rng: &mut impl Rng) -> Vec<f32> {
    let w = white(len, rng);
    let mut b = [0.0f32; 7];
    unit_rms(
        w.iter()
            .map(|&x| {
                b[0] = 0.99886 * b[0] + x * 0.0555179;
                b[1] = 0.99332 * b[1] + x * 0.0750759;
                b[2] = 0.96900 * b[2] + x * 0.1538520;
                b[3] = 0.86650 * b[3] + x * 0.3104856;
                b[4] = 0.55000 * b[4] + x * 0.5329522;
                b[5] = -0.7616 * b[5] - x * 0.0168980;
                let y = b.iter().sum::<f32>() + x * 0.5362;
                b[6] = x * 0.115926;
                y
            })
            .collect(),
    )
}

/// Car interior noise at `speed_kmh`, unit RMS.
///
/// Engine: a four-stroke four-cylinder fires twice per revolution, so its
/// fundamental is `rpm / 30` Hz; rpm follows the speed (gear changes ignored)
/// with a slow random wander, and the first eight harmonics fall off as 1/k.
/// Road: brown noise (leaky-integrated white), louder with speed. Wind:
/// band-passed noise growing with the square of speed, slowly gusting.
pub fn car(len: usize, speed_kmh: f32, rng: &mut impl Rng) -> Vec<f32> {
    let speed = speed_kmh.max(0.0);
    let base_rpm = 800.0 + speed * 22.0;
    let mut rpm = base_rpm;
    let mut phase = 0.0f32;
    let road_white = white(len, rng);
    let wind_white = white(len, rng);
    let mut wind_filter = Biquad::band_pass(800.0, 0.7);
    let mut brown = 0.0f32;
    let road_gain = 0.3 + speed / 60.0;
    let wind_gain = (speed / 80.0).powi(2);
    let gust_rate = rng.random_range(0.1..0.4);
    let mut out = Vec::with_capacity(len);
    for i in 0..len {
        if i % 160 == 0 {
            rpm += rng.random_range(-15.0..15.0) + 0.02 * (base_rpm - rpm);
        }
        phase += 2.0 * std::f32::consts::PI * (rpm / 30.0) / SR;
        let engine: f32 = (1..=8).map(|k| (k as f32 * phase).sin() / k as f32).sum::<f32>() * 0.3;
        brown = 0.995 * brown + 0.05 * road_white[i];
        let gust = 1.0 + 0.4 * (2.0 * std::f32::consts::PI * gust_rate * i as f32 / SR).sin();
        let wind = wind_filter.process(wind_white[i]) * wind_gain * gust;
        out.push(engine + brown * road_gain * 3.0 + wind);
    }
    unit_rms(out)
}

/// Babble: `voices` of the given utterances, each at a random offset and
/// looped to `len`, summed; unit RMS.
pub fn babble(len: usize, utterances: &[&[f32]], voices: usize, rng: &mut impl Rng) -> Vec<f32> {
    let mut out = vec![0.0f32; len];
    let usable: Vec<&[f32]> = utterances.iter().copied().filter(|u| !u.is_empty()).collect();
    if usable.is_empty() {
        return out;
    }
    for _ in 0..voices.max(1) {
        let u = unit_rms(usable[rng.random_range(0..usable.len())].to_vec());
        let offset = rng.random_range(0..u.len());
        for (i, o) in out.iter_mut().enumerate() {
            *o += u[(i + offset) % u.len()];
        }
    }
    unit_rms(out)
}

/// `speech + noise`, the noise scaled so that the speech-to-noise power ratio
/// over the utterance is `snr_db`. If the mix would clip, both are scaled
/// down together (the SNR is unchanged). `noise` is looped if shorter.
pub fn mix_at_snr(speech: &[f32], noise: &[f32], snr_db: f32) -> Vec<f32> {
    if noise.is_empty() || speech.is_empty() {
        return speech.to_vec();
    }
    let looped: Vec<f32> = (0..speech.len()).map(|i| noise[i % noise.len()]).collect();
    let (ps, pn) = (power(speech), power(&looped));
    if pn == 0.0 {
        return speech.to_vec();
    }
    let gain = ((ps / pn) / 10f64.powf(snr_db as f64 / 10.0)).sqrt() as f32;
    let mut mix: Vec<f32> = speech.iter().zip(&looped).map(|(s, n)| s + gain * n).collect();
    let peak = mix.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if peak > 0.99 {
        let g = 0.99 / peak;
        mix.iter_mut().for_each(|v| *v *= g);
    }
    mix
}

/// Spectral tilt: a high shelf of `shelf_db` above about 1 kHz (RBJ
/// shelf, slope 1). Negative values make a voice darker, as a muffled
/// microphone or a voice with a steep spectral slope would; the output keeps
/// the input's RMS, so only the balance between low and high bands changes.
pub fn tilt(speech: &[f32], shelf_db: f32) -> Vec<f32> {
    if shelf_db == 0.0 {
        return speech.to_vec(); // exactly, not through a filter that rounds
    }
    let mut shelf = Biquad::high_shelf(1_000.0, shelf_db);
    let out: Vec<f32> = speech.iter().map(|&x| shelf.process(x)).collect();
    let g = (power(speech) / power(&out).max(1e-20)).sqrt() as f32;
    out.into_iter().map(|v| v * g).collect()
}

/// Fresh noise under clean training utterances, drawn each time the corpus
/// is loaded for training: the corpus holds a fixed noisy copy of some
/// utterances, this adds as many more noisy conditions as there are clean
/// utterances, in particular the one error analysis found failing (dark
/// voices in a car at low SNR: the noise buries their weak upper bands).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenoiseConfig {
    /// Share of the clean utterances that get noise.
    pub share: f32,
    /// SNR range in dB, drawn uniformly.
    pub snr_db: (f32, f32),
    /// Spectral tilt range ([`tilt`]) applied to the speech before mixing.
    pub shelf_db: (f32, f32),
    /// Share of the noisy ones that get car noise; the rest get pink or white.
    pub car_share: f32,
    /// Longest silence (s) put before the speech, drawn uniformly from 0: the
    /// noise then starts before the voice, as in a car where the microphone
    /// opens before one speaks (flite voices lead with 0.25 s; most training
    /// engines with under 0.07 s, and first words suffered most in noise).
    #[serde(default)]
    pub lead_s: f32,
    /// Longest silence (s) put after the speech.
    #[serde(default)]
    pub trail_s: f32,
}

impl Default for RenoiseConfig {
    fn default() -> Self {
        Self { share: 0.5, snr_db: (0.0, 15.0), shelf_db: (-15.0, 3.0), car_share: 0.7, lead_s: 0.0, trail_s: 0.0 }
    }
}

/// With probability `config.share`: `speech` under a [`Condition`] drawn
/// from the config, and the noise used. `None`: leave the utterance as it is.
pub fn renoise(speech: &[f32], config: &RenoiseConfig, rng: &mut impl Rng) -> Option<(Vec<f32>, NoiseKind)> {
    if speech.is_empty() || !rng.random_bool(config.share.clamp(0.0, 1.0) as f64) {
        return None;
    }
    let shelf_db = uniform(rng, config.shelf_db);
    let snr_db = uniform(rng, config.snr_db);
    let kind = match rng.random_range(0.0..1.0f32) {
        u if u < config.car_share => NoiseKind::random_car(rng),
        u if u < (1.0 + config.car_share) / 2.0 => NoiseKind::Pink,
        _ => NoiseKind::White,
    };
    let (lead_s, trail_s) = (uniform(rng, (0.0, config.lead_s)), uniform(rng, (0.0, config.trail_s)));
    let condition = Condition { noise: Some(kind), snr_db, shelf_db, lead_s, trail_s };
    Some((condition.apply(speech, rng), kind))
}

/// One recording condition, fully fixed: what [`renoise`] draws at random
/// for training, and what `hark data degrade` writes as a held-out test
/// condition ("dev voices, darkened by 10 dB, in a car at 5 dB").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    /// Background noise (`None`: tilt and padding only). Babble needs other
    /// utterances and is not generated here: [`Condition::apply`] treats it
    /// as pink noise.
    pub noise: Option<NoiseKind>,
    /// Speech-to-noise ratio over the padded utterance, dB.
    pub snr_db: f32,
    /// High shelf at 1 kHz ([`tilt`]), dB; 0 leaves the spectrum alone.
    pub shelf_db: f32,
    /// Silence before the speech, s (the noise runs under it).
    pub lead_s: f32,
    /// Silence after the speech, s.
    pub trail_s: f32,
}

impl Condition {
    /// `speech` tilted, padded with silence and mixed with fresh noise.
    pub fn apply(&self, speech: &[f32], rng: &mut impl Rng) -> Vec<f32> {
        let silence = |s: f32| (s.max(0.0) * SR) as usize;
        let mut padded = vec![0.0; silence(self.lead_s)];
        padded.extend(tilt(speech, self.shelf_db));
        padded.resize(padded.len() + silence(self.trail_s), 0.0);
        let noise = match self.noise {
            None => return padded,
            Some(NoiseKind::Car { speed_kmh }) => car(padded.len(), speed_kmh, rng),
            Some(NoiseKind::Pink | NoiseKind::Babble) => pink(padded.len(), rng),
            Some(NoiseKind::White) => white(padded.len(), rng),
        };
        mix_at_snr(&padded, &noise, self.snr_db)
    }
}

/// Uniform in `[lo, hi)`, or `lo` when the range is empty.
fn uniform(rng: &mut impl Rng, (lo, hi): (f32, f32)) -> f32 {
    if hi > lo { rng.random_range(lo..hi) } else { lo }
}

/// Telephone channel: 300–3400 Hz band, through an 8 kHz sample rate.
pub fn telephone(speech: &[f32]) -> Vec<f32> {
    let mut hp = [Biquad::high_pass(300.0, 0.707), Biquad::high_pass(300.0, 0.707)];
    let mut lp = [Biquad::low_pass(3400.0, 0.707), Biquad::low_pass(3400.0, 0.707)];
    let band: Vec<f32> =
        speech.iter().map(|&x| lp.iter_mut().chain(hp.iter_mut()).fold(x, |y, f| f.process(y))).collect();
    let narrow = hark_dsp::resample(&band, SAMPLE_RATE, 8_000).expect("fixed valid rates");
    hark_dsp::resample(&narrow, 8_000, SAMPLE_RATE).expect("fixed valid rates")
}

/// Synthetic room: convolution with an exponentially decaying noise impulse
/// response of reverberation time `rt60_s`, direct path first. Output has the
/// input's length and RMS.
pub fn reverb(speech: &[f32], rt60_s: f32, rng: &mut impl Rng) -> Vec<f32> {
    if speech.is_empty() {
        return Vec::new();
    }
    let taps = ((rt60_s.clamp(0.05, 2.0) * SR) as usize).max(1);
    // Amplitude falls 60 dB over rt60: exp(-6.9 t / rt60).
    let decay = -6.907 / (rt60_s.clamp(0.05, 2.0) * SR);
    let noise = white(taps, rng);
    let mut rir: Vec<f32> = noise.iter().enumerate().map(|(i, n)| n * (decay * i as f32).exp() * 0.3).collect();
    rir[0] = 1.0;
    let wet = fft_convolve(speech, &rir);
    let g = (power(speech) / power(&wet[..speech.len()]).max(1e-20)).sqrt() as f32;
    wet[..speech.len()].iter().map(|v| v * g).collect()
}

/// Speed perturbation (tempo and pitch together, as in Kaldi's recipes):
/// `factor` 1.1 makes speech 10 % faster and shorter.
pub fn speed(speech: &[f32], factor: f32) -> Vec<f32> {
    let from = (SR * factor).round() as u32;
    hark_dsp::resample(speech, from, SAMPLE_RATE).expect("speed factors give valid rates")
}

/// Gain in dB, clipped to [-1, 1].
pub fn gain(speech: &[f32], db: f32) -> Vec<f32> {
    let g = 10f32.powf(db / 20.0);
    speech.iter().map(|v| (v * g).clamp(-1.0, 1.0)).collect()
}

fn fft_convolve(a: &[f32], b: &[f32]) -> Vec<f32> {
    let n = (a.len() + b.len() - 1).next_power_of_two();
    let mut planner = RealFftPlanner::<f32>::new();
    let (fwd, inv) = (planner.plan_fft_forward(n), planner.plan_fft_inverse(n));
    let spectrum = |x: &[f32]| {
        let mut buf = x.to_vec();
        buf.resize(n, 0.0);
        let mut out = fwd.make_output_vec();
        fwd.process(&mut buf, &mut out).expect("sized by the planner");
        out
    };
    let (fa, fb) = (spectrum(a), spectrum(b));
    let mut prod: Vec<_> = fa.iter().zip(&fb).map(|(x, y)| x * y).collect();
    let mut out = inv.make_output_vec();
    inv.process(&mut prod, &mut out).expect("sized by the planner");
    let scale = 1.0 / n as f32;
    out.truncate(a.len() + b.len() - 1);
    out.iter_mut().for_each(|v| *v *= scale);
    out
}

/// SpecAugment settings (Park et al. 2019, "LD" policy scaled to short queries).
#[derive(Debug, Clone, PartialEq)]
pub struct SpecAugmentConfig {
    pub freq_masks: usize,
    /// Widest frequency mask, in mel bands.
    pub max_freq_width: usize,
    pub time_masks: usize,
    /// Widest time mask, in frames.
    pub max_time_width: usize,
    /// No time mask covers more than this share of the utterance.
    pub max_time_ratio: f32,
}

impl Default for SpecAugmentConfig {
    fn default() -> Self {
        Self { freq_masks: 2, max_freq_width: 15, time_masks: 2, max_time_width: 40, max_time_ratio: 0.2 }
    }
}

/// Masks random mel bands and frame ranges of `[frames, n_mels]` features
/// with 0 (the mean of normalised features), in place.
pub fn spec_augment(features: &mut [f32], n_mels: usize, config: &SpecAugmentConfig, rng: &mut impl Rng) {
    if n_mels == 0 {
        return;
    }
    let frames = features.len() / n_mels;
    for _ in 0..config.freq_masks {
        let width = rng.random_range(0..=config.max_freq_width.min(n_mels));
        let start = rng.random_range(0..=n_mels - width);
        for f in 0..frames {
            features[f * n_mels + start..f * n_mels + start + width].fill(0.0);
        }
    }
    let max_t = config.max_time_width.min((frames as f32 * config.max_time_ratio) as usize);
    for _ in 0..config.time_masks {
        let width = rng.random_range(0..=max_t);
        let start = rng.random_range(0..=frames - width);
        features[start * n_mels..(start + width) * n_mels].fill(0.0);
    }
}

/// A second-order IIR section (RBJ audio-EQ cookbook). Written here because
/// the three filters needed are a few lines each; a crate would add more
/// surface than it saves.
struct Biquad {
    b: [f32; 3],
    a: [f32; 2],
    z: [f32; 2],
}

impl Biquad {
    fn new(b: [f64; 3], a: [f64; 3]) -> Self {
        let n = |x: f64| (x / a[0]) as f32;
        Self { b: [n(b[0]), n(b[1]), n(b[2])], a: [n(a[1]), n(a[2])], z: [0.0; 2] }
    }

    fn coefficients(freq: f32, q: f32) -> (f64, f64) {
        let w0 = 2.0 * std::f64::consts::PI * freq as f64 / SR as f64;
        (w0.cos(), w0.sin() / (2.0 * q as f64))
    }

    fn low_pass(freq: f32, q: f32) -> Self {
        let (c, alpha) = Self::coefficients(freq, q);
        Self::new([(1.0 - c) / 2.0, 1.0 - c, (1.0 - c) / 2.0], [1.0 + alpha, -2.0 * c, 1.0 - alpha])
    }

    fn high_pass(freq: f32, q: f32) -> Self {
        let (c, alpha) = Self::coefficients(freq, q);
        Self::new([(1.0 + c) / 2.0, -(1.0 + c), (1.0 + c) / 2.0], [1.0 + alpha, -2.0 * c, 1.0 - alpha])
    }

    fn band_pass(freq: f32, q: f32) -> Self {
        let (c, alpha) = Self::coefficients(freq, q);
        Self::new([alpha, 0.0, -alpha], [1.0 + alpha, -2.0 * c, 1.0 - alpha])
    }

    /// RBJ high shelf with slope 1: unity gain at low frequencies, `gain_db`
    /// well above `freq`.
    fn high_shelf(freq: f32, gain_db: f32) -> Self {
        let a = 10f64.powf(gain_db as f64 / 40.0);
        let (c, alpha) = Self::coefficients(freq, std::f32::consts::FRAC_1_SQRT_2);
        let k = 2.0 * a.sqrt() * alpha;
        Self::new(
            [
                a * ((a + 1.0) + (a - 1.0) * c + k),
                -2.0 * a * ((a - 1.0) + (a + 1.0) * c),
                a * ((a + 1.0) + (a - 1.0) * c - k),
            ],
            [(a + 1.0) - (a - 1.0) * c + k, 2.0 * ((a - 1.0) - (a + 1.0) * c), (a + 1.0) - (a - 1.0) * c - k],
        )
    }

    /// Transposed direct form II.
    fn process(&mut self, x: f32) -> f32 {
        let y = self.b[0] * x + self.z[0];
        self.z[0] = self.b[1] * x - self.a[0] * y + self.z[1];
        self.z[1] = self.b[2] * x - self.a[1] * y;
        y
    }
}

/// Voice and tempo perturbation in the feature domain: a vocal-tract-length
/// style stretch of the mel axis and a tempo stretch of the time axis, each
/// drawn uniformly in `1 ± max`. Cheap enough to apply at every training
/// step, it turns each synthetic voice into a family of voices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureWarpConfig {
    pub max_mel_stretch: f32,
    pub max_tempo_stretch: f32,
}

impl Default for FeatureWarpConfig {
    fn default() -> Self {
        Self { max_mel_stretch: 0.12, max_tempo_stretch: 0.15 }
    }
}

/// Warps `[frames, n_mels]` features: band `m` of the result reads band
/// `m / mel` of the input, frame `t` reads frame `t × tempo` (both linearly
/// interpolated, edges clamped). Returns the new features and frame count
/// (`round(frames / tempo)`).
pub fn warp_features(features: &[f32], n_mels: usize, mel: f32, tempo: f32) -> (Vec<f32>, usize) {
    let frames = if n_mels == 0 { 0 } else { features.len() / n_mels };
    if frames == 0 {
        return (Vec::new(), 0);
    }
    let out_frames = ((frames as f32 / tempo).round() as usize).max(1);
    let lerp = |pos: f32, len: usize| {
        let p = pos.clamp(0.0, (len - 1) as f32);
        let i = (p.floor() as usize).min(len - 1);
        let j = (i + 1).min(len - 1);
        (i, j, p - i as f32)
    };
    let mut out = vec![0.0f32; out_frames * n_mels];
    for t in 0..out_frames {
        let (t0, t1, ft) = lerp(t as f32 * tempo, frames);
        for m in 0..n_mels {
            let (m0, m1, fm) = lerp(m as f32 / mel, n_mels);
            let at = |t: usize, m: usize| features[t * n_mels + m];
            let a = at(t0, m0) * (1.0 - fm) + at(t0, m1) * fm;
            let b = at(t1, m0) * (1.0 - fm) + at(t1, m1) * fm;
            out[t * n_mels + m] = a * (1.0 - ft) + b * ft;
        }
    }
    (out, out_frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(11)
    }

    fn tone(freq: f32, len: usize) -> Vec<f32> {
        (0..len).map(|i| 0.3 * (2.0 * std::f32::consts::PI * freq * i as f32 / SR).sin()).collect()
    }

    fn db(p: f64) -> f64 {
        10.0 * p.log10()
    }

    #[test]
    fn mixing_hits_the_target_snr_within_half_a_db() {
        let mut r = rng();
        let speech = tone(220.0, 32_000);
        let noises = [car(32_000, 100.0, &mut r), pink(20_000, &mut r), white(32_000, &mut r)];
        for noise in &noises {
            for snr in [0.0f32, 5.0, 10.0, 20.0] {
                let mix = mix_at_snr(&speech, noise, snr);
                // Measure: the scale the clip guard applied, then the residual noise.
                let scale = mix.iter().zip(&speech).map(|(m, s)| (*m as f64) * (*s as f64)).sum::<f64>()
                    / speech.iter().map(|s| (*s as f64).powi(2)).sum::<f64>();
                let residual: Vec<f32> = mix.iter().zip(&speech).map(|(m, s)| m - (scale as f32) * s).collect();
                let measured = db(power(&speech) * scale * scale) - db(power(&residual));
                assert!((measured - snr as f64).abs() <= 0.5, "target {snr} dB, measured {measured:.2} dB");
            }
        }
    }

    /// Power in `band` (Hz) of `x`, from its spectrum.
    fn band_power(x: &[f32], band: (f32, f32)) -> f64 {
        let mut planner = RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(x.len());
        let mut input = x.to_vec();
        let mut spectrum = fft.make_output_vec();
        fft.process(&mut input, &mut spectrum).expect("sizes from the plan");
        let hz = SR / x.len() as f32;
        spectrum
            .iter()
            .enumerate()
            .filter(|(k, _)| (band.0..band.1).contains(&(*k as f32 * hz)))
            .map(|(_, c)| c.norm_sqr() as f64)
            .sum()
    }

    #[test]
    fn tilt_darkens_the_upper_bands_and_keeps_the_level() {
        let speech = white(32_000, &mut rng());
        let dark = tilt(&speech, -12.0);
        let ratio = |x: &[f32]| db(band_power(x, (4_000.0, 7_000.0)) / band_power(x, (100.0, 400.0)));
        let change = ratio(&dark) - ratio(&speech);
        assert!((-13.0..=-10.0).contains(&change), "high/low balance moved by {change:.1} dB, expected about -12");
        assert!((db(power(&dark)) - db(power(&speech))).abs() < 0.01);
        assert_eq!(tilt(&speech, 0.0).len(), speech.len());
        assert!(tilt(&[], -6.0).is_empty());
    }

    #[test]
    fn renoise_adds_noise_at_the_drawn_snr_to_the_chosen_share() {
        let speech = tone(220.0, 16_000);
        let config = RenoiseConfig { share: 0.5, snr_db: (5.0, 5.0), shelf_db: (0.0, 0.0), ..RenoiseConfig::default() };
        let mut r = rng();
        let outcomes: Vec<_> = (0..400).map(|_| renoise(&speech, &config, &mut r)).collect();
        let noisy: Vec<_> = outcomes.iter().flatten().collect();
        assert!((150..=250).contains(&noisy.len()), "{} of 400 renoised, expected about half", noisy.len());
        let cars = noisy.iter().filter(|(_, k)| matches!(k, NoiseKind::Car { .. })).count();
        assert!(cars * 10 > noisy.len() * 6 && cars * 10 < noisy.len() * 8, "{cars} car noises of {}", noisy.len());
        for (mix, _) in noisy.iter().take(20) {
            let residual: Vec<f32> = mix.iter().zip(&speech).map(|(m, s)| m - s).collect();
            let snr = db(power(&speech) / power(&residual));
            assert!((snr - 5.0).abs() < 0.5, "SNR {snr:.2} dB");
        }
        let never = RenoiseConfig { share: 0.0, ..RenoiseConfig::default() };
        assert!(renoise(&speech, &never, &mut r).is_none());
        // Padding: longer by at most lead + trail, the noise running through the silence.
        let padded = RenoiseConfig { share: 1.0, lead_s: 0.4, trail_s: 0.3, ..config.clone() };
        let lengths: Vec<usize> = (0..50).map(|_| renoise(&speech, &padded, &mut r).unwrap().0.len()).collect();
        assert!(lengths.iter().all(|&n| n >= speech.len() && n <= speech.len() + 11_200), "{lengths:?}");
        assert!(lengths.iter().any(|&n| n > speech.len() + 5_600), "some pad over 0.35 s: {lengths:?}");
        let (mix, _) =
            renoise(&speech, &RenoiseConfig { lead_s: 0.4, trail_s: 0.0, ..padded.clone() }, &mut r).unwrap();
        let lead = mix.len() - speech.len();
        assert!(lead > 0 && power(&mix[..lead]) > 0.0, "noise before the voice");
        assert!(renoise(&[], &RenoiseConfig { share: 1.0, ..config }, &mut r).is_none());
    }

    #[test]
    fn a_condition_is_applied_exactly_as_fixed() {
        let speech = tone(220.0, 16_000);
        let mut r = rng();
        let car5 = Condition {
            noise: Some(NoiseKind::Car { speed_kmh: 80.0 }),
            snr_db: 5.0,
            shelf_db: 0.0,
            lead_s: 0.25,
            trail_s: 0.1,
        };
        let mix = car5.apply(&speech, &mut r);
        assert_eq!(mix.len(), 16_000 + 4_000 + 1_600);
        assert!(power(&mix[..4_000]) > 0.0, "noise runs under the leading silence");
        let mut padded = vec![0.0; 4_000];
        padded.extend(&speech);
        padded.resize(mix.len(), 0.0);
        let residual: Vec<f32> = mix.iter().zip(&padded).map(|(m, s)| m - s).collect();
        let snr = db(power(&padded) / power(&residual));
        assert!((snr - 5.0).abs() < 0.5, "SNR {snr:.2} dB");
        // No noise: only the tilt (which keeps the level) and the padding.
        let dark = Condition { noise: None, shelf_db: -10.0, lead_s: 0.0, trail_s: 0.0, ..car5 };
        assert_eq!(dark.apply(&speech, &mut r), tilt(&speech, -10.0));
        let untouched = Condition { shelf_db: 0.0, ..dark };
        assert_eq!(untouched.apply(&speech, &mut r), speech);
    }

    #[test]
    fn car_noise_is_low_frequency_and_gains_wind_with_speed() {
        // At 50 km/h: rpm ≈ 1900, firing frequency ≈ 63 Hz; most energy is low.
        let noise = car(64_000, 50.0, &mut rng());
        let low = {
            let mut f = Biquad::low_pass(500.0, 0.707);
            noise.iter().map(|&x| f.process(x)).collect::<Vec<_>>()
        };
        assert!(power(&low) / power(&noise) > 0.5, "car noise should be mostly below 500 Hz");
        // Faster means more wind: relatively more energy above 500 Hz.
        let high_share = |n: &[f32]| {
            let mut f = Biquad::high_pass(500.0, 0.707);
            power(&n.iter().map(|&x| f.process(x)).collect::<Vec<_>>()) / power(n)
        };
        assert!(high_share(&car(64_000, 130.0, &mut rng())) > high_share(&noise));
    }

    #[test]
    fn telephone_band_removes_lows_and_highs() {
        for (freq, keep) in [(100.0, false), (1_000.0, true), (6_000.0, false)] {
            let x = tone(freq, 16_000);
            let y = telephone(&x);
            assert_eq!(y.len(), x.len());
            let ratio = db(power(&y[2000..14000]) / power(&x[2000..14000]));
            if keep {
                assert!(ratio > -3.0, "{freq} Hz lost {ratio:.1} dB");
            } else {
                assert!(ratio < -15.0, "{freq} Hz only lost {ratio:.1} dB");
            }
        }
    }

    #[test]
    fn reverb_keeps_length_and_level_and_smears_in_time() {
        let mut click = vec![0.0f32; 16_000];
        click[1000] = 1.0;
        let wet = reverb(&click, 0.5, &mut rng());
        assert_eq!(wet.len(), click.len());
        assert!((db(power(&wet)) - db(power(&click))).abs() < 0.1);
        let tail = wet[2000..8000].iter().filter(|v| v.abs() > 1e-4).count();
        assert!(tail > 1000, "an impulse should ring on after the direct sound");
    }

    #[test]
    fn speed_and_gain_do_what_they_say() {
        let x = tone(440.0, 16_000);
        assert!((speed(&x, 1.1).len() as f32 - 16_000.0 / 1.1).abs() <= 2.0);
        assert!((speed(&x, 0.9).len() as f32 - 16_000.0 / 0.9).abs() <= 2.0);
        let loud = gain(&x, 6.0);
        assert!((db(power(&loud) / power(&x)) - 6.0).abs() < 0.01);
    }

    #[test]
    fn babble_is_made_of_the_given_voices() {
        let a = tone(200.0, 8_000);
        let b = tone(330.0, 12_000);
        let mix = babble(20_000, &[&a, &b], 4, &mut rng());
        assert_eq!(mix.len(), 20_000);
        assert!((power(&mix) - 1.0).abs() < 1e-3);
        assert!(babble(100, &[], 3, &mut rng()).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn spec_augment_masks_within_its_bounds() {
        let (frames, mels) = (200, 80);
        let mut f = vec![1.0f32; frames * mels];
        spec_augment(&mut f, mels, &SpecAugmentConfig::default(), &mut rng());
        let zeros = f.iter().filter(|&&v| v == 0.0).count();
        assert!(zeros > 0, "something is masked");
        // At most 2×15 bands and 2×40 frames.
        assert!(zeros <= 2 * 15 * frames + 2 * 40 * mels);
        let full_bands = (0..mels).filter(|&m| (0..frames).all(|t| f[t * mels + m] == 0.0)).count();
        assert!(full_bands <= 30);
    }

    #[test]
    fn feature_warp_stretches_time_and_moves_energy_along_the_mel_axis() {
        let (frames, n_mels) = (100, 80);
        // A ridge at band 40 that moves with time.
        let features: Vec<f32> = (0..frames * n_mels).map(|i| if i % n_mels == 40 { 1.0 } else { 0.0 }).collect();
        let (same, n) = warp_features(&features, n_mels, 1.0, 1.0);
        assert_eq!((n, &same), (frames, &features));
        let (slow, n) = warp_features(&features, n_mels, 1.0, 0.8);
        assert_eq!(n, 125);
        assert_eq!(slow.len(), 125 * n_mels);
        let (up, _) = warp_features(&features, n_mels, 1.1, 1.0);
        let peak = (0..n_mels).max_by(|&a, &b| up[a].total_cmp(&up[b])).unwrap();
        assert_eq!(peak, 44, "band 40 × 1.1");
        assert_eq!(warp_features(&[], n_mels, 1.1, 0.9).1, 0);
    }
}
