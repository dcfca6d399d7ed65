//! The stress harness: every case in `stress-cases/` becomes trials named
//! `[kind] case::isl…_osl…_c…_n…` (see the book, docs/src/guide/trials.md). Each passing trial's redacted summary table
//! is an insta snapshot in `snapshots/`.

use std::process::ExitCode;
use std::sync::Arc;

use llm_stress::harness::Harness;

fn main() -> ExitCode {
    Harness::new(env!("CARGO_MANIFEST_DIR"))
        .with_snapshot(Arc::new(|name: &str, table: &str| {
            let mut settings = insta::Settings::clone_current();
            settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots"));
            settings.set_prepend_module_to_snapshot(false);
            settings.set_omit_expression(true);
            settings.bind(|| insta::assert_snapshot!(name.to_string(), table));
        }))
        .main()
}
