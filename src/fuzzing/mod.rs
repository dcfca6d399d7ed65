//! Fuzz targets, as property tests with generated inputs (proptest): the SSE parser, the
//! chunk and usage accounting of a streamed answer, the direct reader's chunked decoding, and
//! the YAML case loader. (cargo-fuzz works
//! on this toolchain with `RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none`, but it rebuilds
//! the whole dependency tree with coverage instrumentation, which does not fit a CI step of a
//! minute or two on a 2-core machine; see the book's reliability page.)
//!
//! A plain `cargo test` runs each target once over a fixed number of generated inputs from a
//! fixed seed. With `LLM_STRESS_FUZZ_SECS=N` each target runs for about N seconds, from fresh
//! random seeds, as CI's fuzz step does. Every target first replays its kept corpus,
//! `tests/hostile/corpus/<target>/`: inputs that once failed (and hand-picked hostile ones).
//! A new failure is shrunk by proptest, written there as `found-<hash>` and reported with that
//! path, so that committing the file makes it a regression case.

mod chunked;
mod sse;
mod usage;
mod yaml;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseResult, TestError, TestRng, TestRunner};

/// The environment variable giving each target's time budget in seconds.
pub(crate) const BUDGET_VAR: &str = "LLM_STRESS_FUZZ_SECS";

/// Generated inputs per target in a plain test run (no budget set).
const PLAIN_CASES: u32 = 256;

/// Generated inputs per round of a budgeted run (each round has a fresh random seed).
const ROUND_CASES: u32 = 512;

/// Each target's time budget, when [`BUDGET_VAR`] sets one.
fn budget() -> Option<Duration> {
    let text = std::env::var(BUDGET_VAR).ok()?;
    let secs: f64 = text.trim().parse().ok()?;
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// The kept corpus of `target`.
fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/hostile/corpus")
        .join(target)
}

/// Every file of `target`'s corpus, sorted by name, with its bytes.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, bytes)
        })
        .collect();
    files.sort();
    files
}

/// FNV-1a: a stable name for a found input.
fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One fuzz target: replays its corpus with `replay`, then checks `property` over inputs from
/// `strategy` (a fixed count from a fixed seed, or for the budget from fresh seeds). A failing
/// input is shrunk, kept in the corpus through `encode` (which `replay` must read back), and
/// fails the test with its path.
pub(crate) fn fuzz<S: Strategy>(
    target: &str,
    strategy: S,
    encode: impl Fn(&S::Value) -> Vec<u8>,
    replay: impl Fn(&[u8]) -> TestCaseResult,
    property: impl Fn(S::Value) -> TestCaseResult,
) {
    let kept = corpus(target);
    for (path, bytes) in &kept {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| replay(bytes)));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{target}: kept input {} fails: {e}", path.display()),
            Err(_) => panic!("{target}: kept input {} panics", path.display()),
        }
    }
    let budget = budget();
    let started = Instant::now();
    let mut cases = 0u64;
    let mut round = 0u32;
    loop {
        let config = Config {
            cases: if budget.is_some() {
                ROUND_CASES
            } else {
                PLAIN_CASES
            },
            failure_persistence: None,
            max_shrink_iters: 4096,
            ..Config::default()
        };
        let mut runner = match budget {
            Some(_) => TestRunner::new(config),
            None => {
                TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
            }
        };
        let cases_now = u64::from(runner.config().cases);
        match runner.run(&strategy, &property) {
            Ok(()) => cases += cases_now,
            Err(TestError::Abort(why)) => panic!("{target}: aborted: {why}"),
            Err(TestError::Fail(why, input)) => {
                let bytes = encode(&input);
                let path = corpus_dir(target).join(format!("found-{:016x}", fnv64(&bytes)));
                let kept = std::fs::write(&path, &bytes)
                    .map(|()| format!("kept in {}: commit it", path.display()))
                    .unwrap_or_else(|e| format!("could not keep it in {}: {e}", path.display()));
                panic!(
                    "{target}: a generated input fails: {why}\n{kept}\ninput ({} bytes): {:?}",
                    bytes.len(),
                    String::from_utf8_lossy(&bytes[..bytes.len().min(4096)])
                );
            }
        }
        round += 1;
        match budget {
            Some(budget) if started.elapsed() < budget => {}
            _ => break,
        }
    }
    eprintln!(
        "{target}: {} kept inputs and {cases} generated ones ({round} rounds) in {:.1} s: no failure",
        kept.len(),
        started.elapsed().as_secs_f64()
    );
}
