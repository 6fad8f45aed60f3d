//! The operations dashboard: a single page served by `ordersync api` under
//! `/dashboard/`, plus the browser login that stands in for the bearer token.
//!
//! The page is plain HTML, CSS and JavaScript embedded in the binary (no build
//! step, nothing fetched from elsewhere); the script is a set of ES modules the
//! browser loads natively (`SCRIPT_MODULES`). It reads and acts through the
//! same `/admin/api` endpoints scripts use. Browsers authenticate with a session
//! cookie ([`session`]) instead of the bearer token, and every state-changing
//! request they make carries a CSRF token bound to that cookie and must come
//! from the dashboard's own origin ([`authorize_session`]).
//!
//! This module owns the HTML, the assets and the session; it must not reach
//! into the ledger or the queues (the page only talks to `/admin/api`).

pub mod session;

use std::sync::LazyLock;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use sha2::{Digest, Sha256};

use self::session::{cookie_from_headers, Session, SessionKeys, COOKIE_NAME};
use crate::http::{ApiError, AppState};

/// The header carrying the CSRF token on cookie-authenticated writes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The page's sources may come from this origin only: no inline script or
/// style, no framing, nothing fetched elsewhere, forms post back here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// How the dashboard's sessions behave.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Always mark the cookie `Secure`, even when no proxy says the request
    /// came over https.
    pub secure_cookies: bool,
    /// How long a login lasts.
    pub session_ttl: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            secure_cookies: false,
            session_ttl: DEFAULT_SESSION_TTL,
        }
    }
}

/// A working day and then some: an operator logs in once per shift.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The longest session `--session-ttl` accepts.
const MAX_SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// `ordersync api` flags for the dashboard.
#[derive(Debug, Clone, clap::Args)]
pub struct DashboardArgs {
    /// Mark the dashboard's session cookie `Secure` on every response. Without
    /// it the cookie is `Secure` only when a proxy says the request came over
    /// https (`X-Forwarded-Proto: https`); set it when a TLS proxy does not.
    #[arg(
        long,
        env = "ORDERSYNC_SECURE_COOKIES",
        value_parser = clap::builder::BoolishValueParser::new(),
        default_value_t = false
    )]
    pub secure_cookies: bool,
    /// How long a dashboard login lasts (`12h`, `30m`; at most 7 days).
    #[arg(
        long,
        env = "ORDERSYNC_SESSION_TTL",
        default_value = "12h",
        value_parser = parse_session_ttl
    )]
    pub session_ttl: Duration,
}

impl DashboardArgs {
    /// The settings these flags ask for.
    pub fn settings(&self) -> Settings {
        Settings {
            secure_cookies: self.secure_cookies,
            session_ttl: self.session_ttl,
        }
    }
}

fn parse_session_ttl(text: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(text)
        .map_err(|e| format!("'{text}' is not a duration like 12h or 30m: {e}"))?;
    if ttl < Duration::from_secs(60) || ttl > MAX_SESSION_TTL {
        return Err(format!(
            "'{text}' is out of range: a session lasts between 1 minute and 7 days"
        ));
    }
    Ok(ttl)
}

/// The dashboard's routes (merged into the root router).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { see_other("dashboard/") }))
        .route("/dashboard", get(|| async { see_other("dashboard/") }))
        .route("/dashboard/", get(index))
        .route("/dashboard/login", get(login_page).post(login))
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/api/session", get(session_info))
        .route("/dashboard/assets/{name}", get(asset))
        .layer(axum::middleware::map_response(security_headers))
}

