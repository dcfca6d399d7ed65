//! Cases written in Rust: [`Case::builder`] mirrors the YAML schema's common keys (server,
//! API, client, matrix, load, SLOs, expect) and starts from the same defaults, so a case built
//! here runs exactly like the YAML case with the same keys.

use std::path::{Path, PathBuf};

use crate::case::load::parse_yaml;
use crate::case::{
    Api, AttachSpec, CaseError, CaseSpec, EmbeddedSpec, Expect, LoadMode, LoadedCase, MatrixMode,
    MatrixSpec, ModelSpec, PromptsSpec, Rates, ServerSpec, Slo, SloError,
};

/// The defaults of a Rust case, as the YAML it mirrors: a perf case against the embedded
/// server, one combination (ISL 128, OSL 64, concurrency 1).
const DEFAULT_CASE: &str = "name: rust-case
kinds: [perf]
matrix: { mode: custom, isl: [128], osl: [64], concurrency: [1] }
";

/// The model spec of a Rust case that names none: an 8k context, no reference targets (so
/// only the run's own checks and the SLOs judge it).
const DEFAULT_MODEL: &str = "name: builtin
max_context: 8192
max_concurrency: 64
";

/// A case built in Rust (or read from YAML), ready for [`super::Trial::with_case`].
#[derive(Debug, Clone)]
pub struct Case {
    loaded: LoadedCase,
}

/// Why a case could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CaseBuildError {
    /// An SLO expression could not be read.
    #[error("slo `{expression}`: {source}")]
    Slo {
        /// What was written.
        expression: String,
        /// Why.
        source: SloError,
    },
    /// A value is out of range.
    #[error("`{key}`: {message}")]
    Invalid {
        /// The key, as in YAML.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A YAML case file could not be read.
    #[error(transparent)]
    Case(#[from] CaseError),
}

impl Case {
    /// A builder with the defaults of a YAML case (see the module documentation).
    pub fn builder() -> CaseBuilder {
        CaseBuilder::new()
    }

    /// A case from a YAML file (and the model spec it names), as the harness reads it.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Case, CaseBuildError> {
        Ok(Case {
            loaded: crate::case::load_case(path.as_ref())?,
        })
    }

    /// The case as the rest of the crate uses it.
    pub fn loaded(&self) -> &LoadedCase {
        &self.loaded
    }

    pub(crate) fn into_loaded(self) -> LoadedCase {
        self.loaded
    }
}

impl From<LoadedCase> for Case {
    fn from(loaded: LoadedCase) -> Case {
        Case { loaded }
    }
}

/// Builds a [`Case`]; every method mirrors a YAML key.
#[derive(Debug, Clone)]
pub struct CaseBuilder {
    spec: CaseSpec,
    model: ModelSpec,
    path: PathBuf,
    slos: Vec<String>,
}

impl Default for CaseBuilder {
    fn default() -> Self {
        CaseBuilder::new()
    }
}

impl CaseBuilder {
    fn new() -> CaseBuilder {
        let path = Path::new("<rust case>");
        CaseBuilder {
            spec: parse_yaml(path, DEFAULT_CASE).expect("the default case is valid YAML"),
            model: parse_yaml(path, DEFAULT_MODEL).expect("the default model spec is valid"),
            path: path.to_path_buf(),
            slos: Vec::new(),
        }
    }

    /// `name`: the case name (an attributed trial keeps its function's name instead).
    pub fn name(mut self, name: impl Into<String>) -> CaseBuilder {
        self.spec.name = name.into();
        self
    }

    /// Where relative paths (datasets, tokenizers) are read from, as for a case file in that
    /// folder.
    pub fn folder(mut self, dir: impl AsRef<Path>) -> CaseBuilder {
        self.path = dir.as_ref().join("<rust case>");
        self
    }

    /// `server`: the server under test.
    pub fn server(mut self, server: ServerSpec) -> CaseBuilder {
        self.spec.server = Some(server);
        self
    }

    /// `server: { attach: { url } }` when the environment variable is set (such as
    /// `LLM_STRESS_URL`), the embedded server otherwise.
    pub fn server_from_env(self, var: &str) -> CaseBuilder {
        match std::env::var(var).ok().filter(|url| !url.is_empty()) {
            Some(url) => self.server(ServerSpec::Attach(AttachSpec {
                url,
                served_model: None,
            })),
            None => self.embedded(EmbeddedSpec::default()),
        }
    }

    /// `server: { embedded: … }`.
    pub fn embedded(self, embedded: EmbeddedSpec) -> CaseBuilder {
        self.server(ServerSpec::Embedded(embedded))
    }

