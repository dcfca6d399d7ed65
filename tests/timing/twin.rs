//! The calibrated twin against a server whose cost model is known: the embedded server runs
//! the simulator in real time with a given fitted profile, a few load points run against it,
//! and `sim calibrate` recovers the profile from the per-request records alone.

use std::path::PathBuf;

use llm_stress::cli::sim::{CalibrateArgs, PredictArgs, SimCommand, ValidateArgs, execute};
use llm_stress::compare::Gate;
use llm_stress::compare::runs::{DEFAULT_SEED, compare_runs};
use llm_stress::session::RunContext;
use llm_stress::sim::config::{CostSpec, SimConfig};
use llm_stress::sim::cost::FittedCost;
use llm_stress::twin::calibrate::ModelForm;
use llm_stress::twin::validate::{DEFAULT_MAX_ERROR, validate_run};
use llm_stress::twin::{CalibrateOptions, calibrate_run};

use crate::support::CaseDir;

/// The server's true step-time model: 4 ms a step, 8 µs per token of the longest sequence,
/// the slope doubling towards a full batch; at most 4 sequences a step.
const TRUTH: FittedCost = FittedCost {
    alpha: 0.004,
    beta: 8e-6,
    gamma: 1.0,
    prefill_per_token: 0.0,
};

/// Runs ISL 64 and 512 at concurrency 1, 2, 4 and 8 (8 requests of 16 output tokens each,
/// about 4 s in all) against the simulated server; returns the case folder and the run folder.
fn measured_run() -> (CaseDir, PathBuf) {
    let dir = CaseDir::named("twin");
    dir.model("m", "name: m\nmax_context: 2048\nmax_concurrency: 8\n")
        .case(
            "twin",
            &format!(
                "name: twin\nmodel: m\nkinds: [perf]\nload: {{ warmup: 0 }}\n\
                 server:\n  embedded:\n    sim:\n      cost: {{ fitted: {{ alpha: {}, beta: {}, gamma: {} }} }}\n\
                 \x20     scheduler: {{ kind: continuous, batch_size: 4 }}\n\
                 matrix:\n  mode: custom\n  isl: [64, 512]\n  osl: [16]\n  concurrency: [1, 2, 4, 8]\n  prompts: {{ fixed: 8 }}\n",
                TRUTH.alpha, TRUTH.beta, TRUTH.gamma
            ),
        );
    let context = RunContext {
        run_id: "measured".into(),
        out_dir: dir.out(),
        url_override: None,
    };
    let session = crate::support::session(context);
    for plan in dir.plans() {
        let outcome = session.run_trial(&plan).expect("trial ran");
        assert_eq!(
            outcome.report.summary().expect("a load trial").requests_ok,
            8,
            "{:?}",
            outcome.report
        );
    }
    let run = dir.out().join("measured");
    (dir, run)
}

fn relative_error(got: f64, truth: f64) -> f64 {
    (got / truth - 1.0).abs()
}

#[test]
fn calibrate_recovers_the_simulated_servers_profile_from_its_records() {
    let (dir, run_dir) = measured_run();
    let run = llm_stress::compare::runs::read_run(&run_dir, None).expect("run");
    let calibration = calibrate_run(&run, &CalibrateOptions::default()).expect("calibrated");
    let table = calibration.render();
    eprintln!("{table}");
    assert_eq!(calibration.form, ModelForm::BatchScaled, "{table}");
    // Measured on a shared 2-core machine: see docs/src/guide/twin.md for the figures.
    let errors = [
        relative_error(calibration.alpha.value, TRUTH.alpha),
        relative_error(calibration.beta.value, TRUTH.beta),
        relative_error(calibration.gamma.value, TRUTH.gamma),
    ];
    eprintln!("relative errors alpha, beta, gamma: {errors:?}");
    assert!(errors.iter().all(|e| *e < 0.02), "{errors:?}\n{table}");
    assert!(calibration.r_squared > 0.95, "{table}");
    assert_eq!(calibration.slots, 4, "{table}");
    // The simulated server starts a step at the first arrival (its engine has no wake delay,
    // and every arrival gets its own instant): the opening requests were never gathered.
    assert_eq!(calibration.admission_window_s, 0.0, "{table}");

    // The command writes the same fit as a profile the simulator loads.
    let profile = dir.path().join("profile.yaml");
    let mut printed = Vec::new();
    execute(
        SimCommand::Calibrate(CalibrateArgs {
            run: run_dir,
            trials: Some("c2,c4,c8".into()),
            slots: None,
            out: Some(profile.clone()),
        }),
        &mut printed,
    )
    .expect("sim calibrate");
    let printed = String::from_utf8(printed).expect("utf-8");
    assert!(
        printed.contains("slots: 4") && !printed.contains("_c1_"),
        "{printed}"
    );
    let chart = std::fs::read_to_string(dir.path().join("profile.fit.svg")).expect("fit chart");
    assert!(chart.contains("<circle"), "no dots in the fit chart");
    let loaded = SimConfig::load(&profile).expect("the profile loads");
    let CostSpec::Fitted(cost) = loaded.cost else {
        panic!("not a fitted cost: {loaded:?}");
    };
    assert!(relative_error(cost.beta, TRUTH.beta) < 0.05, "{cost:?}");
    assert_eq!(loaded.scheduler.batch_size, 4);
}

