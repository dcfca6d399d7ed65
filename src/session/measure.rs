//! The measuring part of a trial: servers up, clients and prompts ready, then the load, the
//! accuracy phase, or both at once (stress), each summarised and checked.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::accuracy::ask_all;
use super::merge::Replay;
use super::prompting::{model_tokenizer, prompts_for};
use super::shard::ShardFile;
use super::{Session, TrialError};
use crate::accuracy::Task;
use crate::accuracy::summary::{AccuracySummary, ScoredSample};
use crate::case::{AttachSpec, Destination, LoadMode, ServerKind, ServerSpec, Slo};
use crate::client::secrets::Secrets;
use crate::client::{Client, ClientConfig, CountTokens};
use crate::judge::{self, Baseline, Check};
use crate::load::spool::{Spool, Spooled};
use crate::load::{self, Endpoint, LoadOutcome, RequestSource};
use crate::metrics::{RequestRecord, Summary};
use crate::plan::{LoadKind, LoadTrial, MatrixPoint, Shape, TrialPlan};
use crate::report::EndpointSummary;
use crate::report::attempts::{Attempt, AttemptCause};
use crate::report::rerun::ServerIdentity;
use crate::report::trial_dir::safe_name;
use crate::server::embedded::answers::AnswerKey;
use crate::server::{RunningServer, Surroundings};
use crate::server_metrics::{Scraper, ServerMetrics};

/// What a trial measured.
#[derive(Default)]
pub(super) struct Measured {
    /// All load requests, summarised.
    pub summary: Summary,
    /// Per endpoint, when there are several.
    pub endpoints: Vec<EndpointSummary>,
    /// One record per measured load request (none when they streamed to `spooled`).
    pub records: Vec<RequestRecord>,
    /// The accuracy phase's scores, when one ran.
    pub accuracy: Option<AccuracySummary>,
    /// One scored question per line of `accuracy.jsonl`.
    pub samples: Vec<ScoredSample>,
    /// Run, target, SLO and accuracy checks (or the server's failure).
    pub checks: Vec<Check>,
    /// The servers' own metrics over the load, one per scraped server.
    pub server_metrics: Vec<ServerMetrics>,
    /// The base URLs the requests went to, one per endpoint.
    pub urls: Vec<String>,
    /// Each run's figures, when the load ran more than once.
    pub attempts: Vec<Attempt>,
    /// What each endpoint's server said of itself before the trial began.
    pub identities: Vec<ServerIdentity>,
    /// A worker's load: what its records are a share of.
    pub shard: Option<ShardFile>,
    /// Other files for the trial's folder (an external task's stdout and stderr).
    pub attachments: Vec<(&'static str, Vec<u8>)>,
    /// A streamed load's records, in their spool file rather than in `records`.
    pub spooled: Option<Spooled>,
}

impl Measured {
    fn failed(error: &TrialError) -> Measured {
        Measured {
            checks: vec![judge::run::server_unusable(error.to_string())],
            ..Measured::default()
        }
    }
}

/// Brings up the plan's servers, measures, and takes them down (spawned ones stay with the
/// session). Anything that goes wrong is a failed check of the result, never an error.
/// Returns what served the trial (the kind of its first endpoint's server) with what it
/// measured. The reasons quote what servers said (error bodies, the end of a server's log),
/// so the secrets the case's clients send are redacted from every one of them.
pub(super) async fn measure(
    session: &Session,
    plan: &TrialPlan,
    baseline: &dyn Baseline,
) -> (ServerKind, Measured) {
    let (server, mut measured) = measure_unredacted(session, plan, baseline).await;
    let secrets = case_secrets(&plan.case().spec);
    for check in &mut measured.checks {
        secrets.redact_in_place(&mut check.reason);
    }
    (server, measured)
}

async fn measure_unredacted(
    session: &Session,
    plan: &TrialPlan,
    baseline: &dyn Baseline,
) -> (ServerKind, Measured) {
    let case = plan.case();
    let spec = &case.spec;
    let ctx = &session.context;
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
        None => solo(plan, spec.destinations()),
    };
    let server = destinations
        .first()
        .map_or(ServerKind::Embedded, |d| d.server.kind());
    let Some(model) = case.model.as_ref() else {
        return (server, Measured::failed(&TrialError::NoModel));
    };
    let task = match accuracy_task(plan) {
        Ok(task) => task,
        Err(e) => return (server, Measured::failed(&e)),
    };
    if let Some(replay) = session.take_replay(plan) {
        return (
            server,
            replayed(plan, task.as_ref(), baseline, &destinations, replay),
        );
    }
    let key = Arc::new(task.as_ref().map(AnswerKey::for_task).unwrap_or_default());
    let case_dir = case.path.parent().unwrap_or(Path::new("."));
    let log_dir = ctx.out_dir.join(safe_name(&ctx.run_id)).join("servers");
    let hidden_env: Vec<String> = spec.client.api_key_env.iter().cloned().collect();
    let around = Surroundings {
        hidden_env: &hidden_env,
        model,
        answers: &key,
        case_dir,
        log_dir: &log_dir,
        spawned: &session.spawned,
    };
    let mut servers = Vec::new();
    for destination in &destinations {
        match RunningServer::bring_up(&destination.server, &around).await {
            Ok(server) => servers.push(server),
            Err(source) => {
                shutdown_all(servers).await;
                let error = TrialError::Server {
                    endpoint: destination.name.clone(),
                    source,
                };
                return (server, Measured::failed(&error));
            }
        }
    }
    let notes: Vec<Check> = servers
        .iter()
        .flat_map(|s| {
            s.notes
                .iter()
                .map(|note| judge::run::server_restarted(note.clone()))
        })
        .collect();
    let result = drive(
        session,
        plan,
        task.as_ref(),
        baseline,
        &destinations,
        &servers,
    )
    .await;
    // A spawned server that died while the trial ran fails it, with its exit and log.
    let deaths: Vec<Check> = servers
        .iter()
        .filter(|s| s.kind == ServerKind::Spawn)
        .filter_map(|s| session.spawned.death_of(&s.base_url))
        .map(judge::run::server_unusable)
        .collect();
    let urls = servers.iter().map(|s| s.base_url.clone()).collect();
    shutdown_all(servers).await;
    let mut measured = result.unwrap_or_else(|e| Measured::failed(&e));
    measured.urls = urls;
    measured.checks.splice(0..0, notes);
    measured.checks.extend(deaths);
    (server, measured)
}

