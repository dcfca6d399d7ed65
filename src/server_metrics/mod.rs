//! The server's own Prometheus metrics (`/metrics`), scraped while a trial's load runs and
//! summarised beside what the client measured: how many requests the server was running and
//! queueing, how full its KV cache was, how many tokens it says it processed.

mod exposition;
/// The metrics known by name: defined in [`crate::metrics::server_known`], where the case's
/// SLOs can check a name at load time.
pub use crate::metrics::server_known as known;
mod scrape;
mod summary;

pub use known::{KnownMetric, MetricKind};
pub use scrape::Scraper;
pub use summary::{MetricSummary, Reading, Series, ServerMetrics};
