//! Reading and writing WAV files (via `hound`), downmixed to mono `f32`.

use std::io::{Read, Seek, Write};
use std::path::Path;

/// Mono audio at some sample rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    pub sample_rate: u32,
    pub samples: Vec<f32>,
}

impl Audio {
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate as f64
    }
}

/// A WAV that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("{path}: not a readable WAV file ({cause})")]
    Decode { path: String, cause: hound::Error },
    #[error("{path}: WAV holds no samples")]
    Empty { path: String },
    #[error(
        "{path}: unsupported WAV sample format ({bits}-bit {format}); convert it to 16-bit PCM, e.g. `sox IN -b 16 OUT.wav`"
    )]
    Unsupported { path: String, bits: u16, format: &'static str },
}

/// Reads a WAV file of any common PCM/float format, downmixed to mono.
pub fn read(path: &Path) -> Result<Audio, WavError> {
    let name = path.display().to_string();
    let reader =
        hound::WavReader::open(path).map_err(|source| WavError::Decode { path: name.clone(), cause: source })?;
    decode(reader, &name)
}

/// Like [`read`], from any seekable byte source; `name` is used in errors.
pub fn read_from<R: Read>(source: R, name: &str) -> Result<Audio, WavError> {
    let reader =
        hound::WavReader::new(source).map_err(|source| WavError::Decode { path: name.into(), cause: source })?;
    decode(reader, name)
}

fn decode<R: Read>(mut reader: hound::WavReader<R>, name: &str) -> Result<Audio, WavError> {
    let spec = reader.spec();
    let decode_err = |source| WavError::Decode { path: name.into(), cause: source };
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => reader.samples::<f32>().collect::<Result<_, _>>().map_err(decode_err)?,
        (hound::SampleFormat::Int, bits @ 8..=32) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(decode_err)?
        }
        (format, bits) => {
            let format = if format == hound::SampleFormat::Float { "float" } else { "integer" };
            return Err(WavError::Unsupported { path: name.into(), bits, format });
        }
    };
    let channels = spec.channels.max(1) as usize;
    let samples: Vec<f32> =
        interleaved.chunks_exact(channels).map(|frame| frame.iter().sum::<f32>() / channels as f32).collect();
    if samples.is_empty() {
        return Err(WavError::Empty { path: name.into() });
    }
    Ok(Audio { sample_rate: spec.sample_rate, samples })
}

/// Reads a WAV file of any common format in chunks of about `chunk` mono
/// samples, handing each to `sink`, so memory stays bounded for files of any
/// length. Returns the sample rate and the number of mono samples read.
pub fn stream(path: &Path, chunk: usize, mut sink: impl FnMut(u32, &[f32])) -> Result<(u32, usize), WavError> {
    let name = path.display().to_string();
    let mut reader =
        hound::WavReader::open(path).map_err(|source| WavError::Decode { path: name.clone(), cause: source })?;
    let spec = reader.spec();
    let decode_err = |source| WavError::Decode { path: name.clone(), cause: source };
    let scale = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => None,
        (hound::SampleFormat::Int, bits @ 8..=32) => Some(1.0 / (1u64 << (bits - 1)) as f32),
        (format, bits) => {
            let format = if format == hound::SampleFormat::Float { "float" } else { "integer" };
            return Err(WavError::Unsupported { path: name, bits, format });
        }
    };
    let channels = spec.channels.max(1) as usize;
    let (mut frame, mut out, mut total) = (Vec::with_capacity(channels), Vec::with_capacity(chunk.max(1)), 0usize);
    let mut push = |v: f32, frame: &mut Vec<f32>, out: &mut Vec<f32>| {
        frame.push(v);
        if frame.len() == channels {
            out.push(frame.iter().sum::<f32>() / channels as f32);
            frame.clear();
            if out.len() >= chunk.max(1) {
                sink(spec.sample_rate, out);
                total += out.len();
                out.clear();
            }
        }
    };
    match scale {
        None => {
            for s in reader.samples::<f32>() {
                push(s.map_err(decode_err)?, &mut frame, &mut out);
            }
        }
        Some(scale) => {
            for s in reader.samples::<i32>() {
                push(s.map_err(decode_err)? as f32 * scale, &mut frame, &mut out);
            }
        }
    }
    if !out.is_empty() {
        sink(spec.sample_rate, &out);
        total += out.len();
    }
    if total == 0 {
        return Err(WavError::Empty { path: name });
    }
    Ok((spec.sample_rate, total))
}

