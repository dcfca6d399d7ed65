//! Scraping a server's `/metrics` in the background while a trial runs.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::summary::{Series, ServerMetrics};
use crate::case::MetricsSpec;

/// How long one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// The shortest time between scrapes.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Scrapes one server: once before the load starts, every interval in a background task,
/// and once more when finished. A server whose first scrape fails is not asked again, and
/// its summary says why.
pub struct Scraper {
    endpoint: String,
    running: Option<(oneshot::Sender<()>, JoinHandle<ServerMetrics>)>,
    unavailable: Option<String>,
}

impl Scraper {
    /// Takes the first scrape of `{base_url}{spec.path}` for `endpoint`, then goes on
    /// scraping in a task on the current runtime. Returns once the first scrape is in, so
    /// counters start from before the load.
    pub async fn start(endpoint: &str, base_url: &str, spec: &MetricsSpec) -> Scraper {
        let url = format!("{}{}", base_url.trim_end_matches('/'), spec.path);
        let interval = Duration::from_millis(spec.interval_ms).max(MIN_INTERVAL);
        let mut scraper = Scraper {
            endpoint: endpoint.to_string(),
            running: None,
            unavailable: None,
        };
        let client = match reqwest::Client::builder().timeout(SCRAPE_TIMEOUT).build() {
            Ok(client) => client,
            Err(e) => {
                scraper.unavailable = Some(format!("no HTTP client: {e}"));
                return scraper;
            }
        };
        let start = Instant::now();
        let mut series = Series::default();
        match fetch(&client, &url).await {
            Ok(text) => series.add(0.0, &text),
            Err(reason) => {
                scraper.unavailable = Some(reason);
                return scraper;
            }
        }
        let (stop, stopped) = oneshot::channel();
        let endpoint = scraper.endpoint.clone();
        let task = tokio::spawn(async move {
            let context = Context { client, url, start };
            scrape_until(&context, series, interval, stopped)
                .await
                .summarise(&endpoint)
        });
        scraper.running = Some((stop, task));
        scraper
    }

    /// Takes the last scrape and returns the summary.
    pub async fn finish(self) -> ServerMetrics {
        let unavailable = |reason: String| ServerMetrics {
            endpoint: self.endpoint.clone(),
            unavailable: Some(reason),
            ..ServerMetrics::default()
        };
        let Some((stop, task)) = self.running else {
            return unavailable(self.unavailable.clone().unwrap_or_default());
        };
        stop.send(()).ok();
        match task.await {
            Ok(metrics) => metrics,
            Err(e) => unavailable(format!("the scraper stopped: {e}")),
        }
    }
}

/// What each scrape needs.
struct Context {
    client: reqwest::Client,
    url: String,
    /// When the first scrape was taken.
    start: Instant,
}

async fn scrape_until(
    context: &Context,
    mut series: Series,
    interval: Duration,
    mut stopped: oneshot::Receiver<()>,
) -> Series {
    let start = context.start;
    let mut ticks = tokio::time::interval_at(start + interval, interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = ticks.tick() => scrape_into(&mut series, context).await,
        }
    }
    scrape_into(&mut series, context).await;
    series
}

async fn scrape_into(series: &mut Series, context: &Context) {
    match fetch(&context.client, &context.url).await {
        Ok(text) => series.add(context.start.elapsed().as_secs_f64(), &text),
        Err(_) => series.add_failure(),
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!(
            "GET {url} answered {status} (llama-server serves metrics only with --metrics)"
        ));
    }
    response
        .text()
        .await
        .map_err(|e| format!("GET {url}: reading the body: {e}"))
}