/// The secrets the case's clients send (the API key from its variable, the header values).
pub(super) fn case_secrets(spec: &crate::case::CaseSpec) -> Secrets {
    let key = spec
        .client
        .api_key_env
        .as_ref()
        .and_then(|var| std::env::var(var).ok());
    Secrets::new(
        key.as_deref(),
        spec.client.headers.values().map(String::as_str),
    )
}

/// The case's accuracy task, read from its files, for the kinds that run one.
fn accuracy_task(plan: &TrialPlan) -> Result<Option<Task>, TrialError> {
    let case = plan.case();
    match plan.accuracy_spec() {
        Some(accuracy) => {
            let case_dir = case.path.parent().unwrap_or(Path::new("."));
            Task::from_spec(accuracy, case_dir)
                .map(Some)
                .map_err(TrialError::AccuracyTask)
        }
        _ => Ok(None),
    }
}

/// The destinations of a trial that measures one endpoint alone (`contention: true`): that
/// endpoint, taking the whole load; every destination otherwise.
fn solo(plan: &TrialPlan, destinations: Vec<Destination>) -> Vec<Destination> {
    let Some(name) = solo_endpoint(plan) else {
        return destinations;
    };
    destinations
        .into_iter()
        .filter(|d| d.name == name)
        .map(|d| Destination { weight: 1.0, ..d })
        .collect()
}

/// The endpoint a trial measures alone, if it does (`contention: true`).
fn solo_endpoint(plan: &TrialPlan) -> Option<&str> {
    match plan {
        TrialPlan::Load(LoadTrial {
            point: MatrixPoint {
                solo: Some(solo), ..
            },
            ..
        }) => Some(&solo.endpoint),
        _ => None,
    }
}

async fn shutdown_all(servers: Vec<RunningServer>) {
    for server in servers {
        server.shutdown().await;
    }
}

/// Builds the clients and prompts, and runs the load, the accuracy phase, or both at once.
async fn drive(
    session: &Session,
    plan: &TrialPlan,
    task: Option<&Task>,
    baseline: &dyn Baseline,
    destinations: &[Destination],
    servers: &[RunningServer],
) -> Result<Measured, TrialError> {
    let endpoints = clients(session, plan, destinations, servers)?;
    let identities = identify(&endpoints).await;
    let mut measured = drive_endpoints(
        session,
        plan,
        task,
        baseline,
        destinations,
        servers,
        endpoints,
    )
    .await?;
    measured.identities = identities;
    Ok(measured)
}