/// A 303 to `location`. Locations are relative, so the dashboard also works
/// behind a proxy that mounts it under a path prefix.
fn see_other(location: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The session the request's cookie carries, if it is valid now.
fn current_session(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let value = cookie_from_headers(headers, COOKIE_NAME)?;
    SessionKeys::derive(&state.admin_token)
        .verify(value, chrono::Utc::now())
        .ok()
}

/// Let a cookie-authenticated request through to `/admin/api`: the session
/// must be valid, the request must come from the dashboard's own origin, and
/// a state-changing one must carry the session's CSRF token in
/// `X-CSRF-Token`. Bearer requests never get here.
///
/// # Errors
/// 401 without a valid session; 403 for a cross-site request or a missing or
/// wrong CSRF token.
pub fn authorize_session(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Session, ApiError> {
    let Some(value) = cookie_from_headers(headers, COOKIE_NAME) else {
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or invalid bearer token".into(),
        ));
    };
    let keys = SessionKeys::derive(&state.admin_token);
    let session = keys.verify(value, chrono::Utc::now()).map_err(|e| {
        ApiError(
            StatusCode::UNAUTHORIZED,
            format!("{e}; log in again at /dashboard/"),
        )
    })?;
    same_origin(headers, OpaqueOrigin::Refuse)
        .map_err(|why| ApiError(StatusCode::FORBIDDEN, why))?;
    let changes_state = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state {
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if presented.is_empty() {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                "missing X-CSRF-Token header: a request authenticated by the dashboard's \
                 session cookie that changes state must carry the token from \
                 GET /dashboard/api/session"
                    .into(),
            ));
        }
        if !keys.csrf_matches(&session, presented) {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                "X-CSRF-Token does not match this session; reload the dashboard".into(),
            ));
        }
    }
    Ok(session)
}

/// What `Origin: null` (an opaque origin) means for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpaqueOrigin {
    /// The dashboard's own `fetch` calls send their real origin (they ask for
    /// `referrerPolicy: "same-origin"`), so `null` comes from somewhere else:
    /// a sandboxed frame, a `data:` page.
    Refuse,
    /// Our own login and logout forms post with `Origin: null`, because the
    /// pages are served with `Referrer-Policy: no-referrer`; treat it as no
    /// information and rely on `Sec-Fetch-Site`.
    Tolerate,
}

/// Refuse requests a browser marks as coming from another site, or whose
/// `Origin` is not this server. Requests without either header (older
/// browsers, same-origin GETs) pass: the `SameSite=Strict` cookie and the
/// CSRF token still hold.
fn same_origin(headers: &HeaderMap, opaque: OpaqueOrigin) -> Result<(), String> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("?");
        if !matches!(site, "same-origin" | "none") {
            return Err(format!(
                "cross-site request refused (Sec-Fetch-Site: {site}): \
                 the dashboard's session works only from its own pages"
            ));
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("?");
    if origin == "null" && opaque == OpaqueOrigin::Tolerate {
        return Ok(());
    }
    let refused = || {
        format!(
            "cross-origin request refused (Origin: {origin}): \
             the dashboard's session works only from its own pages"
        )
    };
    let parsed = url::Url::parse(origin).map_err(|_| refused())?;
    let origin_host = parsed.host_str().ok_or_else(refused)?;
    let origin_port = parsed.port_or_known_default();
    // Behind a proxy the browser saw the proxy's host, which the proxy passes
    // on as X-Forwarded-Host (a cross-site page cannot set that header).
    let served_as = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .ok_or_else(refused)?;
    let served =
        url::Url::parse(&format!("{}://{served_as}", parsed.scheme())).map_err(|_| refused())?;
    let same = served
        .host_str()
        .is_some_and(|h| h.eq_ignore_ascii_case(origin_host))
        && served.port_or_known_default() == origin_port;
    if same {
        Ok(())
    } else {
        Err(refused())
    }
}

/// Whether the browser reached us over https: a proxy in front says so, or
/// the operator told us to assume it.
fn over_https(state: &AppState, headers: &HeaderMap) -> bool {
    if state.dashboard.secure_cookies {
        return true;
    }
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split([';', ','])
                .any(|kv| kv.trim().eq_ignore_ascii_case("proto=https"))
        });
    forwarded_proto || forwarded
}

fn session_cookie(value: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .expect("cookie values are base64url and digits")
}

async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match current_session(&state, &headers) {
        Some(_) => html(StatusCode::OK, INDEX_HTML.to_owned()),
        None if cookie_from_headers(&headers, COOKIE_NAME).is_some() => {
            see_other("login?reason=expired")
        }
        None => see_other("login"),
    }
}

