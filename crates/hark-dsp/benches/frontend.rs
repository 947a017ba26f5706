//! Front-end speed: `cargo bench -p hark-dsp` (or `cargo xtask bench`).
//!
//! Throughput is in samples of audio; at 16 kHz, 16 K elements/s is real time,
//! so "16 Melem/s" is 1000× real time. The target (issue 3) is ≥ 1000× real
//! time on one core for feature extraction. Each benchmark runs on one thread.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hark_dsp::{EndpointConfig, Endpointer, LogMel, LogMelConfig, resample};

fn speechlike(rate: u32, seconds: f32) -> Vec<f32> {
    let n = (rate as f32 * seconds) as usize;
    (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let f0 = 120.0 + 30.0 * (t * 3.0).sin();
            (0.3 * (2.0 * std::f32::consts::PI * f0 * t).sin()
                + 0.1 * (2.0 * std::f32::consts::PI * 7.0 * f0 * t).sin())
                * (0.5 + 0.5 * (t * 5.0).sin())
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let ten_s = speechlike(16_000, 10.0);
    let mut group = c.benchmark_group("frontend");
    group.throughput(Throughput::Elements(ten_s.len() as u64));

    let mut mel = LogMel::new(LogMelConfig::default());
    group.bench_function("logmel_10s", |b| b.iter(|| mel.compute(std::hint::black_box(&ten_s))));

    group.bench_function("endpointer_10s", |b| {
        b.iter(|| {
            let mut ep = Endpointer::new(EndpointConfig::default());
            ep.push(std::hint::black_box(&ten_s))
        })
    });

    for from in [44_100u32, 48_000] {
        let input = speechlike(from, 10.0);
        group.bench_with_input(BenchmarkId::new("resample_10s_to_16k", from), &input, |b, input| {
            b.iter(|| resample(std::hint::black_box(input), from, 16_000).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