/// Most bytes of a `/v1/models` answer kept.
const MODELS_ANSWER_BYTES: usize = 64 * 1024;

/// Asks each endpoint's server what it is (`GET /v1/models`, with the client's headers),
/// waiting at most a few seconds: the answer goes to `rerun.json`, and a server that does
/// not give one is noted there, never failed for it.
async fn identify(endpoints: &[Endpoint]) -> Vec<ServerIdentity> {
    let mut identities = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        let client = &endpoint.client;
        let url = format!("{}/v1/models", client.base_url());
        let asked = tokio::time::timeout(Duration::from_secs(5), async {
            let mut response = client.http().get(&url).send().await?;
            let server_header = response
                .headers()
                .get(reqwest::header::SERVER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let status = response.status();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                body.extend_from_slice(&chunk);
                if body.len() > MODELS_ANSWER_BYTES {
                    break;
                }
            }
            Ok::<_, reqwest::Error>((status, server_header, body))
        })
        .await;
        let mut identity = ServerIdentity {
            endpoint: endpoint.name.clone(),
            ..ServerIdentity::default()
        };
        match asked {
            Err(_) => identity.unavailable = Some("no answer within 5 s".into()),
            Ok(Err(e)) => {
                identity.unavailable = Some(client.secrets().redact(&e.to_string()).into_owned())
            }
            Ok(Ok((status, server_header, body))) => {
                identity.server_header = server_header;
                let text = String::from_utf8_lossy(&body);
                let text = client.secrets().redact(&text);
                if !status.is_success() {
                    identity.unavailable = Some(format!("GET /v1/models answered {status}"));
                } else if body.len() > MODELS_ANSWER_BYTES {
                    identity.unavailable =
                        Some(format!("the answer is over {MODELS_ANSWER_BYTES} bytes"));
                } else {
                    match serde_json::from_str(&text) {
                        Ok(models) => identity.models = Some(models),
                        Err(e) => identity.unavailable = Some(format!("not JSON: {e}")),
                    }
                }
            }
        }
        identities.push(identity);
    }
    identities
}

