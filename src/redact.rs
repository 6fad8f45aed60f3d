//! Keeping secrets out of what we print, log and store.
//!
//! [`redact_credentials`] is applied where provider text enters our errors
//! (`providers::transport::Account::error`), so a provider that echoes a
//! request back (`Authorization: Basic ...`, `?consumer_key=...`, a JSON
//! `"api_key"`) never puts a credential into a dead letter, a job run, a
//! log line, the CLI, the admin API or the dashboard.

use std::sync::LazyLock;

use regex::{Captures, Regex};

/// What replaces a credential.
pub const REDACTED: &str = "[REDACTED]";

/// Header-like names whose whole value is a credential, followed by `:` or
/// `=` (a header echoed as text) or `": "` (echoed as JSON).
static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)\b(proxy-authorization|authorization|x-api-key|api-key|x-auth-token|x-wc-webhook-signature|cookie|set-cookie)("?\s*[:=]\s*"?)([^\r\n"]*)"#,
    )
    .expect("valid pattern")
});

/// `Basic`, `Bearer`, `Token` (Maystro, ERPNext) and `Digest` credentials.
static SCHEME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(basic|bearer|token|digest)(\s+)([A-Za-z0-9+/=._~:-]+)")
        .expect("valid pattern")
});

/// A JSON string field whose name says it holds a credential.
static JSON_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)("[a-z0-9_.-]*(?:key|token|secret|password|passwd|signature|authorization|credential)[a-z0-9_.-]*"\s*:\s*")((?:[^"\\]|\\.)*)(")"#,
    )
    .expect("valid pattern")
});

/// A query or form parameter whose name says it holds a credential.
static PARAMETER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)([a-z0-9_.-]*(?:key|token|secret|password|passwd|pwd|signature|credential)[a-z0-9_.-]*=)([^&\s"'<>,;()\[\]{}]+)"#,
    )
    .expect("valid pattern")
});

/// What follows the credential in a header value: after an optional scheme
/// word (`Basic`, `Token`, ...) and the token itself.
fn header_value_rest(value: &str) -> &str {
    let trimmed = value.trim_start();
    let token_end = |s: &str| {
        s.find(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '\''))
            .unwrap_or(s.len())
    };
    let first = token_end(trimmed);
    let after_first = &trimmed[first..];
    let scheme = ["basic", "bearer", "token", "digest", "apikey"]
        .contains(&trimmed[..first].to_ascii_lowercase().as_str());
    if scheme && !after_first.trim_start().is_empty() {
        let second = after_first.trim_start();
        &second[token_end(second)..]
    } else {
        after_first
    }
}

/// Whether a word after `Basic`/`Bearer`/`Token` looks like a credential
/// rather than prose ("token expired" stays readable).
fn looks_like_credential(word: &str) -> bool {
    let long = word.chars().count() >= 20;
    let mixed = word.chars().count() >= 8
        && (word.chars().any(|c| c.is_ascii_digit()) || word.contains(['+', '/', '=', ':', '_']));
    long || mixed
}

/// `text` with every credential it carries replaced by [`REDACTED`]:
/// `Authorization` and similar headers (as text or JSON), `Basic`/`Bearer`/
/// `Token` values, JSON fields and query parameters named like a key, token,
/// secret, password or signature, and each of `secrets` (raw or
/// URL-encoded) wherever it appears.
pub fn redact_credentials(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        for form in [*secret, encoded.as_str()] {
            if out.contains(form) {
                out = out.replace(form, REDACTED);
            }
        }
    }
    let out = HEADER.replace_all(&out, |c: &Captures<'_>| {
        let value = &c[3];
        if value.trim().is_empty() {
            return c[0].to_owned();
        }
        // A cookie header is a list: all of it goes. Otherwise the value is
        // an optional scheme and one credential; what follows is kept.
        let rest = if c[1].to_ascii_lowercase().contains("cookie") {
            ""
        } else {
            header_value_rest(value)
        };
        format!("{}{}{REDACTED}{rest}", &c[1], &c[2])
    });
    let out = SCHEME.replace_all(&out, |c: &Captures<'_>| {
        if looks_like_credential(&c[3]) {
            format!("{}{}{REDACTED}", &c[1], &c[2])
        } else {
            c[0].to_owned()
        }
    });
    let out = JSON_FIELD.replace_all(&out, |c: &Captures<'_>| {
        if c[2].is_empty() {
            c[0].to_owned()
        } else {
            format!("{}{REDACTED}{}", &c[1], &c[3])
        }
    });
    PARAMETER
        .replace_all(&out, |c: &Captures<'_>| {
            if &c[2] == REDACTED {
                c[0].to_owned()
            } else {
                format!("{}{REDACTED}", &c[1])
            }
        })
        .into_owned()
}

