//! The documented caps on what a case may ask for, checked while the YAML is read so that a
//! value out of range is an error naming its file, line, column and key — before anything is
//! allocated or slept on. A duration of `.inf` or `400000000000y`, a billion requests or a
//! concurrency of a billion would otherwise panic (`Duration`/`Instant` overflow) or abort on
//! allocation in the middle of a run.
//!
//! Each cap is far above any load one client machine can drive; the book's case-schema
//! reference lists them.

use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};

/// Most measured requests of one trial (`load.requests`, `prompts: { fixed: N }`, a model
/// spec's reference prompts, an open loop's rate × duration).
pub const MAX_REQUESTS: u32 = 1_000_000;

/// Most requests in flight or virtual users (`matrix.concurrency`, `load.max_in_flight`,
/// `max_concurrency`, the embedded server's `slots` and `max_queue`, accuracy concurrency):
/// each is an open connection.
pub const MAX_CONCURRENCY: u32 = 100_000;

/// Most tokens of an input or output sequence or of a context (`matrix.isl`, `matrix.osl`,
/// `max_context`): 16 Mi tokens.
pub const MAX_TOKENS: u32 = 1 << 24;

/// Most prompt tokens one trial holds at once: the largest ISL × the largest prompt pool.
/// 256 Mi tokens, about 1 GiB of text.
pub const MAX_PROMPT_TOKENS: u64 = 1 << 28;

/// Longest duration anywhere (`load.duration`, `ramp_up`, `think_time`, warmup): 30 days.
pub const MAX_SPAN: Duration = Duration::from_secs(30 * 24 * 3600);

/// Most seconds of a timeout (`load.timeout_s`, `server.spawn.startup_timeout_s`): one day.
pub const MAX_TIMEOUT_S: f64 = 86_400.0;

/// Most milliseconds of a latency or fault delay of the embedded server (`ttft_ms`, `tpot_ms`,
/// `faults.stall_ms`, `faults.slow_first_byte_ms`, and `prefill_us_per_token` in µs): one hour.
pub const MAX_DELAY_MS: f64 = 3_600_000.0;

/// Most bytes of one SSE line or event the client holds, unless `client.max_event_bytes`
/// says otherwise (1 MiB).
pub const DEFAULT_EVENT_BYTES: usize = 1 << 20;

/// The range `client.max_event_bytes` may take: 1 KiB to 64 MiB.
pub const EVENT_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1024..=(64 << 20);

/// Most runs of one trial's load (`load.repeat`).
pub const MAX_REPEAT: u32 = 100;

/// Most requests per second of an open loop.
pub const MAX_RATE: f64 = 1_000_000.0;

/// `value` if it is at most `max`, else a message naming the cap.
pub fn check_count(value: u64, max: u32, what: &str) -> Result<u32, String> {
    u32::try_from(value)
        .ok()
        .filter(|v| *v <= max)
        .ok_or_else(|| format!("{value} is more than the cap of {max} {what}"))
}

/// `value` if it is a finite number in `0..=max`, else a message naming the range.
pub fn check_number(value: f64, max: f64, unit: &str) -> Result<f64, String> {
    if value.is_finite() && (0.0..=max).contains(&value) {
        Ok(value)
    } else if value.is_finite() && value.abs() >= 1e9 {
        Err(format!(
            "{value:e} is out of range: a number of {unit} from 0 to {max}"
        ))
    } else {
        Err(format!(
            "{value} is out of range: a number of {unit} from 0 to {max}"
        ))
    }
}

/// `span` if it is at most [`MAX_SPAN`].
pub fn check_span(span: Duration) -> Result<Duration, String> {
    if span <= MAX_SPAN {
        Ok(span)
    } else {
        Err(format!(
            "{} is longer than the cap of {}",
            humantime::format_duration(span),
            humantime::format_duration(MAX_SPAN)
        ))
    }
}

fn count<'de, D: Deserializer<'de>>(d: D, max: u32, what: &str) -> Result<u32, D::Error> {
    let value = u64::deserialize(d)?;
    check_count(value, max, what).map_err(de::Error::custom)
}

/// A count of requests, at most [`MAX_REQUESTS`].
pub fn requests<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    count(d, MAX_REQUESTS, "requests")
}

fn optional<'de, D: Deserializer<'de>>(
    d: D,
    max: u32,
    what: &str,
) -> Result<Option<u32>, D::Error> {
    Option::<u64>::deserialize(d)?
        .map(|v| check_count(v, max, what).map_err(de::Error::custom))
        .transpose()
}

/// An optional count of requests (`~` for none), at most [`MAX_REQUESTS`].
pub fn opt_requests<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    optional(d, MAX_REQUESTS, "requests")
}

/// A concurrency, at most [`MAX_CONCURRENCY`].
pub fn concurrency<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    count(d, MAX_CONCURRENCY, "requests in flight")
}