/// Why the login page is shown. Only these fixed messages are ever rendered:
/// nothing from the request is echoed into the page.
#[derive(Debug, Clone, Copy)]
enum LoginNotice {
    None,
    Expired,
    LoggedOut,
    Empty,
    WrongToken,
}

impl LoginNotice {
    fn html(self) -> &'static str {
        match self {
            LoginNotice::None => "",
            LoginNotice::Expired => {
                r#"<p class="notice" role="status">Your session ended. Log in again.</p>"#
            }
            LoginNotice::LoggedOut => r#"<p class="notice" role="status">You are logged out.</p>"#,
            LoginNotice::Empty => {
                r#"<p class="notice notice-error" role="alert" id="login-error">Enter the admin token.</p>"#
            }
            LoginNotice::WrongToken => {
                r#"<p class="notice notice-error" role="alert" id="login-error">That is not the admin token.</p>"#
            }
        }
    }
}

fn login_html(status: StatusCode, notice: LoginNotice) -> Response {
    html(status, LOGIN_HTML.replace("<!--notice-->", notice.html()))
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `GET /dashboard/login` query.
#[derive(Debug, serde::Deserialize)]
struct LoginQuery {
    reason: Option<String>,
}

async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    if current_session(&state, &headers).is_some() {
        return see_other("./");
    }
    let notice = match query.reason.as_deref() {
        Some("expired") => LoginNotice::Expired,
        Some("logged-out") => LoginNotice::LoggedOut,
        _ => LoginNotice::None,
    };
    login_html(StatusCode::OK, notice)
}

/// The login form.
#[derive(Debug, serde::Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Form<LoginForm>,
) -> Response {
    if let Err(why) = same_origin(&headers, OpaqueOrigin::Tolerate) {
        tracing::warn!(reason = %why, "dashboard login refused");
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    // Pasted tokens often drag a newline along; tokens never contain spaces.
    let presented = form.token.trim();
    if presented.is_empty() {
        return login_html(StatusCode::BAD_REQUEST, LoginNotice::Empty);
    }
    let keys = SessionKeys::derive(&state.admin_token);
    if !keys.is_admin_token(presented) {
        tracing::warn!(
            forwarded_for = forwarded_for(&headers),
            "dashboard login refused: wrong admin token"
        );
        return login_html(StatusCode::UNAUTHORIZED, LoginNotice::WrongToken);
    }
    let session = keys.issue(chrono::Utc::now(), state.dashboard.session_ttl);
    tracing::info!(
        forwarded_for = forwarded_for(&headers),
        expires_at = %session.expires_at,
        "dashboard login"
    );
    let mut response = see_other("./");
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(
            &session.cookie_value,
            state.dashboard.session_ttl.as_secs(),
            over_https(&state, &headers),
        ),
    );
    response
}

fn forwarded_for(headers: &HeaderMap) -> &str {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(why) = same_origin(&headers, OpaqueOrigin::Tolerate) {
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    let mut response = see_other("login?reason=logged-out");
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie("", 0, over_https(&state, &headers)),
    );
    response
}

/// `GET /dashboard/api/session`: what the page needs to act.
#[derive(Debug, serde::Serialize)]
struct SessionInfo {
    /// Send as `X-CSRF-Token` on POSTs to `/admin/api`.
    csrf_token: String,
    /// When the login ends.
    expires_at: chrono::DateTime<chrono::Utc>,
}

