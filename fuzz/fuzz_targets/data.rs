//! `cargo fuzz run data`: the body is `smtp_proto::fuzzing::data`, which a stable test in
//! `smtp-proto/tests/properties.rs` also runs on random input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smtp_proto::fuzzing::data(data));
