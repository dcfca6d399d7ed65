//! The deployment files in `deploy/` (a Kubernetes Indexed Job with its merge Job, a Slurm job
//! array with its merge step) parse, hold the fields their engines require, and set the
//! variables a worker reads.

use std::path::{Path, PathBuf};

use llm_stress::load::Share;
use llm_stress::load::share::{
    K8S_COUNT_ENV, K8S_INDEX_ENV, SLURM_COUNT_ENV, SLURM_INDEX_ENV, SLURM_MIN_ENV,
};
use serde_json::Value;

fn deploy(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(relative)
}

fn yaml(relative: &str) -> Value {
    let path = deploy(relative);
    let text = std::fs::read_to_string(&path).expect("the file is there");
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn at<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(value, |v, key| match key.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[key],
        })
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
}

/// A Job's required fields: kind, apiVersion, a name, a pod template that never restarts in
/// place, and a container with an image and a command.
fn check_job(job: &Value) -> &Value {
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["kind"], "Job");
    assert!(at(job, "metadata.name").is_string());
    assert_eq!(at(job, "spec.template.spec.restartPolicy"), "Never");
    let container = at(job, "spec.template.spec.containers.0");
    assert!(container["image"].is_string());
    assert_eq!(strings(&container["command"]).first(), Some(&"llm-stress"));
    for mount in container["volumeMounts"].as_array().expect("mounts") {
        let name = &mount["name"];
        let volumes = at(job, "spec.template.spec.volumes")
            .as_array()
            .expect("volumes");
        assert!(volumes.iter().any(|v| &v["name"] == name), "volume {name}");
    }
    container
}

#[test]
fn the_kubernetes_indexed_job_runs_every_worker_at_once_and_the_merge_reads_its_run() {
    let workers = yaml("kubernetes/workers-job.yaml");
    let container = check_job(&workers);
    assert_eq!(at(&workers, "spec.completionMode"), "Indexed");
    let completions = at(&workers, "spec.completions")
        .as_u64()
        .expect("completions");
    assert_eq!(at(&workers, "spec.parallelism").as_u64(), Some(completions));
    // Kubernetes sets the index in an Indexed Job; the count is the manifest's to set.
    assert_eq!(K8S_INDEX_ENV, "JOB_COMPLETION_INDEX");
    assert_eq!(
        env_value(container, K8S_COUNT_ENV),
        Some(completions.to_string().as_str())
    );
    let run_id = env_value(container, "LLM_STRESS_RUN_ID").expect("one run id for every worker");
    let command = strings(&container["command"]);
    assert_eq!(command[1], "run");
    let out = command[command.iter().position(|a| *a == "--out").expect("--out") + 1];
    let last = Share::from_env(|k| match k {
        K8S_INDEX_ENV => Some((completions - 1).to_string()),
        K8S_COUNT_ENV => env_value(container, k).map(str::to_string),
        _ => None,
    });
    assert_eq!(
        last.expect("valid").map(|s| (s.index(), s.count())),
        Some((completions as u32 - 1, completions as u32))
    );

    let merge = yaml("kubernetes/merge-job.yaml");
    let container = check_job(&merge);
    let command = strings(&container["command"]);
    assert_eq!(command[1], "merge");
    assert_eq!(
        command[2],
        format!("{out}/{run_id}"),
        "the workers' run folder"
    );
    let claim = |job: &Value| {
        at(job, "spec.template.spec.volumes")
            .as_array()
            .expect("volumes")
            .iter()
            .find_map(|v| {
                v["persistentVolumeClaim"]["claimName"]
                    .as_str()
                    .map(str::to_string)
            })
    };
    let pvc = yaml("kubernetes/results-pvc.yaml");
    assert_eq!(pvc["kind"], "PersistentVolumeClaim");
    assert_eq!(strings(at(&pvc, "spec.accessModes")), ["ReadWriteMany"]);
    let name = at(&pvc, "metadata.name").as_str().map(str::to_string);
    assert_eq!(claim(&workers), name);
    assert_eq!(claim(&merge), name);
}

#[test]
fn the_slurm_array_runs_workers_and_queues_the_merge_after_it() {
    let read = |name: &str| std::fs::read_to_string(deploy(name)).expect("the script is there");
    let workers = read("slurm/workers.sbatch");
    assert!(workers.starts_with("#!/bin/bash\n"));
    assert!(workers.lines().any(|l| l.starts_with("#SBATCH --array=")));
    assert!(workers.contains("exec llm-stress run "));
    assert!(workers.contains("LLM_STRESS_RUN_ID"));
    let merge = read("slurm/merge.sbatch");
    assert!(merge.contains("exec llm-stress merge \"$OUT/$LLM_STRESS_RUN_ID\""));
    let submit = read("slurm/submit.sh");
    assert!(submit.contains("workers.sbatch") && submit.contains("--dependency=\"afterany:"));
    // The variables Slurm sets in an array task of --array=1-4: task 4 is worker 3 of 4.
    let share = Share::from_env(|k| match k {
        SLURM_INDEX_ENV => Some("4".into()),
        SLURM_COUNT_ENV => Some("4".into()),
        SLURM_MIN_ENV => Some("1".into()),
        _ => None,
    });
    assert_eq!(
        share.expect("valid").map(|s| (s.index(), s.count())),
        Some((3, 4))
    );
}