    /// `api`: the protocol.
    pub fn api(mut self, api: Api) -> CaseBuilder {
        self.spec.api = api;
        self
    }

    /// `client.stream`.
    pub fn stream(mut self, stream: bool) -> CaseBuilder {
        self.spec.client.stream = stream;
        self
    }

    /// `client.headers`: one more header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> CaseBuilder {
        self.spec.client.headers.insert(name.into(), value.into());
        self
    }

    /// `matrix.isl` (custom mode).
    pub fn isl(mut self, isl: impl IntoIterator<Item = u32>) -> CaseBuilder {
        self.custom_matrix().isl = Some(isl.into_iter().collect());
        self
    }

    /// `matrix.osl` (custom mode).
    pub fn osl(mut self, osl: impl IntoIterator<Item = u32>) -> CaseBuilder {
        self.custom_matrix().osl = Some(osl.into_iter().collect());
        self
    }

    /// `matrix.concurrency` (custom mode).
    pub fn concurrency(mut self, concurrency: impl IntoIterator<Item = u32>) -> CaseBuilder {
        self.custom_matrix().concurrency = Some(concurrency.into_iter().collect());
        self
    }

    /// `matrix.prompts: { fixed: n }`: requests per combination.
    pub fn prompts(mut self, n: u32) -> CaseBuilder {
        self.custom_matrix().prompts = PromptsSpec::Fixed(n);
        self
    }

    /// `load: { mode: open, rate: [...] }`: open-loop arrivals at each rate.
    pub fn rate(mut self, rates: impl IntoIterator<Item = f64>) -> CaseBuilder {
        self.spec.load.mode = LoadMode::Open;
        self.spec.load.rate = Rates(rates.into_iter().collect());
        self
    }

    /// `load.timeout_s`.
    pub fn timeout_s(mut self, seconds: f64) -> CaseBuilder {
        self.spec.load.timeout_s = seconds;
        self
    }

    /// `load.seed`.
    pub fn seed(mut self, seed: u64) -> CaseBuilder {
        self.spec.load.seed = seed;
        self
    }

    /// `slo`: one more SLO, such as `ttft_ms.p95 < 500` (read when the case is built).
    pub fn slo(mut self, expression: impl Into<String>) -> CaseBuilder {
        self.slos.push(expression.into());
        self
    }

    /// `expect: fail`.
    pub fn expect_fail(mut self) -> CaseBuilder {
        self.spec.expect = Expect::Fail;
        self
    }

    /// The model spec (instead of the built-in one: 8k context, no reference targets).
    pub fn model(mut self, model: ModelSpec) -> CaseBuilder {
        self.spec.model = Some(model.name.clone());
        self.model = model;
        self
    }

    fn custom_matrix(&mut self) -> &mut MatrixSpec {
        let matrix = self.spec.matrix.get_or_insert_with(MatrixSpec::default);
        matrix.mode = MatrixMode::Custom;
        matrix
    }

    /// The case, with its SLOs read and its numbers checked.
    pub fn build(mut self) -> Result<Case, CaseBuildError> {
        for expression in std::mem::take(&mut self.slos) {
            let slo: Slo = expression
                .parse()
                .map_err(|source| CaseBuildError::Slo { expression, source })?;
            self.spec.slo.push(slo);
        }
        if let Some(matrix) = &self.spec.matrix {
            for (key, values) in [
                ("matrix.isl", &matrix.isl),
                ("matrix.osl", &matrix.osl),
                ("matrix.concurrency", &matrix.concurrency),
            ] {
                if values
                    .as_ref()
                    .is_some_and(|v| v.is_empty() || v.contains(&0))
                {
                    return Err(CaseBuildError::Invalid {
                        key,
                        message: "needs at least one value, each at least 1".into(),
                    });
                }
            }
        }
        let timeout = self.spec.load.timeout_s;
        if !(timeout.is_finite() && timeout > 0.0) {
            return Err(CaseBuildError::Invalid {
                key: "load.timeout_s",
                message: format!("{timeout} is not a positive number of seconds"),
            });
        }
        // No YAML text exists for a case built in Rust: `case.yaml` says so and records its
        // fields (Rust's debug form) as comments.
        let resolved = std::iter::once(
            "# Built in Rust with Case::builder(); not a YAML case. Its fields:".to_string(),
        )
        .chain(
            format!("{:#?}", self.spec)
                .lines()
                .map(|line| format!("# {line}")),
        )
        .collect::<Vec<_>>()
        .join("\n")
            + "\n";
        Ok(Case {
            loaded: LoadedCase {
                spec: self.spec,
                path: self.path,
                model: Some(self.model),
                model_path: None,
                resolved,
                overrides: Vec::new(),
            },
        })
    }
}