/// `scheme://user:password@host/...` with the password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparseable URL>".into(),
    }
}

/// Hide a phone number but its international prefix and last digits, so an
/// operator can match it with a customer ("ends in 4567?") without the trace
/// carrying the number: `+213551234567` -> `+213•••••4567`, `0551234567` ->
/// `••••••4567`. Separators are dropped; at least four digits always stay
/// hidden, and a short number shows at most its last two.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let n = digits.len();
    let tail = match n {
        0..=5 => 0,
        6..=7 => 2,
        _ => 4,
    };
    let international = phone.trim_start().starts_with('+');
    let head = if international && n >= tail + 3 + 4 {
        3
    } else {
        0
    };
    let mut masked = String::with_capacity(n * 3 + 1);
    if international {
        masked.push('+');
    }
    masked.extend(&digits[..head]);
    masked.extend(std::iter::repeat_n('•', n - head - tail));
    masked.extend(&digits[n - tail..]);
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_passwords() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }

    #[test]
    fn phones_keep_only_their_prefix_and_last_digits() {
        assert_eq!(mask_phone("+213551234567"), "+213•••••4567");
        assert_eq!(mask_phone("+213 551 23 45 67"), "+213•••••4567");
        assert_eq!(mask_phone("0551234567"), "••••••4567");
        assert_eq!(mask_phone("1234567"), "•••••67");
        assert_eq!(mask_phone("12345"), "•••••");
        assert_eq!(mask_phone(""), "");
        for phone in ["+213551234567", "0551234567", "+1 415 555 0100", "1234567"] {
            let masked = mask_phone(phone);
            let shown = masked.chars().filter(char::is_ascii_digit).count();
            let all = phone.chars().filter(char::is_ascii_digit).count();
            assert!(all - shown >= 4, "{phone} -> {masked}: too little hidden");
        }
    }

    #[test]
    fn echoed_authorization_headers_lose_their_value() {
        let echoed = "401 Unauthorized. Request headers: Authorization: Basic Y2tfbGl2ZTpjc19saXZl\r\nHost: shop";
        let clean = redact_credentials(echoed, &[]);
        assert_eq!(
            clean,
            "401 Unauthorized. Request headers: Authorization: [REDACTED]\r\nHost: shop"
        );
        let json = r#"{"headers":{"Authorization":"Token 6f1c9a0b2d3e4f5a6b7c8d9e0f1a2b3c","Accept":"*/*"}}"#;
        assert_eq!(
            redact_credentials(json, &[]),
            r#"{"headers":{"Authorization":"[REDACTED]","Accept":"*/*"}}"#
        );
    }

    #[test]
    fn scheme_values_are_redacted_but_prose_is_kept() {
        assert_eq!(
            redact_credentials(
                "sent Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig and token k3y:s3cr3t",
                &[]
            ),
            "sent Bearer [REDACTED] and token [REDACTED]"
        );
        assert_eq!(
            redact_credentials("the token expired; Basic auth failed", &[]),
            "the token expired; Basic auth failed"
        );
    }

    #[test]
    fn credential_parameters_and_json_fields_are_redacted() {
        assert_eq!(
            redact_credentials(
                "GET /orders?consumer_key=ck_123&consumer_secret=cs_456&page=2 failed; key=abc",
                &[]
            ),
            "GET /orders?consumer_key=[REDACTED]&consumer_secret=[REDACTED]&page=2 failed; key=[REDACTED]"
        );
        assert_eq!(
            redact_credentials(
                r#"{"api_key": "k-1", "api_secret":"s\"2", "status": "denied", "token": ""}"#,
                &[]
            ),
            r#"{"api_key": "[REDACTED]", "api_secret":"[REDACTED]", "status": "denied", "token": ""}"#
        );
    }

    #[test]
    fn configured_secrets_are_redacted_raw_and_url_encoded() {
        assert_eq!(
            redact_credentials(
                "invalid api key k+y/9 z (sent as k%2By%2F9+z)",
                &["k+y/9 z", ""]
            ),
            "invalid api key [REDACTED] (sent as [REDACTED])"
        );
    }

    #[test]
    fn text_without_credentials_is_unchanged() {
        let plain = "woocommerce_rest_shop_order_invalid_id: Invalid ID. (HTTP 404)";
        assert_eq!(redact_credentials(plain, &["secret-value"]), plain);
    }
}
