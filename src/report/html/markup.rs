//! HTML text: escaping, tables and status badges.

use crate::judge::Status;
use crate::report::TrialReport;
use crate::report::analysis::Level;

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A table whose header cells are text and whose body cells are HTML (escape data first).
/// Columns listed in `numeric` are right-aligned.
pub fn table(header: &[&str], numeric: &[usize], rows: &[Vec<String>]) -> String {
    let class = |i: usize| {
        if numeric.contains(&i) {
            " class=\"num\""
        } else {
            ""
        }
    };
    let mut out = String::from("<div class=\"scroll\"><table><thead><tr>");
    for (i, h) in header.iter().enumerate() {
        out.push_str(&format!("<th{}>{}</th>", class(i), escape(h)));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            out.push_str(&format!("<td{}>{cell}</td>", class(i)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>\n");
    out
}

/// An analysis level as a coloured badge.
pub fn level_badge(level: Level) -> String {
    let class = match level {
        Level::NotApplicable => "na",
        Level::Pass => "pass",
        Level::Warning => "warning",
        Level::Critical => "critical",
    };
    format!("<span class=\"badge {class}\">{}</span>", level.as_str())
}

/// A trial's verdict as a coloured badge; a FAIL the case expects is marked as expected.
pub fn verdict_badge(report: &TrialReport) -> String {
    let status = report.verdict.status;
    let class = match (!report.passed(), status) {
        (true, _) => "critical",
        (false, Status::Fail) => "expected",
        (false, Status::Pass) => "pass",
        (false, Status::NotApplicable) => "na",
    };
    let text = if report.expects_failure() {
        format!("{} (expected FAIL)", status.as_str())
    } else {
        status.as_str().to_string()
    };
    format!("<span class=\"badge {class}\">{}</span>", escape(&text))
}

/// A string usable in an HTML id: `[A-Za-z0-9_-]`, anything else as `-`.
pub fn id(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::sample_report;

    #[test]
    fn text_is_escaped_for_content_and_attributes() {
        assert_eq!(
            escape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn verdicts_say_whether_a_failure_was_expected() {
        let mut report = sample_report();
        assert!(verdict_badge(&report).contains("critical\">FAIL<"));
        report.meta.expect = crate::case::Expect::Fail;
        assert!(verdict_badge(&report).contains("expected\">FAIL (expected FAIL)<"));
    }

    #[test]
    fn ids_keep_only_safe_characters() {
        assert_eq!(id("[perf] a::b c"), "-perf--a--b-c");
    }
}
