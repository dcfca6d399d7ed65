//! Attaching to a running server: health check and model discovery.

use std::time::Duration;

use serde::Deserialize;

use super::ServerError;

#[derive(Deserialize)]
struct ModelList {
    #[serde(default)]
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
}

/// Checks that a server answers at `base_url` (`/health`, then `/v1/models`) and returns the
/// first model it lists, if it lists any.
pub async fn check(base_url: &str, timeout: Duration) -> Result<Option<String>, ServerError> {
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
        .map_err(|e| ServerError::Unreachable {
            url: base_url.to_string(),
            reason: e.to_string(),
        })?;
    let base = base_url.trim_end_matches('/');
    let unreachable = |reason: String| ServerError::Unreachable {
        url: base_url.to_string(),
        reason,
    };
    let health = http.get(format!("{base}/health")).send().await;
    let models = http.get(format!("{base}/v1/models")).send().await;
    match (health, models) {
        (_, Ok(models)) if models.status().is_success() => {
            let list: Option<ModelList> = models.json().await.ok();
            Ok(list.and_then(|l| l.data.into_iter().next()).map(|m| m.id))
        }
        (Ok(health), _) if health.status().is_success() => Ok(None),
        (Ok(health), _) => Err(unreachable(format!(
            "GET /health answered {} and /v1/models did not succeed",
            health.status()
        ))),
        (Err(e), _) => Err(unreachable(format!("nothing answers: {e}"))),
    }
}
