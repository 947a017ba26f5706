//! Any request body through the collector's decoder: `v2::decode` must
//! answer every input with a batch or an error naming the fault, never a
//! panic, and what it accepts must survive a round trip.
#![no_main]

libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    hark_telemetry::v2::fuzz_decoder(body);
});
