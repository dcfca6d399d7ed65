//! The load phase of a trial: servers up, clients and prompts ready, load driven, outcome
//! summarised and checked.

use std::sync::Arc;
use std::time::Duration;

use super::prompting::{model_tokenizer, prompts_for};
use super::{RunContext, TrialPlan};
use crate::case::{AttachSpec, Destination, LoadMode, ServerSpec};
use crate::client::{Client, ClientConfig, CountTokens};
use crate::load::{self, Endpoint, LoadOutcome, RequestSource};
use crate::metrics::{RequestRecord, Summary};
use crate::report::EndpointSummary;
use crate::server::RunningServer;
use crate::verdict::{self, Check, Status};

/// What the load phase of a trial produced.
pub(super) struct Measured {
    /// All requests, summarised.
    pub summary: Summary,
    /// Per endpoint, when there are several.
    pub endpoints: Vec<EndpointSummary>,
    /// One record per measured request.
    pub records: Vec<RequestRecord>,
    /// Run, target and SLO checks (or the server's failure).
    pub checks: Vec<Check>,
    /// `embedded` or `attach`.
    pub server_label: &'static str,
}

impl Measured {
    fn failed(server_label: &'static str, reason: String) -> Measured {
        Measured {
            summary: Summary::default(),
            endpoints: Vec::new(),
            records: Vec::new(),
            checks: vec![server_check(reason)],
            server_label,
        }
    }
}

pub(super) async fn measure(plan: &TrialPlan, ctx: &RunContext) -> Measured {
    let spec = &plan.case.spec;
    let destinations = match &ctx.url_override {
        // One attached server replaces every endpoint of the case.
        Some(url) => vec![Destination {
            name: "default".into(),
            weight: 1.0,
            server: ServerSpec::Attach(AttachSpec {
                url: url.clone(),
                served_model: None,
            }),
            served_model: None,
        }],
        None => spec.destinations(),
    };
    let label = destinations
        .first()
        .map_or("embedded", |d| d.server.label());
    let mut servers = Vec::new();
    for destination in &destinations {
        match RunningServer::bring_up(&destination.server, &plan.case.model, None).await {
            Ok(server) => servers.push(server),
            Err(e) => {
                shutdown_all(servers).await;
                return Measured::failed(label, format!("endpoint `{}`: {e}", destination.name));
            }
        }
    }
    let result = drive(plan, &destinations, &servers).await;
    shutdown_all(servers).await;
    match result {
        Err(reason) => Measured::failed(label, reason),
        Ok((outcome, endpoint_names)) => judge(plan, outcome, &endpoint_names, label),
    }
}

async fn shutdown_all(servers: Vec<RunningServer>) {
    for server in servers {
        server.shutdown().await;
    }
}

/// Builds the clients and prompts, and runs the load.
async fn drive(
    plan: &TrialPlan,
    destinations: &[Destination],
    servers: &[RunningServer],
) -> Result<(LoadOutcome, Vec<String>), String> {
    let spec = &plan.case.spec;
    let api_key = match &spec.client.api_key_env {
        None => None,
        Some(var) => Some(std::env::var(var).map_err(|_| {
            format!("environment variable `{var}` (client.api_key_env) is not set")
        })?),
    };
    // A local tokenizer also counts each answer, to check the server's counts (or stand in
    // for them when it gives none).
    let output_counter: Option<Arc<dyn CountTokens>> = if spec.prompts.use_server_tokenizer {
        None
    } else {
        model_tokenizer(plan)?.map(|t| Arc::new(t) as Arc<dyn CountTokens>)
    };
    let mut endpoints = Vec::with_capacity(servers.len());
    for (destination, server) in destinations.iter().zip(servers) {
        let config = ClientConfig {
            base_url: server.base_url.clone(),
            api: spec.api,
            model: destination
                .served_model
                .clone()
                .unwrap_or_else(|| server.served_model.clone()),
            timeout: Duration::from_secs_f64(spec.load.timeout_s),
            stream: spec.client.stream,
            headers: spec.client.headers.clone().into_iter().collect(),
            api_key: api_key.clone(),
            tokenizer: output_counter.clone(),
        };
        let client = Client::new(config).map_err(|e| e.to_string())?;
        endpoints.push(Endpoint {
            name: destination.name.clone(),
            weight: destination.weight,
            client,
        });
    }
    let names = endpoints.iter().map(|e| e.name.clone()).collect();
    let first = servers.first().ok_or("no server to send to")?;
    let (measured, warmup) = prompts_for(plan, &endpoints, first).await?;
    let source = RequestSource::new(endpoints, measured, warmup, spec.load.seed)
        .map_err(|e| e.to_string())?;
    let outcome = load::run(&spec.load, &plan.shape, &Arc::new(source)).await;
    Ok((outcome, names))
}

/// Summarises the outcome (overall and per endpoint) and checks it.
fn judge(
    plan: &TrialPlan,
    outcome: LoadOutcome,
    endpoint_names: &[String],
    server_label: &'static str,
) -> Measured {
    let spec = &plan.case.spec;
    let rate = plan.shape.rate();
    let summary = Summary::from_records(&outcome.records, outcome.duration_s)
        .with_arrivals(rate, outcome.dropped);
    let endpoints = if endpoint_names.len() > 1 {
        endpoint_names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mine: Vec<RequestRecord> = outcome
                    .records
                    .iter()
                    .filter(|r| r.endpoint as usize == i)
                    .cloned()
                    .collect();
                EndpointSummary {
                    name: name.clone(),
                    summary: Summary::from_records(&mine, outcome.duration_s),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut checks = vec![verdict::run_check(&summary)];
    // Reference targets are measured at a concurrency: an open-loop trial has none to match.
    let targets = if plan.shape.mode() == LoadMode::Open {
        None
    } else {
        plan.combination.targets.as_ref()
    };
    checks.extend(verdict::target_checks(targets, &spec.targets, &summary));
    checks.extend(spec.slo.iter().map(|slo| slo.check(&summary)));
    Measured {
        summary,
        endpoints,
        records: outcome.records,
        checks,
        server_label,
    }
}

fn server_check(reason: String) -> Check {
    Check {
        name: "server".to_string(),
        source: "run".to_string(),
        actual: None,
        target: None,
        ratio: None,
        rule: "the server is usable".to_string(),
        status: Status::Fail,
        reason,
    }
}