async fn session_info(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<SessionInfo>, ApiError> {
    let session = authorize_session(&state, &Method::GET, &headers)?;
    Ok(Json(SessionInfo {
        csrf_token: SessionKeys::derive(&state.admin_token).csrf_token(&session),
        expires_at: session.expires_at,
    }))
}

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const LOGIN_HTML: &str = include_str!("dashboard/login.html");

/// The page's script: ES modules the browser loads natively, no bundler.
/// `app.js` is the entry (`index.html` loads it as `type="module"`); the
/// others are imported by relative path (`./api.js`), so every module is
/// served flat under `assets/` beside it, each one a separate asset with its
/// own ETag.
const SCRIPT_MODULES: [(&str, &str); 17] = [
    ("app.js", include_str!("dashboard/app.js")),
    ("dom.js", include_str!("dashboard/dom.js")),
    ("format.js", include_str!("dashboard/format.js")),
    ("api.js", include_str!("dashboard/api.js")),
    ("ui.js", include_str!("dashboard/ui.js")),
    ("poll.js", include_str!("dashboard/poll.js")),
    ("resolve.js", include_str!("dashboard/resolve.js")),
    ("values.js", include_str!("dashboard/values.js")),
    ("overview.js", include_str!("dashboard/overview.js")),
    ("accounts.js", include_str!("dashboard/accounts.js")),
    ("pauses.js", include_str!("dashboard/pauses.js")),
    ("failed.js", include_str!("dashboard/failed.js")),
    ("job.js", include_str!("dashboard/job.js")),
    ("orderlist.js", include_str!("dashboard/orderlist.js")),
    ("orders.js", include_str!("dashboard/orders.js")),
    ("stuck.js", include_str!("dashboard/stuck.js")),
    ("texts.js", include_str!("dashboard/texts.js")),
];

/// Browsers run a module only when it is served as JavaScript.
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// An embedded file with its type and validator.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
    etag: String,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    SCRIPT_MODULES
        .map(|(name, body)| (name, JAVASCRIPT, body))
        .into_iter()
        .chain([
            (
                "app.css",
                "text/css; charset=utf-8",
                include_str!("dashboard/app.css"),
            ),
            (
                "favicon.svg",
                "image/svg+xml",
                include_str!("dashboard/favicon.svg"),
            ),
        ])
        .map(|(name, content_type, body)| Asset {
            name,
            content_type,
            body,
            etag: format!(
                "\"{}\"",
                Sha256::digest(body.as_bytes())
                    .iter()
                    .take(12)
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ),
        })
        .collect()
});