/// Runs the load, the accuracy phase, or both at once on `endpoints`.
async fn drive_endpoints(
    session: &Session,
    plan: &TrialPlan,
    task: Option<&Task>,
    baseline: &dyn Baseline,
    destinations: &[Destination],
    servers: &[RunningServer],
    endpoints: Vec<Endpoint>,
) -> Result<Measured, TrialError> {
    let case = plan.case();
    let spec = &case.spec;
    let names: Vec<String> = endpoints.iter().map(|e| e.name.clone()).collect();
    // The accuracy phase asks the first endpoint.
    let accuracy_client = endpoints.first().map(|e| e.client.clone());
    let accuracy = task.zip(plan.accuracy_spec()).zip(accuracy_client);
    let load = match plan {
        TrialPlan::Load(load) => load,
        TrialPlan::Accuracy(_) | TrialPlan::Sim(_) => {
            let ((task, accuracy), client) = accuracy.ok_or(TrialError::NoAccuracyTask)?;
            if task.is_external() {
                let ctx = &session.context;
                let out_dir = ctx
                    .out_dir
                    .join(safe_name(&ctx.run_id))
                    .join("external")
                    .join(safe_name(&spec.name))
                    .join(safe_name(&accuracy.slug()));
                let case_dir = case.path.parent().unwrap_or(Path::new("."));
                let ran = super::external::run(accuracy, &client, case_dir, out_dir).await;
                let (summary, mut checks) =
                    judge::accuracy::judge_external(task, accuracy, ran.score);
                checks.extend(accuracy_slo_checks(&spec.slo, &summary));
                return Ok(Measured {
                    accuracy: Some(summary),
                    checks,
                    attachments: ran.files,
                    ..Measured::default()
                });
            }
            let samples = ask_all(task, accuracy, &client, spec.api, None).await;
            let (summary, mut checks) = judge::accuracy::judge(task, accuracy, &samples, None);
            checks.extend(accuracy_slo_checks(&spec.slo, &summary));
            return Ok(Measured {
                accuracy: Some(summary),
                samples,
                checks,
                ..Measured::default()
            });
        }
    };
    let first = servers.first().ok_or(TrialError::NoServer)?;
    // The server's tokenizer is asked on connections of its own: a server that closes a
    // connection after so many requests (cpp-httplib does) must not close one the load is
    // about to reuse.
    let tokenizer_client = clients(session, plan, &destinations[..1], &servers[..1])?
        .pop()
        .map(|e| e.client)
        .ok_or(TrialError::NoServer)?;
    let prompts = prompts_for(session, load, tokenizer_client.http(), first).await?;
    let max_context = load.case.model.as_ref().map(|model| {
        spec.matrix
            .as_ref()
            .and_then(|m| m.max_context)
            .unwrap_or(model.max_context)
    });
    let conversations = load::Conversations::of_case(
        &spec.load,
        &spec.prompts,
        load.point.combination.isl,
        max_context,
        prompts.follow_ups,
    )
    .map(|c| {
        let cap = match spec.prompts.sessions.and_then(|s| s.turns) {
            Some(crate::case::TurnsSpec::Fixed(n)) => Some(n),
            _ => None,
        };
        c.replaying(prompts.replay, cap)
    });
    let source = RequestSource::new(endpoints, prompts.measured, prompts.warmup, spec.load.seed)?
        .with_progress(session.progress.clone())
        .with_prefix_groups(spec.prompts.shared_prefix().map(|(_, groups)| groups))
        .with_conversations(conversations);
    let shape = &load.point.shape;
    // A worker sends its share of the load, starting with the other workers.
    let worker = session.worker.as_ref().map(|w| {
        (
            w,
            load::share_of(shape, w.share),
            Arc::new(w.barrier(&plan.full_name())),
        )
    });
    let source = match &worker {
        Some((_, share, barrier)) => source.with_share(*share).with_barrier(Arc::clone(barrier)),
        None => source,
    };
    let shard_of = |outcome: &LoadOutcome| {
        worker
            .as_ref()
            .map(|(w, share, barrier)| ShardFile::new(w, *share, outcome, barrier))
    };
    let runs = spec
        .load
        .repeat
        .max(1)
        .saturating_add(session.retries(plan));
    let limit = load::limit::trial_limit(&spec.load, shape, runs);
    let source = match Instant::now().checked_add(limit) {
        Some(at) => source.with_cut_off(at),
        None => source,
    };
    let spool = match streamed_for(session, plan, shape, worker.is_some()) {
        Some(planned_s) => {
            let path = spool_path(session, plan);
            match Spool::create(path, names.len(), spec.goodput.as_ref(), planned_s) {
                Ok(spool) => Some(Arc::new(spool)),
                Err(e) => return Err(TrialError::Spool(e)),
            }
        }
        None => None,
    };
    let source = match &spool {
        Some(spool) => source.with_spool(Arc::clone(spool)),
        None => source,
    };
    let source = Arc::new(source);
    let scrapers = start_scrapers(plan, &names, servers).await;
    // A trial's workers ask the accuracy questions by index, each its share; a worker whose
    // share has none asks nothing.
    let shared_task = accuracy.as_ref().and_then(|((task, _), _)| {
        worker
            .as_ref()
            .map(|(w, _, _)| task.share(w.share.index(), w.share.count()))
    });
    let accuracy = accuracy
        .map(|((task, spec), client)| ((shared_task.as_ref().unwrap_or(task), spec), client));
    let Some(((task, accuracy), client)) = accuracy.filter(|((task, _), _)| {
        load.kind == LoadKind::Stress && (worker.is_none() || !task.samples().is_empty())
    }) else {
        let (outcome, attempts) = run_repeated(session, plan, load, &source).await;
        let shard = shard_of(&outcome);
        let mut measured =
            judge_outcome(load, outcome, &names, spool.as_deref(), &source, limit).await;
        measured
            .checks
            .extend(shard.as_ref().and_then(barrier_check));
        measured.shard = shard;
        measured.attempts = attempts;
        measured.server_metrics = finish_scrapers(scrapers).await;
        let slos = slo_checks(&spec.slo, &measured, &names, solo_endpoint(plan));
        measured.checks.extend(slos);
        return Ok(measured);
    };
    // Stress: the questions are asked while the load runs; each answer notes whether the load
    // was still running when it came back.
    let running = Arc::new(AtomicBool::new(true));
    let driven = async {
        let outcome = load::run(&spec.load, shape, &source).await;
        running.store(false, Ordering::Release);
        outcome
    };
    let asked = ask_all(
        task,
        accuracy,
        &client,
        spec.api,
        Some(Arc::clone(&running)),
    );
    let (outcome, samples) = tokio::join!(driven, asked);
    let server_metrics = finish_scrapers(scrapers).await;
    let (summary, checks) = judge::accuracy::judge(
        task,
        accuracy,
        &samples,
        plan.accuracy_baseline_trial()
            .and_then(|trial| baseline.accuracy_score(&trial)),
    );
    let shard = shard_of(&outcome);
    let mut measured = judge_outcome(load, outcome, &names, spool.as_deref(), &source, limit).await;
    measured
        .checks
        .extend(shard.as_ref().and_then(barrier_check));
    measured.shard = shard;
    measured.accuracy = Some(summary);
    measured.samples = samples;
    measured.server_metrics = server_metrics;
    // Report order: the run's checks, targets, SLOs, then the accuracy checks.
    let slos = slo_checks(&spec.slo, &measured, &names, solo_endpoint(plan));
    measured.checks.extend(slos);
    measured.checks.extend(checks);
    Ok(measured)
}

