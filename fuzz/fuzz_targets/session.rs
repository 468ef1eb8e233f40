//! `cargo fuzz run session`: a whole Session fed arbitrary bytes, splits, time steps and
//! decisions. The body is `smtp_proto::fuzzing::session`, which a stable test in
//! `smtp-proto/tests/properties.rs` also runs on random input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smtp_proto::fuzzing::session(data));
