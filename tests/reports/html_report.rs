//! `report.html` in a real browser: headless Chromium loads the page from disk, the page's
//! own check script records whether every plot has a size and something drawn and whether
//! anything was fetched, and Chromium's log must show no console message at all (the page
//! logs nothing when it is fine; a script error or a failed check would).
//!
//! The two browser tests are ignored unless asked for (`cargo nextest run --run-ignored only`),
//! so that a machine without Chromium reports them as ignored, with the reason, instead of
//! passing them: `.ci/run` installs Debian's `chromium` and runs them. Asked for, a missing
//! browser fails them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use llm_stress::report::analysis::Thresholds;
use llm_stress::report::html::{self, Extras, Overlay};
use llm_stress::report::{publish, run};

use crate::support::Temp;
use crate::support::runs::full_run;

/// The browsers tried, in order (`LLM_STRESS_CHROMIUM` names another).
const BROWSERS: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

/// How long one page load may take.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// The browser to use; panics, saying what was tried, when there is none.
fn browser() -> PathBuf {
    let named = std::env::var_os("LLM_STRESS_CHROMIUM").map(PathBuf::from);
    named
        .into_iter()
        .chain(BROWSERS.iter().map(PathBuf::from))
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .unwrap_or_else(|| {
            panic!(
                "no headless browser found (tried {}; set LLM_STRESS_CHROMIUM or install \
                 Debian's `chromium`)",
                BROWSERS.join(", ")
            )
        })
}

/// What the browser made of a page.
struct Loaded {
    /// The DOM after the page's scripts ran.
    dom: String,
    /// Console messages Chromium logged.
    console: Vec<String>,
}

