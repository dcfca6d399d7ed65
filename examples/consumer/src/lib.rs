//! The code under test would live here; this example only has trials (`tests/stress.rs`).
