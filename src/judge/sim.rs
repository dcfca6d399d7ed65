//! The simulator study's checks: every simulated request completes (none rejected as too
//! long for the KV cache, none left unfinished); for replica scaling, output throughput does
//! not fall as replicas are added. A simulation that cannot run fails with the simulator's
//! error.

use super::{Check, CheckSource, Status};
use crate::plan::SimStep;
use crate::sim::error::SimError;
use crate::sim::study::StudyRow;

/// How much output throughput may fall when replicas are added before the scaling check
/// fails: routing makes the replicas' loads differ slightly from one count to the next.
pub const SCALING_TOLERANCE: f64 = 0.01;

/// A study step's checks: every request served; for replica scaling, throughput that does not
/// fall with more replicas.
pub fn checks(step: SimStep, rows: &[StudyRow]) -> Vec<Check> {
    let mut checks = vec![served_check(rows)];
    if step == SimStep::ReplicaScaling {
        checks.push(scaling_check(rows));
    }
    checks
}

fn check(name: &str, rule: &str, status: Status, reason: String) -> Check {
    Check::new(status, CheckSource::Sim, name, rule, reason)
}

/// The step could not run: fails with the simulator's error.
pub fn error_check(error: &SimError) -> Check {
    check(
        "simulations",
        "every simulation of the step runs",
        Status::Fail,
        error.to_string(),
    )
}

/// Every simulated request completes: a rejected request (one that can never fit the KV
/// cache) or one left unfinished means the simulated deployment did not serve the workload.
fn served_check(rows: &[StudyRow]) -> Check {
    let requests: usize = rows.iter().map(|r| r.requests).sum();
    let completed: usize = rows.iter().map(|r| r.summary.completed).sum();
    let short: Vec<String> = rows
        .iter()
        .filter(|r| r.summary.completed < r.requests)
        .map(shortfall)
        .collect();
    let (status, reason) = match (rows.len(), short.as_slice()) {
        (0, _) => (Status::Fail, "the step ran no simulation".to_string()),
        (runs, []) => (
            Status::Pass,
            format!("{completed} of {requests} requests completed over {runs} simulations"),
        ),
        (runs, short) => {
            let shown: Vec<&str> = short.iter().take(3).map(String::as_str).collect();
            let more = short.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            };
            (
                Status::Fail,
                format!(
                    "{} of {runs} simulations did not serve every request: {}{more}",
                    short.len(),
                    shown.join("; ")
                ),
            )
        }
    };
    Check {
        actual: Some(completed as f64),
        target: Some(requests as f64),
        ..check(
            "requests served",
            "every simulated request completes (none rejected, none unfinished)",
            status,
            reason,
        )
    }
}

/// `multi-bin on 2 replica(s), 4 bin(s), 500 requests: 380 completed, 120 rejected (never
/// fit the KV cache), 0 unfinished`.
fn shortfall(row: &StudyRow) -> String {
    let s = &row.summary;
    let unfinished = row.requests.saturating_sub(s.completed + s.rejected);
    format!(
        "{} on {} replica(s), {} bin(s), {} requests: {} completed, {} rejected (never fit \
         the KV cache), {unfinished} unfinished",
        row.scheduler.as_str(),
        row.replicas,
        row.bins,
        row.requests,
        s.completed,
        s.rejected
    )
}