/// Runs the load `load.repeat` times, then again while the gate's `retries` allow and a
/// metric compared with the baseline is inconclusive, and pools the runs
/// ([`load::LoadOutcome::followed_by`]). Returns the pooled outcome with each run's figures
/// (none when the load ran once).
async fn run_repeated(
    session: &Session,
    plan: &TrialPlan,
    load: &LoadTrial,
    source: &Arc<RequestSource>,
) -> (LoadOutcome, Vec<Attempt>) {
    let spec = &load.case.spec;
    let shape = &load.point.shape;
    let mut attempts = Vec::new();
    let mut pooled: Option<LoadOutcome> = None;
    let repeats = std::iter::repeat_n(AttemptCause::Repeat, spec.load.repeat.max(1) as usize);
    let retries = std::iter::repeat_n(AttemptCause::Retry, session.retries(plan) as usize);
    for cause in repeats.chain(retries) {
        if pooled.is_some() && source.expired() {
            break;
        }
        if let (AttemptCause::Retry, Some(so_far)) = (cause, &pooled)
            && !session.inconclusive(plan, &so_far.records, so_far.duration_s)
        {
            break;
        }
        let outcome = load::run(&spec.load, shape, source).await;
        attempts.push(Attempt::of(
            cause,
            &Summary::from_records(&outcome.records, outcome.duration_s),
        ));
        pooled = Some(match pooled {
            None => outcome,
            Some(earlier) => earlier.followed_by(outcome),
        });
    }
    if attempts.len() == 1 {
        attempts.clear();
    }
    let pooled = pooled.expect("the load runs at least once");
    (pooled, attempts)
}

/// The name of the check that a trial's workers started together.
pub(super) const BARRIER_CHECK: &str = "workers started together";

/// The failed check of a worker that could not start with the others, if it could not.
fn barrier_check(shard: &ShardFile) -> Option<Check> {
    shard
        .barrier_error
        .as_ref()
        .map(|error| barrier_failed(error.clone()))
}

fn barrier_failed(reason: String) -> Check {
    Check::fail(
        judge::CheckSource::Run,
        BARRIER_CHECK,
        "every worker is ready within the barrier timeout",
        reason,
    )
}

/// The SLOs of a trial that drove no load: with no load, only the `accuracy` SLOs apply.
fn accuracy_slo_checks(slos: &[Slo], summary: &AccuracySummary) -> Vec<Check> {
    let inputs = judge::slo::SloInputs {
        load: None,
        accuracy: Some(summary),
    };
    judge::slo::checks(slos, &inputs)
}

/// Whether the workers' histograms, added together, give the union's percentiles exactly as
/// its records do (count, min, max and every percentile of each latency); none when the
/// shards carry no histogram.
fn histograms_check(
    summary: &Summary,
    histograms: &std::collections::BTreeMap<
        String,
        crate::metrics::distribution::DistributionBuilder,
    >,
) -> Option<Check> {
    if histograms.is_empty() {
        return None;
    }
    let rule = "the workers' HDR histograms (V2), added, give the percentiles of their records";
    let mismatch = histograms.iter().find_map(|(metric, builder)| {
        let from_histograms = builder.build();
        let from_records = summary.distribution(metric);
        let same = match (&from_histograms, from_records) {
            (Some(h), Some(r)) => {
                (h.count, h.min, h.max, h.p5, h.p25, h.p50, h.p90, h.p95, h.p99, h.p999)
                    == (r.count, r.min, r.max, r.p5, r.p25, r.p50, r.p90, r.p95, r.p99, r.p999)
            }
            (None, None) => true,
            _ => false,
        };
        (!same).then(|| format!("{metric}: {from_histograms:?} from the histograms, {from_records:?} from the records"))
    });
    Some(match mismatch {
        None => Check::pass(
            judge::CheckSource::Run,
            HISTOGRAMS_CHECK,
            rule,
            format!("{} latencies agree", histograms.len()),
        ),
        Some(reason) => Check::fail(judge::CheckSource::Run, HISTOGRAMS_CHECK, rule, reason),
    })
}

