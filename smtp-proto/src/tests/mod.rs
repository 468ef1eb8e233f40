//! Session-level tests (as quinn-proto keeps them in `src/tests/`): they run with
//! `cargo test` on this crate alone, driven by [`crate::testing::Pair`] on a virtual clock.

mod properties;
mod rfc_cases;
mod session;
