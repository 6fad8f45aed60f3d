//! Dashboard sessions: a stateless, unforgeable cookie and the CSRF token
//! bound to it.
//!
//! The cookie is `v1.<expires unix secs>.<nonce>.<mac>`, the MAC an
//! HMAC-SHA256 under a key derived from the admin token. Nothing is stored on
//! the server, so every `ordersync api` replica accepts a session another one
//! issued, and rotating the admin token ends every session at once. A logout
//! clears the browser's cookie; a copied cookie stays valid until it expires,
//! which is why sessions are short (12 h by default) and `HttpOnly`.
//!
//! The CSRF token is an HMAC of the whole cookie value under a second derived
//! key: a page that can read `GET /dashboard/api/session` (same origin only)
//! learns it, a cross-site form cannot.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, TimeZone as _, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Name of the session cookie.
pub const COOKIE_NAME: &str = "ordersync_session";

/// Format tag leading every cookie value; bump it to end all sessions of an
/// older format.
const VERSION: &str = "v1";

/// Keys derived from the admin token. Never printed.
#[derive(Clone)]
pub struct SessionKeys {
    /// Signs cookies.
    cookie_key: [u8; 32],
    /// Derives CSRF tokens from cookies.
    csrf_key: [u8; 32],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys([redacted])")
    }
}

/// A verified (or freshly issued) session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The cookie's value, as the browser sends it back.
    pub cookie_value: String,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

/// Why a cookie was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not of our format (or of an older one).
    #[error("the session cookie is malformed")]
    Malformed,
    /// The MAC does not match: forged, or signed with a previous admin token.
    #[error("the session cookie is not valid (forged, or the admin token changed)")]
    BadSignature,
    /// Past its expiry.
    #[error("the session expired")]
    Expired,
}

impl SessionKeys {
    /// Derive the keys from the admin token.
    pub fn derive(admin_token: &SecretString) -> Self {
        let token = admin_token.expose_secret().as_bytes();
        Self {
            cookie_key: hmac(token, b"ordersync dashboard session cookie v1"),
            csrf_key: hmac(token, b"ordersync dashboard csrf token v1"),
        }
    }