/// The check that the merged histograms agree with the merged records.
const HISTOGRAMS_CHECK: &str = "shard histograms";

/// What a load trial measured, from its workers' merged shards rather than from a server:
/// the same summary, judge and SLOs as a trial that drove the load, the servers' metrics as
/// worker 0 scraped them, and the accuracy questions all workers asked.
fn replayed(
    plan: &TrialPlan,
    task: Option<&Task>,
    baseline: &dyn Baseline,
    destinations: &[Destination],
    replay: Replay,
) -> Measured {
    let TrialPlan::Load(load) = plan else {
        return Measured::failed(&TrialError::NoServer);
    };
    let spec = &plan.case().spec;
    let names: Vec<String> = destinations.iter().map(|d| d.name.clone()).collect();
    let outcome = LoadOutcome {
        window_start: Instant::now(),
        records: replay.records,
        duration_s: replay.duration_s,
        dropped: replay.dropped,
    };
    let cut = cut_requests(&outcome.records);
    let mut measured = judge_load(load, outcome, &names);
    if cut > 0 {
        let limit =
            load::limit::trial_limit(&spec.load, &load.point.shape, spec.load.repeat.max(1));
        measured.checks.push(judge::run::trial_cut_off(limit, cut));
    }
    measured
        .checks
        .extend(replay.barrier_errors.into_iter().map(barrier_failed));
    measured
        .checks
        .extend(histograms_check(&measured.summary, &replay.histograms));
    measured.server_metrics = replay.server_metrics;
    let judged = task
        .zip(plan.accuracy_spec())
        .filter(|_| !replay.samples.is_empty())
        .map(|(task, accuracy)| {
            judge::accuracy::judge(
                task,
                accuracy,
                &replay.samples,
                plan.accuracy_baseline_trial()
                    .and_then(|trial| baseline.accuracy_score(&trial)),
            )
        });
    let accuracy_checks = match judged {
        Some((summary, checks)) => {
            measured.accuracy = Some(summary);
            measured.samples = replay.samples;
            checks
        }
        None => Vec::new(),
    };
    let slos = slo_checks(&spec.slo, &measured, &names, solo_endpoint(plan));
    measured.checks.extend(slos);
    measured.checks.extend(accuracy_checks);
    measured
}

/// The requests the trial's time limit cut off (their evidence begins with
/// [`load::CUT_OFF_NOTE`]).
fn cut_requests(records: &[RequestRecord]) -> usize {
    records
        .iter()
        .filter(|r| {
            r.error_detail
                .as_deref()
                .is_some_and(|d| d.starts_with(load::CUT_OFF_NOTE))
        })
        .count()
}

/// The failed check of a load that ran into the trial's time limit, if it did, `cut` of its
/// requests cut off.
fn cut_off_check(source: &RequestSource, limit: Duration, cut: usize) -> Option<Check> {
    if !source.expired() {
        return None;
    }
    Some(judge::run::trial_cut_off(limit, cut))
}

/// How long the measured load of a trial whose records stream to a spool is planned to run,
/// in seconds; `None` when it keeps its records in memory. A load streams when it is bounded
/// by time (a closed loop with a duration, users, an open loop, sessions), runs once
/// (`load.repeat` 1, no gate retries: no baseline at all, whose comparison reads the
/// records), is no worker's share, has no shared prefixes (whose cold requests are marked
/// once every record is in), and is planned to run at least the session's `stream_from`
/// ([`load::spool::STREAM_FROM`] unless set). Every other load keeps them: it is bounded by
/// its request count, needs them whole after the load, or is too short for them to matter.
fn streamed_for(session: &Session, plan: &TrialPlan, shape: &Shape, worker: bool) -> Option<f64> {
    let spec = &plan.case().spec;
    let once = spec.load.repeat.max(1) == 1 && session.retries(plan) == 0;
    let keeps = !once
        || worker
        || session.compared_with.is_some()
        || spec.prompts.shared_prefix().is_some();
    if keeps {
        return None;
    }
    let planned = match *shape {
        Shape::Closed {
            duration: Some(d), ..
        }
        | Shape::Users { duration: d, .. }
        | Shape::Sessions { duration: d, .. } => d,
        // An open loop is bounded by time when its arrivals come from its duration.
        Shape::Open { rate, requests }
            if rate > 0.0 && spec.load.requests.is_none() && spec.load.duration.is_some() =>
        {
            Duration::from_secs_f64(f64::from(requests) / rate)
        }
        Shape::Closed { duration: None, .. } | Shape::Consistency { .. } | Shape::Open { .. } => {
            return None;
        }
    };
    (planned >= session.stream_from).then_some(planned.as_secs_f64())
}

