//! The stress harness: every case in `stress-cases/` becomes trials named
//! `[kind] case::isl…_osl…_c…_n…` (see the book, docs/src/guide/trials.md). Each passing
//! trial's redacted summary table is an insta snapshot in `snapshots/`. `main!()` also runs
//! any attributed trial function of this file (there are none here: see `examples/consumer/`).

llm_stress::main!();
