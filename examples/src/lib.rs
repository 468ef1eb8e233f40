//! Example programs; see `src/bin/`.
#![forbid(unsafe_code)]