/// Where a trial's records spool while its load runs: `OUT/RUN/spool/<trial>-<pid>.jsonl.part`
/// (the trial-folder writer moves it into the trial's folder as `records.jsonl`).
fn spool_path(session: &Session, plan: &TrialPlan) -> std::path::PathBuf {
    let ctx = &session.context;
    ctx.out_dir
        .join(safe_name(&ctx.run_id))
        .join("spool")
        .join(format!(
            "{}-{}.jsonl.part",
            safe_name(&plan.full_name()),
            std::process::id()
        ))
}

/// Summarises and checks a load's outcome (with the cut-off check), from its spool when its
/// records streamed to one. A spool that could not keep every record fails the trial.
async fn judge_outcome(
    load: &LoadTrial,
    outcome: LoadOutcome,
    endpoint_names: &[String],
    spool: Option<&Spool>,
    source: &RequestSource,
    limit: Duration,
) -> Measured {
    let Some(spool) = spool else {
        let cut = cut_off_check(source, limit, cut_requests(&outcome.records));
        let mut measured = judge_load(load, outcome, endpoint_names);
        measured.checks.extend(cut);
        return measured;
    };
    match spool.finish(outcome.duration_s).await {
        Ok(finished) => {
            let cut = cut_off_check(source, limit, finished.evidence.cut_off as usize);
            let mut measured = judge_streamed(load, &outcome, finished, endpoint_names);
            measured.checks.extend(cut);
            measured
        }
        Err(e) => {
            let mut measured = judge_load(load, outcome, endpoint_names);
            measured.checks.push(Check::fail(
                judge::CheckSource::Run,
                "records",
                "every record is written to records.jsonl",
                e.to_string(),
            ));
            measured
        }
    }
}

/// [`judge_load`] for a load whose records streamed to a spool: the summaries and the facts
/// the checks need were gathered as the records came.
fn judge_streamed(
    load: &LoadTrial,
    outcome: &LoadOutcome,
    finished: load::spool::Finished,
    endpoint_names: &[String],
) -> Measured {
    let point = &load.point;
    let summary = finished
        .summary
        .with_arrivals(point.shape.rate(), outcome.dropped);
    let endpoints = if endpoint_names.len() > 1 {
        endpoint_names
            .iter()
            .zip(finished.endpoints)
            .map(|(name, summary)| EndpointSummary {
                name: name.clone(),
                summary,
            })
            .collect()
    } else {
        Vec::new()
    };
    let evidence = finished.evidence;
    let facts = judge::run::RecordFacts {
        first_client_error: evidence.first_client_error.map(|(_, detail)| detail),
        answered: evidence.answered,
        any_answer: evidence.first_answer_ms.is_some(),
        refused: evidence.refused,
        first_refused: evidence.first_refused,
    };
    let checks = judge::run::load_checks_of(&summary, &facts, &load_rules(load));
    Measured {
        summary,
        endpoints,
        checks,
        spooled: Some(finished.spooled),
        ..Measured::default()
    }
}

/// The run's rules for a load trial's checks (the SLOs are judged later, [`slo_checks`]).
fn load_rules(load: &LoadTrial) -> judge::run::LoadRules<'_> {
    let spec = &load.case.spec;
    let point = &load.point;
    // Reference targets are measured at a concurrency: an open-loop trial has none to match.
    let targets = if point.shape.mode() == LoadMode::Open {
        None
    } else {
        point.combination.targets.as_ref()
    };
    // The SLOs are judged once the scrapers and the accuracy phase have finished too
    // ([`slo_checks`]): some of them gate on what those measured.
    judge::run::LoadRules {
        targets,
        target_spec: &spec.targets,
        slos: &[],
        error_budget: spec.load.error_budget,
    }
}