#[test]
fn a_prediction_is_a_run_compare_reads_and_validate_checks_the_held_out_points() {
    let (dir, run_dir) = measured_run();
    let measured = llm_stress::compare::runs::read_run(&run_dir, None).expect("run");

    // Validate: calibrate on c = 1, 2, 4, predict c = 8 (queueing behind 4 slots). No fit
    // trial offers more than 4 requests, so the slot count is not in the data: it is given, as
    // for llama-server's `--parallel 4`.
    let validation =
        validate_run(&measured, "c1,c2,c4", "c8", Some(4), DEFAULT_MAX_ERROR).expect("validated");
    let table = validation.render();
    eprintln!("{table}");
    assert_eq!(validation.held_out.len(), 2, "{table}");
    assert!(
        validation.held_out.iter().all(|t| t.errors.len() == 5),
        "{table}"
    );
    assert!(validation.failures().is_empty(), "{table}");
    // A bound nothing can meet fails, and says which trial and metric.
    let strict = validate_run(&measured, "c1,c2,c4", "c8", Some(4), 0.0).expect("validated");
    assert!(
        strict.failures().iter().any(|f| f.contains("_c8_")),
        "{:?}",
        strict.failures()
    );

    // The command exits with an error naming the failure.
    let mut printed = Vec::new();
    let failed = execute(
        SimCommand::Validate(ValidateArgs {
            run: run_dir.clone(),
            fit: "c1,c2,c4".into(),
            holdout: "c8".into(),
            slots: Some(4),
            max_error: 0.0,
        }),
        &mut printed,
    );
    let message = format!("{:#}", failed.expect_err("a 0 % bound fails"));
    assert!(message.contains("_c8_"), "{message}");
    assert!(String::from_utf8_lossy(&printed).contains("held-out trials"));
    // …and has drawn the prediction (every closed-loop trial) dashed over the run's report.
    assert_eq!(validation.predicted.len(), 8, "{table}");
    let page = std::fs::read_to_string(run_dir.join(llm_stress::report::html::REPORT_HTML))
        .expect("sim validate wrote report.html");
    assert!(page.contains("predicted: perf closed ISL 64 OSL 16 p50</li>"));

    // Predict the whole case with the profile calibrated on everything, as `sim predict` does.
    let calibration = calibrate_run(&measured, &CalibrateOptions::default()).expect("calibrated");
    let profile = dir.path().join("profile.yaml");
    calibration.write_profile(&profile).expect("profile");
    let mut printed = Vec::new();
    execute(
        SimCommand::Predict(PredictArgs {
            profile,
            case: dir.cases().join("twin.yaml"),
            out: Some(dir.out()),
            run_id: "predicted".into(),
            overhead_ms: calibration.overhead_s * 1e3,
            send_gap_ms: calibration.send_gap_s * 1e3,
            admission_window_ms: calibration.admission_window_s * 1e3,
        }),
        &mut printed,
    )
    .expect("sim predict");
    let printed = String::from_utf8(printed).expect("utf-8");
    assert!(printed.contains("wrote 8 predicted trials"), "{printed}");

    // compare PREDICTED MEASURED: every trial matched by name and compared.
    let predicted =
        llm_stress::compare::runs::read_run(&dir.out().join("predicted"), None).expect("predicted");
    let comparison = compare_runs(&predicted, &measured, &Gate::default(), DEFAULT_SEED)
        .expect("compare accepts the prediction");
    assert_eq!(comparison.trials.len(), 8, "{comparison:?}");
    assert!(
        comparison.only_in_base.is_empty() && comparison.only_in_new.is_empty(),
        "{comparison:?}"
    );
}