/// Output throughput does not fall (beyond [`SCALING_TOLERANCE`]) from one replica count to
/// the next: the same arrivals over more replicas are served at least as fast.
fn scaling_check(rows: &[StudyRow]) -> Check {
    let rule = format!(
        "output tok/s does not fall by more than {:.0} % when replicas are added",
        SCALING_TOLERANCE * 100.0
    );
    let worst = rows
        .windows(2)
        .filter(|w| w[0].summary.output_tok_s > 0.0)
        .map(|w| (w[1].summary.output_tok_s / w[0].summary.output_tok_s, w))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    let Some((ratio, pair)) = worst else {
        return check(
            "throughput with replicas",
            &rule,
            Status::NotApplicable,
            "fewer than two replica counts with throughput: nothing to compare".to_string(),
        );
    };
    let (before, after) = (&pair[0], &pair[1]);
    let (status, reason) = if ratio >= 1.0 - SCALING_TOLERANCE {
        let (first, last) = (&rows[0], &rows[rows.len() - 1]);
        (
            Status::Pass,
            format!(
                "{:.1} tok/s on {} replica(s) to {:.1} on {}; each count keeps at least {:.1} % \
                 of the one before",
                first.summary.output_tok_s,
                first.replicas,
                last.summary.output_tok_s,
                last.replicas,
                ratio * 100.0
            ),
        )
    } else {
        (
            Status::Fail,
            format!(
                "{:.1} tok/s on {} replica(s) falls to {:.1} on {} ({:.1} %)",
                before.summary.output_tok_s,
                before.replicas,
                after.summary.output_tok_s,
                after.replicas,
                ratio * 100.0
            ),
        )
    };
    Check {
        actual: Some(ratio),
        target: Some(1.0 - SCALING_TOLERANCE),
        ..check("throughput with replicas", &rule, status, reason)
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::sim::metrics::SimSummary;
    use crate::sim::scheduler::SchedulerKind;

    /// A run of `requests` requests on `replicas` replicas that completed `completed`,
    /// rejected `rejected`, at `tok_s` output tokens per second.
    fn row(
        replicas: usize,
        requests: usize,
        completed: usize,
        rejected: usize,
        tok_s: f64,
    ) -> StudyRow {
        let summary = SimSummary {
            requests,
            completed,
            rejected,
            output_tok_s: tok_s,
            ..SimSummary::default()
        };
        StudyRow {
            step: "replica-scaling",
            scheduler: SchedulerKind::MultiBin,
            replicas,
            bins: 4,
            requests,
            summary,
            wall_s: 0.0,
        }
    }

    #[rstest]
    #[case::all_served(vec![row(1, 10, 10, 0, 5.0), row(2, 10, 10, 0, 9.0)], Status::Pass, "20 of 20 requests completed")]
    #[case::rejected(vec![row(1, 10, 10, 0, 5.0), row(2, 10, 7, 3, 9.0)], Status::Fail, "1 of 2 simulations did not serve every request: multi-bin on 2 replica(s), 4 bin(s), 10 requests: 7 completed, 3 rejected")]
    #[case::unfinished(vec![row(1, 10, 8, 0, 5.0)], Status::Fail, "8 completed, 0 rejected (never fit the KV cache), 2 unfinished")]
    #[case::nothing_ran(vec![], Status::Fail, "the step ran no simulation")]
    fn every_request_must_be_served(
        #[case] rows: Vec<StudyRow>,
        #[case] status: Status,
        #[case] reason: &str,
    ) {
        let check = served_check(&rows);
        assert_eq!(check.status, status, "{}", check.reason);
        assert!(check.reason.contains(reason), "{}", check.reason);
    }

    #[test]
    fn only_the_first_shortfalls_are_listed() {
        let rows: Vec<StudyRow> = (1..=5).map(|r| row(r, 10, 9, 1, 1.0)).collect();
        let check = served_check(&rows);
        assert!(
            check.reason.starts_with("5 of 5 simulations"),
            "{}",
            check.reason
        );
        assert!(check.reason.ends_with("; and 2 more"), "{}", check.reason);
    }

    #[rstest]
    #[case::grows(&[10.0, 20.0, 20.0], Status::Pass, "10.0 tok/s on 1 replica(s) to 20.0 on 3")]
    #[case::noise(&[10.0, 20.0, 19.9], Status::Pass, "each count keeps at least 99.5 % of the one before")]
    #[case::falls(&[10.0, 20.0, 15.0], Status::Fail, "20.0 tok/s on 2 replica(s) falls to 15.0 on 3 (75.0 %)")]
    #[case::one_count(&[10.0], Status::NotApplicable, "nothing to compare")]
    fn throughput_must_not_fall_with_replicas(
        #[case] tok_s: &[f64],
        #[case] status: Status,
        #[case] reason: &str,
    ) {
        let rows: Vec<StudyRow> = tok_s
            .iter()
            .enumerate()
            .map(|(i, &t)| row(i + 1, 10, 10, 0, t))
            .collect();
        let check = scaling_check(&rows);
        assert_eq!(check.status, status, "{}", check.reason);
        assert!(check.reason.contains(reason), "{}", check.reason);
    }

    #[test]
    fn a_simulation_error_fails_with_the_simulators_message() {
        let check = error_check(&SimError::invalid("sim.kv_tokens", "too small"));
        assert_eq!(check.status, Status::Fail);
        assert_eq!(check.reason, "`sim.kv_tokens`: too small");
    }
}
