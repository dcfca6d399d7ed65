//! The reduced scaling study: its tables and findings as snapshots (virtual time makes them
//! exact), its files, and the one-step API.

use llm_sim::study::{self, COLUMNS, StudyConfig, StudyRow, StudyStep};

fn without_wall_time(rows: &[StudyRow]) -> Vec<StudyRow> {
    rows.iter()
        .map(|r| StudyRow {
            wall_s: 0.0,
            ..r.clone()
        })
        .collect()
}

#[test]
fn reduced_study_tables_files_and_findings() {
    let config = StudyConfig::small();
    let out = std::env::temp_dir().join(format!("llm-stress-sim-study-{}", std::process::id()));
    let mut heard = Vec::new();
    let outcome = study::run_study(&config, &out, |step, _| heard.push(step)).unwrap();
    let knee = outcome.analysis.knee_replicas.unwrap();
    assert_eq!(
        heard,
        [
            StudyStep::RequestScaling,
            StudyStep::ReplicaScaling,
            StudyStep::Bins { replicas: knee }
        ]
    );

    // One CSV per step and one with everything, each with the header and its rows.
    let expected_rows = [
        ("request-scaling", 3 * 5),
        ("replica-scaling", 5),
        ("bins", 4),
        ("all", 24),
    ];
    for (name, rows) in expected_rows {
        let text = std::fs::read_to_string(out.join(format!("{name}.csv"))).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), COLUMNS.join(","));
        assert_eq!(lines.count(), rows, "{name}.csv");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("analysis.json")).unwrap()).unwrap();
    assert_eq!(json["analysis"]["knee_replicas"], knee);
    assert_eq!(json["timings"].as_array().unwrap().len(), 3);
    std::fs::remove_dir_all(&out).unwrap();

    // Every request of every run finished, and more replicas never lowered throughput.
    assert!(
        outcome
            .rows
            .iter()
            .all(|r| r.summary.completed == r.requests)
    );
    let scaling: Vec<&StudyRow> = outcome
        .rows
        .iter()
        .filter(|r| r.step == "replica-scaling")
        .collect();
    assert!(
        scaling
            .windows(2)
            .all(|w| w[1].summary.output_tok_s >= 0.99 * w[0].summary.output_tok_s)
    );

    insta::assert_snapshot!("reduced_study_table", study::render(&outcome.rows));
    let a = &outcome.analysis;
    let summary = format!(
        "knee_replicas: {:?}\nsla_replicas: {:?}\nbins_replicas: {:?}\nbest_bins: {:?}\n\n{}\n",
        a.knee_replicas,
        a.sla_replicas,
        a.bins_replicas,
        a.best_bins,
        a.findings.join("\n")
    );
    insta::assert_snapshot!("reduced_study_findings", summary);

    // A single step through the library API gives the same rows.
    let step = study::run_step(&config, StudyStep::ReplicaScaling).unwrap();
    let scaling: Vec<StudyRow> = scaling.into_iter().cloned().collect();
    assert_eq!(without_wall_time(&step), without_wall_time(&scaling));
}
