//! Whether a spawned server's trials can run on this machine: the files its spec requires
//! (a binary, a model) must exist.

use std::path::Path;

use super::SpawnSpec;

/// Environment variable that turns missing real servers into failures instead of ignored
/// trials (CI sets it).
pub const REQUIRE_REAL_ENV: &str = "LLM_STRESS_REQUIRE_REAL";

impl SpawnSpec {
    /// Why this server's trials cannot run here, if they cannot: a file named by one of its
    /// `requires_files` variables is missing. `None` also when `LLM_STRESS_REQUIRE_REAL=1`
    /// (the trial then runs and fails with the same message).
    pub fn missing_requirement(&self) -> Option<String> {
        let missing = self.requirement_problem()?;
        if std::env::var(REQUIRE_REAL_ENV).is_ok_and(|v| v == "1") {
            return None;
        }
        Some(missing)
    }

    /// What of the required files is missing, whatever `LLM_STRESS_REQUIRE_REAL` says.
    pub fn requirement_problem(&self) -> Option<String> {
        let missing: Vec<String> = self
            .requires_files
            .iter()
            .filter_map(|var| match std::env::var_os(var) {
                Some(path) if Path::new(&path).exists() => None,
                Some(path) => Some(format!("{var}={} does not exist", path.to_string_lossy())),
                None => Some(format!("{var} is not set")),
            })
            .collect();
        if missing.is_empty() {
            return None;
        }
        let hint = self
            .install_hint
            .as_deref()
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        Some(format!("needs a real server: {}{hint}", missing.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named_with_the_hint() {
        let spec = SpawnSpec {
            command: "true".into(),
            vars: Default::default(),
            env: Default::default(),
            cwd: None,
            startup_timeout_s: 1.0,
            idle_timeout_s: 60.0,
            served_model: None,
            requires_files: vec!["LLM_STRESS_TEST_SURELY_UNSET_VAR".into()],
            install_hint: Some("run .ci/install-llama.sh".into()),
        };
        let problem = spec.requirement_problem().expect("missing");
        assert!(
            problem.contains("LLM_STRESS_TEST_SURELY_UNSET_VAR is not set")
                && problem.contains("install-llama"),
            "{problem}"
        );
    }
}