    /// A new session valid from `now` for `ttl`.
    pub fn issue(&self, now: DateTime<Utc>, ttl: std::time::Duration) -> Session {
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let expires_at = now
            .checked_add_signed(ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let expires_secs = expires_at.timestamp();
        // A random nonce makes every login's cookie (and CSRF token) distinct,
        // even two in the same second.
        let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let signed = format!("{VERSION}.{expires_secs}.{nonce}");
        let mac = URL_SAFE_NO_PAD.encode(hmac(&self.cookie_key, signed.as_bytes()));
        Session {
            cookie_value: format!("{signed}.{mac}"),
            // What `verify` will read back: whole seconds.
            expires_at: Utc
                .timestamp_opt(expires_secs, 0)
                .single()
                .unwrap_or(expires_at),
        }
    }

    /// Check a cookie value at `now`.
    ///
    /// # Errors
    /// The value is malformed, its signature does not match, or it expired.
    pub fn verify(&self, cookie_value: &str, now: DateTime<Utc>) -> Result<Session, SessionError> {
        let (signed, mac) = cookie_value
            .rsplit_once('.')
            .ok_or(SessionError::Malformed)?;
        let mut parts = signed.split('.');
        let (Some(VERSION), Some(expires), Some(_nonce), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SessionError::Malformed);
        };
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| SessionError::Malformed)?;
        let mut expected =
            HmacSha256::new_from_slice(&self.cookie_key).expect("HMAC takes keys of any length");
        expected.update(signed.as_bytes());
        expected
            .verify_slice(&mac)
            .map_err(|_| SessionError::BadSignature)?;
        // Only a value we signed gets this far, so the number parses unless
        // the format changed under us.
        let expires_at = expires
            .parse::<i64>()
            .ok()
            .and_then(|secs| Utc.timestamp_opt(secs, 0).single())
            .ok_or(SessionError::Malformed)?;
        if expires_at <= now {
            return Err(SessionError::Expired);
        }
        Ok(Session {
            cookie_value: cookie_value.to_owned(),
            expires_at,
        })
    }

    /// The CSRF token bound to `session`.
    pub fn csrf_token(&self, session: &Session) -> String {
        URL_SAFE_NO_PAD.encode(hmac(&self.csrf_key, session.cookie_value.as_bytes()))
    }

    /// Whether `presented` is `session`'s CSRF token (constant time).
    pub fn csrf_matches(&self, session: &Session, presented: &str) -> bool {
        let expected = self.csrf_token(session);
        bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// Whether `presented` is the admin token these keys came from, without
    /// holding the token: compares the keys it derives (constant time).
    pub fn is_admin_token(&self, presented: &str) -> bool {
        let candidate = hmac(
            presented.as_bytes(),
            b"ordersync dashboard session cookie v1",
        );
        bool::from(candidate.ct_eq(&self.cookie_key))
    }
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The value of cookie `name` among the request's `Cookie` headers.
pub fn cookie_from_headers<'h>(headers: &'h axum::http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn keys(token: &str) -> SessionKeys {
        SessionKeys::derive(&SecretString::from(token))
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn an_issued_session_verifies_until_it_expires() {
        let k = keys("tok");
        let now = Utc::now();
        let s = k.issue(now, HOUR);
        assert_eq!(k.verify(&s.cookie_value, now).unwrap(), s);
        assert_eq!(
            k.verify(&s.cookie_value, now + chrono::Duration::minutes(59))
                .unwrap()
                .expires_at,
            s.expires_at
        );
        assert_eq!(
            k.verify(&s.cookie_value, now + chrono::Duration::minutes(61)),
            Err(SessionError::Expired)
        );
    }

    #[test]
    fn a_tampered_expiry_or_a_rotated_token_is_refused() {
        let k = keys("tok");
        let now = Utc::now();
        let s = k.issue(now, HOUR);
        let parts: Vec<&str> = s.cookie_value.split('.').collect();
        let later = format!(
            "{}.{}.{}.{}",
            parts[0],
            parts[1].parse::<i64>().unwrap() + 86_400,
            parts[2],
            parts[3]
        );
        assert_eq!(k.verify(&later, now), Err(SessionError::BadSignature));
        assert_eq!(
            keys("new-token").verify(&s.cookie_value, now),
            Err(SessionError::BadSignature)
        );
        for junk in ["", "v1", "v1.1.2", "v0.1.2.3", "v1.x.y.!!", "v1.1.2.3.4"] {
            assert!(k.verify(junk, now).is_err(), "{junk}");
        }
    }

    #[test]
    fn csrf_tokens_are_bound_to_one_session() {
        let k = keys("tok");
        let now = Utc::now();
        let a = k.issue(now, HOUR);
        let b = k.issue(now, HOUR);
        assert_ne!(a.cookie_value, b.cookie_value, "every login is distinct");
        let token = k.csrf_token(&a);
        assert!(k.csrf_matches(&a, &token));
        assert!(!k.csrf_matches(&b, &token));
        assert!(!k.csrf_matches(&a, ""));
        assert!(!keys("other").csrf_matches(&a, &token));
    }

    #[test]
    fn the_admin_token_is_recognised_and_nothing_else() {
        let k = keys("s3cret-admin-token");
        assert!(k.is_admin_token("s3cret-admin-token"));
        assert!(!k.is_admin_token("s3cret-admin-toke"));
        assert!(!k.is_admin_token(""));
        assert!(!format!("{k:?}").contains("s3cret"));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = axum::http::HeaderMap::new();
        headers.append("cookie", "a=1; ordersync_session=v1.2.3.4".parse().unwrap());
        headers.append("cookie", "b=2".parse().unwrap());
        assert_eq!(cookie_from_headers(&headers, COOKIE_NAME), Some("v1.2.3.4"));
        assert_eq!(cookie_from_headers(&headers, "b"), Some("2"));
        assert_eq!(cookie_from_headers(&headers, "c"), None);
    }
}
