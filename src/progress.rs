//! Live progress of the measured load: a progress bar on a terminal (requests done, in
//! flight, errors, current req/s and tok/s, p90 E2EL of recent requests), or a plain line
//! every [`LINE_INTERVAL`] on stderr when it is not a terminal.
//!
//! The CLI's `run` shows it; the test harness only when [`PROGRESS_ENV`] asks, so passing
//! trials under `cargo test` and nextest stay quiet. The numbers come from
//! [`crate::load::progress`]: atomics the load updates, read here by a thread of our own, so
//! the client never waits on the display.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::load::progress::{LoadProgress, Snapshot};
use crate::session::{Event, Session, Sink, SinkError};

/// Environment variable choosing the progress display: `auto` (a bar on a terminal, else
/// plain lines), `bar`, `lines`, or `off`. The harness shows nothing unless it is set.
pub const PROGRESS_ENV: &str = "LLM_STRESS_PROGRESS";

/// How often a plain progress line is printed.
pub const LINE_INTERVAL: Duration = Duration::from_secs(10);

/// How often the bar is redrawn.
const TICK: Duration = Duration::from_millis(200);

/// The span current rates are measured over on the bar.
const RATE_SPAN: Duration = Duration::from_secs(3);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A redrawn bar (terminals).
    Bar,
    /// A line every so often.
    Lines(Duration),
}

/// The progress setting, as `--progress` and [`PROGRESS_ENV`] take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressSetting {
    /// A bar when stderr is a terminal, else a line every [`LINE_INTERVAL`].
    #[value(alias = "1", alias = "on", alias = "true")]
    Auto,
    /// A redrawn bar.
    Bar,
    /// A line every [`LINE_INTERVAL`].
    Lines,
    /// Nothing.
    #[value(alias = "0", alias = "false")]
    Off,
}

impl ProgressSetting {
    /// The style it asks for; `None` for off. `auto` is a bar when stderr is a terminal.
    pub fn style(self) -> Option<Style> {
        match self {
            ProgressSetting::Auto if std::io::stderr().is_terminal() => Some(Style::Bar),
            ProgressSetting::Auto | ProgressSetting::Lines => Some(Style::Lines(LINE_INTERVAL)),
            ProgressSetting::Bar => Some(Style::Bar),
            ProgressSetting::Off => None,
        }
    }
}

/// A progress setting that is none of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("progress `{0}`: expected auto, bar, lines or off")]
pub struct UnknownProgress(pub String);

/// The style a setting asks for: `auto`, `bar`, `lines`, `off` (also `1`/`on` for auto,
/// `0` and empty for off), in any case; `None` for off.
pub fn style_from(setting: &str) -> Result<Option<Style>, UnknownProgress> {
    let setting = setting.trim();
    if setting.is_empty() {
        return Ok(None);
    }
    <ProgressSetting as clap::ValueEnum>::from_str(setting, true)
        .map(ProgressSetting::style)
        .map_err(|_| UnknownProgress(setting.to_ascii_lowercase()))
}

/// The figures a progress display shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Requests finished.
    pub done: u64,
    /// Requests the load will send, when known.
    pub expected: Option<u64>,
    /// Requests in flight.
    pub in_flight: u64,
    /// Failed requests.
    pub errors: u64,
    /// Requests finished per second, recently.
    pub req_s: f64,
    /// Output tokens per second, recently.
    pub tok_s: f64,
    /// p90 end-to-end latency of recent requests, ms.
    pub p90_e2el_ms: Option<f64>,
    /// Time since the load started.
    pub elapsed: Duration,
}

/// The figures after `done` on a line: in flight, errors, rates, p90.
pub fn figures_text(f: &Figures) -> String {
    let p90 = f
        .p90_e2el_ms
        .map_or_else(|| "-".to_string(), |ms| format!("{ms:.0} ms"));
    format!(
        "{} in flight | {} errors | {:.1} req/s | {:.0} tok/s | p90 e2el {p90}",
        f.in_flight, f.errors, f.req_s, f.tok_s
    )
}

