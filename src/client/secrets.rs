//! The secrets a client sends (its API key, the values of its configured headers), and
//! their removal from everything the server sends back that a report keeps: error excerpts,
//! generated text, server logs quoted in reasons.
//!
//! Redaction comes before any cut: a key echoed across the 512-byte excerpt boundary would
//! otherwise leave most of its characters behind.

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Header values shorter than this are not treated as secrets (`Accept: */*`, `X-Debug: 1`
/// would otherwise blank out every `1` in a body).
pub const MIN_SECRET_LEN: usize = 6;

/// The secrets of one client, longest first (so a secret that contains another is replaced
/// whole).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// The API key (any length but empty) and every header value of at least
    /// [`MIN_SECRET_LEN`] bytes.
    pub fn new<'a>(
        api_key: Option<&str>,
        header_values: impl IntoIterator<Item = &'a str>,
    ) -> Secrets {
        let mut all: Vec<String> = api_key
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .into_iter()
            .chain(
                header_values
                    .into_iter()
                    .map(str::trim)
                    .filter(|v| v.len() >= MIN_SECRET_LEN)
                    .map(str::to_string),
            )
            .collect();
        all.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        all.dedup();
        Secrets(all)
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every secret replaced by [`REDACTED`]; borrowed when none occurs.
    pub fn redact<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        if !self.0.iter().any(|s| text.contains(s.as_str())) {
            return std::borrow::Cow::Borrowed(text);
        }
        let mut out = text.to_string();
        for secret in &self.0 {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        std::borrow::Cow::Owned(out)
    }

    /// Redacts `text` in place.
    pub fn redact_in_place(&self, text: &mut String) {
        if let std::borrow::Cow::Owned(redacted) = self.redact(text) {
            *text = redacted;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_long_header_values_are_replaced_short_values_are_not() {
        let secrets = Secrets::new(Some("sk-abcdef"), ["tenant-secret-9", "1"]);
        let text = "auth Bearer sk-abcdef, X-Tenant tenant-secret-9, X-Debug 1";
        assert_eq!(
            secrets.redact(text),
            "auth Bearer [REDACTED], X-Tenant [REDACTED], X-Debug 1"
        );
        assert!(matches!(
            secrets.redact("clean"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_secret_inside_another_is_replaced_with_the_longer_one() {
        let secrets = Secrets::new(Some("abcdef"), ["abcdef-and-more"]);
        assert_eq!(
            secrets.redact("x abcdef-and-more y abcdef"),
            "x [REDACTED] y [REDACTED]"
        );
    }
}
