//! End-to-end tests across the workspace's crates live in `tests/`. Today they drive the wire
//! layer of `smtp-proto` through whole client transcripts; tests with real clients over
//! loopback arrive with the `smtp-server` driver.
#![forbid(unsafe_code)]