/// An optional concurrency, at most [`MAX_CONCURRENCY`].
pub fn opt_concurrency<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    optional(d, MAX_CONCURRENCY, "requests in flight")
}

/// An optional `usize` concurrency (queue places, slots), at most [`MAX_CONCURRENCY`].
pub fn opt_places<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    optional(d, MAX_CONCURRENCY, "requests in flight").map(|v| v.map(|v| v as usize))
}

/// A `usize` concurrency (slots), at most [`MAX_CONCURRENCY`].
pub fn places<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    concurrency(d).map(|v| v as usize)
}

/// A list of concurrencies, each at most [`MAX_CONCURRENCY`].
pub fn concurrencies<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    list(d, MAX_CONCURRENCY, "requests in flight")
}

/// A number of tokens, at most [`MAX_TOKENS`].
pub fn tokens<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    count(d, MAX_TOKENS, "tokens")
}

/// An optional number of tokens, at most [`MAX_TOKENS`].
pub fn opt_tokens<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    optional(d, MAX_TOKENS, "tokens")
}

/// An optional list of requests in flight, each at most [`MAX_CONCURRENCY`].
pub fn opt_concurrencies<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u32>>, D::Error> {
    concurrencies(d).map(Some)
}

/// An optional list of token counts, each at most [`MAX_TOKENS`].
pub fn opt_token_lists<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u32>>, D::Error> {
    token_lists(d).map(Some)
}

/// A list of token counts, each at most [`MAX_TOKENS`].
pub fn token_lists<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    list(d, MAX_TOKENS, "tokens")
}

fn list<'de, D: Deserializer<'de>>(d: D, max: u32, what: &str) -> Result<Vec<u32>, D::Error> {
    let values = Vec::<u64>::deserialize(d)?;
    values
        .into_iter()
        .map(|v| check_count(v, max, what).map_err(de::Error::custom))
        .collect()
}

/// `client.max_event_bytes`: within [`EVENT_BYTES_RANGE`].
pub fn event_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let value = u64::deserialize(d)?;
    usize::try_from(value)
        .ok()
        .filter(|v| EVENT_BYTES_RANGE.contains(v))
        .ok_or_else(|| {
            de::Error::custom(format!(
                "{value} is out of range: a number of bytes from {} to {}",
                EVENT_BYTES_RANGE.start(),
                EVENT_BYTES_RANGE.end()
            ))
        })
}

/// Seconds of a timeout: finite, 0 to [`MAX_TIMEOUT_S`].
pub fn timeout_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(d)?;
    check_number(value, MAX_TIMEOUT_S, "seconds").map_err(de::Error::custom)
}

/// Milliseconds of a delay: finite, 0 to [`MAX_DELAY_MS`].
pub fn delay_ms<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(d)?;
    check_number(value, MAX_DELAY_MS, "milliseconds").map_err(de::Error::custom)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(5, Ok(5))]
    #[case(1_000_001, Err("1000001 is more than the cap of 1000000 requests"))]
    #[case(u64::MAX, Err("is more than the cap"))]
    fn counts_are_capped(#[case] value: u64, #[case] want: Result<u32, &str>) {
        match (check_count(value, MAX_REQUESTS, "requests"), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(got), Err(want)) => assert!(got.contains(want), "{got}"),
            (got, want) => panic!("{got:?} vs {want:?}"),
        }
    }

    #[rstest]
    #[case(f64::INFINITY)]
    #[case(f64::NAN)]
    #[case(-1.0)]
    #[case(1e300)]
    fn numbers_out_of_range_are_refused(#[case] value: f64) {
        let message = check_number(value, MAX_TIMEOUT_S, "seconds").expect_err("refused");
        assert!(message.contains("from 0 to 86400"), "{message}");
        assert!(message.len() < 80, "short, even for 1e300: {message}");
    }

    #[derive(Debug, serde::Deserialize)]
    struct Optional {
        #[serde(default, deserialize_with = "opt_requests")]
        requests: Option<u32>,
    }

    #[rstest]
    #[case("requests: 5\n", Some(5))]
    #[case("requests: ~\n", None)]
    #[case("{}\n", None)]
    fn optional_counts_may_be_absent_or_null(#[case] text: &str, #[case] want: Option<u32>) {
        let got: Optional =
            crate::yaml::parse_yaml(std::path::Path::new("o.yaml"), text).expect("parses");
        assert_eq!(got.requests, want);
    }

    #[test]
    fn spans_beyond_thirty_days_are_refused() {
        assert!(check_span(Duration::from_secs(3600)).is_ok());
        let message = check_span(Duration::from_secs(31 * 24 * 3600)).expect_err("refused");
        assert!(
            message.contains("longer than the cap of 30days"),
            "{message}"
        );
    }
}