/// Writes mono 16-bit PCM, the format the synthesizers and the fake
/// microphone use. The file appears whole or not at all: it is written to a
/// temporary name beside `path` and renamed.
pub fn write_pcm16(path: &Path, audio: &Audio) -> std::io::Result<()> {
    let tmp = path.with_extension("wav.partial");
    {
        let file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        write_pcm16_to(file, audio).map_err(std::io::Error::other)?;
    }
    std::fs::rename(&tmp, path)
}

/// Writes mono 16-bit PCM WAV to any seekable sink.
pub fn write_pcm16_to<W: Write + Seek>(sink: W, audio: &Audio) -> Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: audio.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::new(sink, spec)?;
    for &s in &audio.samples {
        writer.write_sample((s.clamp(-1.0, 1.0) * i16::MAX as f32).round() as i16)?;
    }
    writer.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn pcm16_round_trips_within_quantisation() {
        let audio = Audio { sample_rate: 22_050, samples: (0..1000).map(|i| (i as f32 / 50.0).sin() * 0.8).collect() };
        let mut bytes = Cursor::new(Vec::new());
        write_pcm16_to(&mut bytes, &audio).unwrap();
        let back = read_from(Cursor::new(bytes.into_inner()), "mem").unwrap();
        assert_eq!(back.sample_rate, 22_050);
        assert!(audio.samples.iter().zip(&back.samples).all(|(a, b)| (a - b).abs() < 1.0 / 16_000.0));
    }

    #[test]
    fn stereo_is_downmixed() {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut bytes = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut bytes, spec).unwrap();
        for _ in 0..10 {
            w.write_sample(16_384i16).unwrap();
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
        let a = read_from(Cursor::new(bytes.into_inner()), "mem").unwrap();
        assert_eq!(a.samples.len(), 10);
        assert!(a.samples.iter().all(|&s| (s - 0.25).abs() < 1e-6));
    }

    #[test]
    fn garbage_and_empty_files_are_named_errors() {
        let err = read_from(Cursor::new(b"not a wav at all".to_vec()), "bad.wav").unwrap_err();
        assert!(err.to_string().starts_with("bad.wav"), "{err}");
        let mut bytes = Cursor::new(Vec::new());
        write_pcm16_to(&mut bytes, &Audio { sample_rate: 16_000, samples: vec![] }).unwrap();
        let err = read_from(Cursor::new(bytes.into_inner()), "empty.wav").unwrap_err();
        assert!(matches!(err, WavError::Empty { .. }), "{err}");
    }

    #[test]
    fn streaming_matches_whole_file_reading_for_stereo_44k() {
        let dir = std::env::temp_dir().join(format!("hark-wav-stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stereo.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..10_007i32 {
            w.write_sample((i % 3000) as i16).unwrap();
            w.write_sample(-((i % 700) as i16)).unwrap();
        }
        w.finalize().unwrap();
        let whole = read(&path).unwrap();
        let mut streamed = Vec::new();
        let mut chunks = 0;
        let (rate, n) = stream(&path, 1000, |r, c| {
            assert_eq!(r, 44_100);
            assert!(c.len() <= 1000);
            chunks += 1;
            streamed.extend_from_slice(c);
        })
        .unwrap();
        assert_eq!((rate, n, chunks), (44_100, 10_007, 11));
        assert_eq!(streamed, whole.samples);
        std::fs::write(dir.join("text.wav"), "hello").unwrap();
        let err = stream(&dir.join("text.wav"), 1000, |_, _| ()).unwrap_err();
        assert!(err.to_string().contains("not a readable WAV"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