/// Starts scraping every server's metrics, unless the case turned it off.
async fn start_scrapers(
    plan: &TrialPlan,
    names: &[String],
    servers: &[RunningServer],
) -> Vec<Scraper> {
    let spec = &plan.case().spec.client.metrics;
    let mut scrapers = Vec::new();
    if spec.scrape {
        for (name, server) in names.iter().zip(servers) {
            scrapers.push(Scraper::start(name, &server.base_url, spec).await);
        }
    }
    scrapers
}

async fn finish_scrapers(scrapers: Vec<Scraper>) -> Vec<ServerMetrics> {
    let mut metrics = Vec::with_capacity(scrapers.len());
    for scraper in scrapers {
        metrics.push(scraper.finish().await);
    }
    metrics
}

/// One client per server.
fn clients(
    session: &Session,
    plan: &TrialPlan,
    destinations: &[Destination],
    servers: &[RunningServer],
) -> Result<Vec<Endpoint>, TrialError> {
    let spec = &plan.case().spec;
    let api_key = match &spec.client.api_key_env {
        None => None,
        Some(var) => Some(std::env::var(var).map_err(|_| TrialError::ApiKeyEnv(var.clone()))?),
    };
    // A local tokenizer also counts each answer, to check the server's counts (or stand in
    // for them when it gives none).
    let output_counter: Option<Arc<dyn CountTokens>> = if spec.prompts.use_server_tokenizer {
        None
    } else {
        model_tokenizer(session, plan.case())?.map(|t| Arc::new(t) as Arc<dyn CountTokens>)
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
            keep_alive: spec.client.keep_alive,
            extra_body: (!spec.client.extra_body.is_empty())
                .then(|| Arc::new(spec.client.extra_body.clone())),
            max_event_bytes: spec.client.max_event_bytes,
            reads: None,
            transport: spec.client.transport,
        };
        let client = Client::new(config)?;
        endpoints.push(Endpoint {
            name: destination.name.clone(),
            weight: destination.weight,
            client,
        });
    }
    Ok(endpoints)
}

/// Summarises the outcome (overall and per endpoint) and checks it.
fn judge_load(load: &LoadTrial, outcome: LoadOutcome, endpoint_names: &[String]) -> Measured {
    let spec = &load.case.spec;
    let point = &load.point;
    let rate = point.shape.rate();
    let goodput = spec.goodput.as_ref();
    let summary = Summary::from_records(&outcome.records, outcome.duration_s)
        .with_arrivals(rate, outcome.dropped)
        .with_goodput(&outcome.records, goodput);
    let summary = if point.shape.mode() == LoadMode::Consistency {
        summary.with_consistency(&outcome.records)
    } else {
        summary
    };
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
                    summary: Summary::from_records(&mine, outcome.duration_s)
                        .with_goodput(&mine, goodput),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let checks = judge::run::load_checks(&summary, &outcome.records, &load_rules(load));
    Measured {
        summary,
        endpoints,
        records: outcome.records,
        checks,
        ..Measured::default()
    }
}

/// The case's SLOs judged against everything a load trial measured: its summary, each
/// endpoint's (a single server's is the whole summary), the scraped server metrics and the
/// accuracy phase, when one ran. A trial that measures endpoint `solo` alone does not apply
/// the SLOs of the case's other endpoints.
fn slo_checks(
    slos: &[Slo],
    measured: &Measured,
    endpoint_names: &[String],
    solo: Option<&str>,
) -> Vec<Check> {
    let endpoints: Vec<(&str, &Summary)> = if measured.endpoints.is_empty() {
        endpoint_names
            .iter()
            .take(1)
            .map(|name| (name.as_str(), &measured.summary))
            .collect()
    } else {
        measured
            .endpoints
            .iter()
            .map(|e| (e.name.as_str(), &e.summary))
            .collect()
    };
    let inputs = judge::slo::SloInputs {
        load: Some(judge::slo::LoadMeasured {
            summary: &measured.summary,
            endpoints: &endpoints,
            server_metrics: &measured.server_metrics,
        }),
        accuracy: measured.accuracy.as_ref(),
    };
    slos.iter()
        .map(|slo| match (&slo.metric, solo) {
            (crate::case::SloMetric::Endpoint { endpoint, .. }, Some(solo)) if endpoint != solo => {
                let text = slo.to_string();
                Check::not_applicable(
                    crate::judge::CheckSource::Slo,
                    text.clone(),
                    text,
                    format!("this trial measures endpoint `{solo}` alone"),
                )
            }
            _ => judge::slo::check_measured(slo, &inputs),
        })
        .collect()
}