/// Loads `page` in headless Chromium and returns the DOM and the console messages.
fn load(browser: &Path, page: &Path, scratch: &Path) -> Loaded {
    let profile = scratch.join("profile");
    let (dom_path, log_path) = (scratch.join("dom.html"), scratch.join("chromium.log"));
    let url = format!("file://{}", page.display());
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", &url])
        .stdout(std::fs::File::create(&dom_path).expect("dom file"))
        .stderr(std::fs::File::create(&log_path).expect("log file"))
        .spawn()
        .expect("start the browser");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser did not finish loading {url} in {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    Loaded {
        dom: std::fs::read_to_string(&dom_path).expect("dom"),
        // `INFO:CONSOLE(12)]` in older Chromium, `INFO:CONSOLE:12]` in newer.
        console: log
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(String::from)
            .collect(),
    }
}

/// The value of an attribute of the page's `<body>`.
fn body_attribute(dom: &str, name: &str) -> Option<String> {
    let body = &dom[dom.find("<body")?..];
    let tag = &body[..body.find('>')?];
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let end = start + tag[start..].find('"')?;
    Some(tag[start..end].to_string())
}

/// A prediction of the fixture run written in `out`: its own trials, 10 % faster and 10 %
/// quicker to answer.
fn a_prediction(out: &Temp) -> Extras {
    let mut trials = run::load(out.path(), None).expect("run").trials;
    for trial in &mut trials {
        if let Some(load) = trial.report.load_mut() {
            load.summary.output_tok_s *= 1.1;
            for latency in [&mut load.summary.ttft_ms, &mut load.summary.tpot_ms] {
                if let Some(d) = latency.as_mut() {
                    d.p50 *= 0.9;
                }
            }
        }
    }
    Extras::predicted(&trials)
}

fn written_report(out: &Temp, extras: &Extras) -> PathBuf {
    full_run(out.path());
    publish::write_run(out.path(), None, &Thresholds::default(), extras)
        .expect("reports")
        .html
}

#[test]
#[ignore = "loads report.html in headless chromium; run with --run-ignored, CI does"]
fn the_report_renders_in_a_browser_with_every_plot_and_no_console_message() {
    let browser = browser();
    let out = Temp::new("html-browser");
    let page = written_report(&out, &Extras::default());
    let html = std::fs::read_to_string(&page).expect("page");
    let plots = html.matches("<figure class=\"plot\"").count();
    assert!(plots >= 20, "{plots} plots");
    let loaded = load(&browser, &page, out.path());
    assert!(loaded.console.is_empty(), "console: {:#?}", loaded.console);
    assert_eq!(
        body_attribute(&loaded.dom, "data-render").as_deref(),
        Some("ok"),
        "the page's render check did not pass"
    );
    assert_eq!(
        body_attribute(&loaded.dom, "data-plots"),
        Some(plots.to_string())
    );
}

#[test]
#[ignore = "loads report.html in headless chromium; run with --run-ignored, CI does"]
fn a_report_with_a_prediction_dashed_over_it_renders_in_a_browser() {
    let browser = browser();
    let out = Temp::new("html-predicted");
    full_run(out.path());
    let extras = a_prediction(&out);
    let page = publish::write_run(out.path(), None, &Thresholds::default(), &extras)
        .expect("reports")
        .html;
    let html = std::fs::read_to_string(&page).expect("page");
    for plot in ["throughput", "ttft", "tpot"] {
        let start = html
            .find(&format!("data-plot=\"knee-{plot}-concurrency\""))
            .unwrap_or_else(|| panic!("no {plot} chart"));
        let figure = &html[start..start + html[start..].find("</figure>").expect("end")];
        assert!(
            figure.contains("predicted: perf closed ISL 128 OSL 64"),
            "{plot}: no prediction"
        );
    }
    let plots = html.matches("<figure class=\"plot\"").count();
    let loaded = load(&browser, &page, out.path());
    assert!(loaded.console.is_empty(), "console: {:#?}", loaded.console);
    assert_eq!(
        body_attribute(&loaded.dom, "data-render").as_deref(),
        Some("ok"),
        "the page's render check did not pass"
    );
    assert_eq!(
        body_attribute(&loaded.dom, "data-plots"),
        Some(plots.to_string())
    );
}

#[test]
#[ignore = "loads report.html in headless chromium; run with --run-ignored, CI does"]
fn the_browser_check_catches_script_errors_and_plots_that_do_not_render() {
    let browser = browser();
    let out = Temp::new("html-broken");
    let page = written_report(&out, &Extras::default());
    let html = std::fs::read_to_string(&page).expect("page");

    let with_error = out.path().join("error.html");
    let broken = html.replacen("<script>", "<script>notAFunction();</script>\n<script>", 1);
    std::fs::write(&with_error, broken).expect("write");
    let loaded = load(&browser, &with_error, out.path());
    assert!(
        loaded.console.iter().any(|l| l.contains("notAFunction")),
        "console: {:#?}",
        loaded.console
    );

    let hidden = out.path().join("hidden.html");
    let broken = html.replacen(
        "</style>",
        "figure.plot svg { display: none; }\n</style>",
        1,
    );
    std::fs::write(&hidden, broken).expect("write");
    let loaded = load(&browser, &hidden, out.path());
    assert_eq!(
        body_attribute(&loaded.dom, "data-render").as_deref(),
        Some("failed")
    );
    assert!(
        loaded.console.iter().any(|l| l.contains("no size")),
        "console: {:#?}",
        loaded.console
    );
}

#[test]
fn the_page_is_self_contained() {
    let out = Temp::new("html-contained");
    let page = written_report(&out, &Extras::default());
    let html = std::fs::read_to_string(&page).expect("page");
    for reference in [
        "src=",
        "href=\"http",
        "href=\"//",
        "url(",
        "@import",
        "@font-face",
    ] {
        assert!(!html.contains(reference), "{reference} in the page");
    }
    assert_eq!(html.matches("<script>").count(), 1);
    assert!(html.contains("<style>"));
}

#[test]
fn the_page_shows_verdicts_first_and_every_kind_of_plot() {
    let out = Temp::new("html-content");
    let page = written_report(&out, &Extras::default());
    let html = std::fs::read_to_string(&page).expect("page");
    let verdicts = html.find("id=\"verdicts\"").expect("verdicts");
    let failed = html
        .find("flaky::isl128_osl64_c4_n40</a>")
        .expect("failed trial");
    let passed = html
        .find("knee::isl128_osl64_c1_n40</a>")
        .expect("passing trial");
    assert!(verdicts < failed && failed < passed);
    for plot in [
        "knee-throughput-concurrency",
        "knee-ttft-concurrency",
        "knee-tpot-concurrency",
        "knee-ttft-isl",
        "knee-ttft-cdf",
        "knee-e2el-cdf",
        "gsm-accuracy-concurrency",
        "-perf--knee--isl128_osl64_c4_n40-timeline",
        "-perf--knee--isl128_osl64_c4_n40-cdf",
        "-perf--knee--isl128_osl64_c4_n40-throughput-over-time",
        "-perf--knee--isl128_osl64_c4_n40-latency-over-time",
    ] {
        assert!(
            html.contains(&format!("data-plot=\"{plot}\"")),
            "no plot {plot}"
        );
    }
    // Two slots: 2 → 4 in flight gains nothing while TTFT rises.
    assert!(
        html.contains("knee: concurrency 4 (perf closed ISL 128 OSL 64)"),
        "no knee"
    );
    // 2,000 requests are drawn as 286 (every 7th).
    assert!(
        html.contains("Request timeline: 286 of 2000 requests (every 7th by send time)"),
        "timeline not downsampled"
    );
    assert!(html.contains("<h3>Endpoints</h3>"));
    assert!(html.contains(">large</td>"));
}

#[test]
fn simulator_curves_go_over_their_case() {
    let out = Temp::new("html-extras");
    let extras = Extras {
        throughput_overlays: vec![Overlay {
            case: "knee".into(),
            label: "simulator: predicted".into(),
            points: vec![(1.0, 150.0), (2.0, 300.0), (8.0, 310.0)],
        }],
        ..Extras::default()
    };
    let page = written_report(&out, &extras);
    let html = std::fs::read_to_string(&page).expect("page");
    assert!(html.contains("simulator: predicted</li>"));
    let gathered = run::load(out.path(), None).expect("run");
    assert_eq!(page, gathered.dir.join(html::REPORT_HTML));
}