/// A plain progress line: `[perf] case::combo: 120/400 done | 4 in flight | … | 12 s`.
pub fn line(label: &str, f: &Figures) -> String {
    let done = match f.expected {
        Some(n) => format!("{}/{n} done", f.done),
        None => format!("{} done", f.done),
    };
    format!(
        "{label}: {done} | {} | {:.0} s",
        figures_text(f),
        f.elapsed.as_secs_f64()
    )
}

/// What the display thread and its owner share.
struct Shared {
    progress: Arc<LoadProgress>,
    style: Style,
    label: Mutex<String>,
    bar: Mutex<Option<ProgressBar>>,
    stop: AtomicBool,
}

/// A running progress display. Dropping it stops the display and clears the bar.
pub struct ProgressDisplay {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl ProgressDisplay {
    /// Starts showing the load counted into [`ProgressDisplay::counters`] (give them to the
    /// session that runs the load).
    pub fn start(style: Style) -> ProgressDisplay {
        let shared = Arc::new(Shared {
            progress: Arc::new(LoadProgress::new()),
            style,
            label: Mutex::new("load".into()),
            bar: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let thread = std::thread::Builder::new()
            .name("llm-stress-progress".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || display(&shared)
            })
            .ok();
        ProgressDisplay { shared, thread }
    }

    /// The counters this display shows: the session counts its measured requests into them.
    pub fn counters(&self) -> Arc<LoadProgress> {
        Arc::clone(&self.shared.progress)
    }

    /// Shows `session`'s load: the session counts its measured requests into this display's
    /// counters and tells it when each trial starts and finishes.
    pub fn watch(self, session: Session) -> Session {
        session
            .count_load_into(Some(self.counters()))
            .with_sink(self)
    }

    /// Names the trial whose load is shown next.
    pub fn trial(&self, name: &str) {
        *self
            .shared
            .label
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = name.to_string();
    }

    /// Clears the bar now, so that what is printed next is not mixed with it.
    pub fn finish_trial(&self) {
        clear(&self.shared);
    }
}

/// The display follows the session: each trial's name while its load runs, and the bar
/// cleared when it finishes (before anything else prints its results).
impl Sink for ProgressDisplay {
    fn event(&mut self, event: &Event<'_>) -> Result<(), SinkError> {
        match event {
            Event::TrialStarted { plan } => self.trial(&plan.full_name()),
            Event::TrialFinished { .. } | Event::RunFinished { .. } => self.finish_trial(),
        }
        Ok(())
    }
}

impl Drop for ProgressDisplay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        clear(&self.shared);
    }
}

fn clear(shared: &Shared) {
    if let Some(bar) = shared
        .bar
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
    {
        bar.finish_and_clear();
    }
}

/// Recent (instant, done, output tokens) samples, for current rates.
#[derive(Default)]
struct Rates {
    samples: VecDeque<(Instant, u64, u64)>,
}

impl Rates {
    /// Adds a sample and returns req/s and tok/s since the oldest sample within `span`.
    fn update(&mut self, now: Instant, s: &Snapshot, span: Duration) -> (f64, f64) {
        self.samples.push_back((now, s.done, s.output_tokens));
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(at, _, _)| now.duration_since(*at) >= span)
        {
            self.samples.pop_front();
        }
        match self.samples.front() {
            Some(&(at, done, tokens)) if now > at => {
                let seconds = now.duration_since(at).as_secs_f64();
                (
                    s.done.saturating_sub(done) as f64 / seconds,
                    s.output_tokens.saturating_sub(tokens) as f64 / seconds,
                )
            }
            _ => (0.0, 0.0),
        }
    }
}