/// Assets are public (the login page needs the stylesheet) and hold no data.
/// Browsers revalidate them on every page load (`no-cache` + ETag), so a new
/// release is picked up at once without fingerprinted file names, and the
/// script modules' relative imports need no rewriting. `index.html` preloads
/// every module, so the revalidations go out together rather than one import
/// level at a time.
async fn asset(
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no dashboard asset '{name}'"),
        )
            .into_response();
    };
    let cache = [
        (header::CACHE_CONTROL, "no-cache".to_owned()),
        (header::ETAG, asset.etag.clone()),
    ];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == asset.etag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        StatusCode::OK,
        cache,
        [(header::CONTENT_TYPE, asset.content_type.to_owned())],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn same_origin_requests_pass_and_cross_site_ones_do_not() {
        let check =
            |pairs: &[(&'static str, &str)]| same_origin(&headers(pairs), OpaqueOrigin::Refuse);
        assert!(check(&[]).is_ok());
        assert!(check(&[("sec-fetch-site", "same-origin")]).is_ok());
        assert!(check(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080")
        ])
        .is_ok());
        assert!(check(&[
            ("origin", "https://ops.example.com"),
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-host", "ops.example.com")
        ])
        .is_ok());
        assert!(check(&[
            ("origin", "https://ops.example.com"),
            ("host", "ops.example.com:443")
        ])
        .is_ok());
        let cross = check(&[("sec-fetch-site", "cross-site")]).unwrap_err();
        assert!(cross.contains("Sec-Fetch-Site: cross-site"), "{cross}");
        assert!(check(&[("sec-fetch-site", "same-site")]).is_err());
        for origin in ["https://evil.example", "null", "http://127.0.0.1:9090"] {
            assert!(
                check(&[("origin", origin), ("host", "127.0.0.1:8080")]).is_err(),
                "{origin}"
            );
        }
    }

    #[test]
    fn our_own_forms_may_post_with_an_opaque_origin_but_not_from_another_site() {
        let check =
            |pairs: &[(&'static str, &str)]| same_origin(&headers(pairs), OpaqueOrigin::Tolerate);
        assert!(check(&[("origin", "null"), ("sec-fetch-site", "same-origin")]).is_ok());
        assert!(check(&[("origin", "null"), ("sec-fetch-site", "cross-site")]).is_err());
        assert!(check(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:8080")
        ])
        .is_err());
    }

    /// The modules `body` imports, as written (`./api.js`).
    fn imports(body: &str) -> Vec<&str> {
        body.lines()
            .map(str::trim_start)
            .filter(|line| line.starts_with("import ") || line.starts_with('}'))
            .filter_map(|line| {
                let from = line
                    .find("from \"")
                    .map(|i| i + 6)
                    .or_else(|| line.strip_prefix("import \"").map(|_| 8))?;
                let rest = &line[from..];
                Some(&rest[..rest.find('"')?])
            })
            .collect()
    }

    #[test]
    fn every_import_is_a_served_module_and_the_entry_reaches_them_all() {
        let served = |name: &str| SCRIPT_MODULES.iter().find(|(n, _)| *n == name);
        let mut reached = vec!["app.js"];
        let mut next = 0;
        while let Some(&name) = reached.get(next) {
            next += 1;
            let (_, body) = served(name).unwrap();
            for specifier in imports(body) {
                let target = specifier.strip_prefix("./").unwrap_or_else(|| {
                    panic!("{name} imports '{specifier}': modules import each other as ./name.js")
                });
                assert!(
                    served(target).is_some(),
                    "{name} imports {specifier}, which SCRIPT_MODULES does not serve"
                );
                if !reached.contains(&target) {
                    reached.push(target);
                }
            }
        }
        let mut unreached: Vec<_> = SCRIPT_MODULES
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !reached.contains(n))
            .collect();
        unreached.sort_unstable();
        assert!(
            unreached.is_empty(),
            "served but never imported: {unreached:?}"
        );
        assert_eq!(
            imports("import { h } from \"./dom.js\";\n} from \"./ui.js\";\nimport \"./x.js\";"),
            ["./dom.js", "./ui.js", "./x.js"]
        );
    }

    #[test]
    fn the_page_preloads_every_module_the_entry_imports() {
        let preloaded: Vec<&str> = INDEX_HTML
            .split(r#"<link rel="modulepreload" href="assets/"#)
            .skip(1)
            .map(|rest| &rest[..rest.find('"').unwrap()])
            .collect();
        let mut expected: Vec<&str> = SCRIPT_MODULES
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| *n != "app.js")
            .collect();
        let mut sorted = preloaded.clone();
        sorted.sort_unstable();
        expected.sort_unstable();
        assert_eq!(sorted, expected, "index.html's modulepreload links");
    }

    #[test]
    fn session_ttl_must_be_a_sensible_duration() {
        assert_eq!(
            parse_session_ttl("12h").unwrap(),
            Duration::from_secs(43_200)
        );
        assert!(parse_session_ttl("soon").unwrap_err().contains("'soon'"));
        assert!(parse_session_ttl("5s").unwrap_err().contains("between"));
        assert!(parse_session_ttl("30d").unwrap_err().contains("between"));
    }

    #[test]
    fn every_asset_is_embedded_with_its_type() {
        for name in ["app.js", "app.css", "favicon.svg"] {
            let asset = ASSETS.iter().find(|a| a.name == name).unwrap();
            assert!(!asset.body.is_empty(), "{name}");
        }
        for (name, _) in SCRIPT_MODULES {
            let asset = ASSETS.iter().find(|a| a.name == name).unwrap();
            assert_eq!(asset.content_type, JAVASCRIPT, "{name}");
        }
        assert!(INDEX_HTML.contains(r#"<script type="module" src="assets/app.js"></script>"#));
        assert!(LOGIN_HTML.contains("<!--notice-->"));
        assert!(
            !INDEX_HTML.contains("style=") && !LOGIN_HTML.contains("style="),
            "the CSP forbids inline styles"
        );
    }
}
