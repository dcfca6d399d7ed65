//! One test binary for the trial pipeline: discovery (and a cases folder without cases),
//! prompts, the client and its errors, a trial end to end, injected faults, `results.csv` under
//! concurrent writers and parity with lm-evaluation-harness. One binary instead of one per
//! file: each test binary links the whole crate.

#[path = "../support/mod.rs"]
mod support;

mod accuracy_parity;
mod accuracy_tasks;
mod attributed;
mod client_errors;
mod contention;
mod conversations;
mod csv_concurrency;
mod deploy;
mod discovery;
mod external_task;
mod faults;
mod hostile;
mod hostile_corpus;
mod length_dist;
mod loglik_parity;
mod loglikelihood;
mod no_cases;
mod prompts;
mod repeat;
mod runner;
mod scaffold;
mod secrets;
mod selection;
mod sessions;
mod shared_prefix;
mod slo_gates;
mod spool;
mod tool_calls;
mod workers;
