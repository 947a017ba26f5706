//! The short run of the decoder fuzzer (the long one is `cargo xtask fuzz`,
//! libFuzzer on `fuzz/`): valid batches of both schemas, mutated the way
//! a mutation fuzzer does — bytes flipped, inserted, deleted, spans
//! duplicated, values swapped for hostile ones — through
//! `v2::fuzz_decoder`, which panics when the decoder's contract breaks.

use hark_telemetry::v2::fuzz_decoder;

/// Seeds: what the browser sends, of both schemas and both consent levels.
fn seeds() -> Vec<Vec<u8>> {
    let key = "a".repeat(64);
    let means = ["0.5"; hark_dsp::SUMMARY_BANDS].join(",");
    vec![
        br#"{"schema_version":1,"consent":"granted","install_id":"install-abcdef","events":[{"event_id":"e1","created_ms":1,"app_version":"0.1.0","model_version":"0.7.0","backend":"cpu","prediction":"hi there","confidence":0.5,"correction":"hi","audio_s":1.0,"decode_ms":20.0,"features":{"mels":2,"frames":1,"values":[0.5,-1.0]}}]}"#.to_vec(),
        format!(
            r#"{{"schema_version":2,"install_id":"install-abcdef","install_key":"{key}","consent":"recordings","consent_text_version":1,"events":[{{"event_id":"e-2","created_ms":1,"app_version":"0.8.0","model_version":"0.7.0","backend":"webgpu","latency_ms":80.5,"audio_s":1.5,"transcript":"play jazz","confidence":0.8,"words":[{{"text":"play","confidence":0.9}}],"correction":"play some jazz","summary":{{"band_mean":[{means}],"band_std":[{means}],"snr_db":12.0,"speech_s":1.0,"sample_rate":48000}},"audio":{{"sample_rate":16000,"pcm_s16le_base64":"AAABAAIA"}}}}]}}"#
        )
        .into_bytes(),
    ]
}

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const HOSTILE: &[&str] = &[
    "1e400",
    "-0",
    "NaN",
    "-1",
    "4294967296",
    "18446744073709551616",
    "0.0000001",
    "null",
    "true",
    "[]",
    "{}",
    "\"\"",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "\"é\"",
    "99999999999999999999999",
    "1e39",
    "-1e39",
    "2",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    let at = rng.below(input.len());
    match rng.below(6) {
        0 if !input.is_empty() => input[at] ^= 1 << rng.below(8),
        1 => input.insert(at, rng.next() as u8),
        2 if !input.is_empty() => {
            input.remove(at);
        }
        3 => {
            let end = (at + rng.below(32)).min(input.len());
            let span = input[at..end].to_vec();
            input.splice(at..at, span);
        }
        // A JSON value swapped for a hostile one (after a ':' or '[' or ',').
        _ => {
            let starts: Vec<usize> =
                input.iter().enumerate().filter(|(_, b)| matches!(b, b':' | b'[' | b',')).map(|(i, _)| i + 1).collect();
            if let Some(&start) = starts.get(rng.below(starts.len())) {
                let end = input[start..]
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']'))
                    .map_or(input.len(), |p| start + p);
                let value = HOSTILE[rng.below(HOSTILE.len())];
                input.splice(start..end, value.bytes());
            }
        }
    }
}

#[test]
fn the_decoder_survives_mutated_batches() {
    let seeds = seeds();
    for seed in &seeds {
        fuzz_decoder(seed);
        assert!(hark_telemetry::v2::parse(seed).is_ok(), "the seeds are valid batches");
    }
    let mut rng = Rng(0x5EED_CAFE_F00D_0001);
    for _ in 0..20_000 {
        let mut input = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut input);
        }
        fuzz_decoder(&input);
    }
}