/// The display thread: follows the counters until told to stop.
fn display(shared: &Shared) {
    let mut generation = shared.progress.snapshot().generation;
    let mut started = Instant::now();
    let mut rates = Rates::default();
    let mut last_line = Instant::now();
    while !shared.stop.load(Ordering::Acquire) {
        std::thread::sleep(TICK);
        let now = Instant::now();
        let s = shared.progress.snapshot();
        if s.generation != generation {
            generation = s.generation;
            started = now;
            rates = Rates::default();
            last_line = now;
            if s.running && shared.style == Style::Bar {
                new_bar(shared, &s);
            }
        }
        if !s.running {
            continue;
        }
        let span = match shared.style {
            Style::Bar => RATE_SPAN,
            Style::Lines(every) => every,
        };
        let (req_s, tok_s) = rates.update(now, &s, span);
        let figures = Figures {
            done: s.done,
            expected: s.expected,
            in_flight: s.in_flight(),
            errors: s.failed,
            req_s,
            tok_s,
            p90_e2el_ms: shared.progress.recent_p90_e2el_ms(),
            elapsed: now.duration_since(started),
        };
        match shared.style {
            Style::Bar => {
                if let Some(bar) = shared
                    .bar
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_ref()
                {
                    bar.set_position(s.done);
                    bar.set_message(figures_text(&figures));
                }
            }
            Style::Lines(every) => {
                if now.duration_since(last_line) >= every {
                    last_line = now;
                    let label = shared
                        .label
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone();
                    eprintln!("{}", line(&label, &figures));
                }
            }
        }
    }
}

/// Replaces the bar with one for the load that just started.
fn new_bar(shared: &Shared, s: &Snapshot) {
    let label = shared
        .label
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let (bar, template) = match s.expected {
        Some(n) => (
            ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
            "{prefix} [{bar:30}] {pos}/{len} | {msg} | {elapsed}",
        ),
        None => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "{prefix} {spinner} {pos} done | {msg} | {elapsed}",
        ),
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(label);
    let mut slot = shared.bar.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(old) = slot.replace(bar) {
        old.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("bar", Ok(Some(Style::Bar)))]
    #[case("lines", Ok(Some(Style::Lines(LINE_INTERVAL))))]
    #[case("LINES", Ok(Some(Style::Lines(LINE_INTERVAL))))]
    #[case("off", Ok(None))]
    #[case("0", Ok(None))]
    #[case("", Ok(None))]
    #[case("loud", Err(UnknownProgress("loud".to_string())))]
    fn settings_choose_a_style(
        #[case] setting: &str,
        #[case] style: Result<Option<Style>, UnknownProgress>,
    ) {
        assert_eq!(style_from(setting), style);
    }

    #[test]
    fn unknown_settings_say_what_is_expected() {
        let err = style_from("loud").expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "progress `loud`: expected auto, bar, lines or off"
        );
    }

    #[test]
    fn auto_is_some_display() {
        assert!(matches!(style_from("auto"), Ok(Some(_))));
    }

    #[test]
    fn a_line_shows_every_figure() {
        let figures = Figures {
            done: 120,
            expected: Some(400),
            in_flight: 4,
            errors: 1,
            req_s: 10.04,
            tok_s: 640.2,
            p90_e2el_ms: Some(812.4),
            elapsed: Duration::from_secs(12),
        };
        assert_eq!(
            line("[perf] demo::c4", &figures),
            "[perf] demo::c4: 120/400 done | 4 in flight | 1 errors | 10.0 req/s | 640 tok/s | \
             p90 e2el 812 ms | 12 s"
        );
        let unknown = Figures {
            expected: None,
            p90_e2el_ms: None,
            ..figures
        };
        assert!(line("x", &unknown).starts_with("x: 120 done | "));
        assert!(line("x", &unknown).contains("p90 e2el -"));
    }

    #[test]
    fn rates_are_measured_over_the_recent_span() {
        let start = Instant::now();
        let mut rates = Rates::default();
        let at = |s: u64, done: u64| {
            (
                start + Duration::from_secs(s),
                Snapshot {
                    generation: 1,
                    running: true,
                    expected: None,
                    sent: done,
                    done,
                    failed: 0,
                    output_tokens: done * 10,
                },
            )
        };
        let span = Duration::from_secs(3);
        let (t, s) = at(0, 0);
        assert_eq!(rates.update(t, &s, span), (0.0, 0.0));
        let (t, s) = at(1, 100);
        assert_eq!(rates.update(t, &s, span), (100.0, 1000.0));
        for (second, done) in [(2, 200), (3, 300), (4, 320), (5, 340)] {
            let (t, s) = at(second, done);
            rates.update(t, &s, span);
        }
        // Over the last 3 s: 300 done at second 3, 360 at second 6.
        let (t, s) = at(6, 360);
        let (req_s, _) = rates.update(t, &s, span);
        assert!((req_s - 20.0).abs() < 1e-9, "{req_s}");
    }
}
