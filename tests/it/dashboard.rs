//! The dashboard over HTTP: login, the session cookie standing in for the
//! bearer token, CSRF protection of cookie-authenticated writes, and the
//! security headers of the page and its assets.

use std::sync::Arc;

use chrono::Utc;
use ordersync::domain::JobKind;
use ordersync::http::dashboard::session::{SessionKeys, COOKIE_NAME};
use ordersync::http::AppState;
use reqwest::header::{HeaderMap, CONTENT_TYPE, SET_COOKIE};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::{serve_api, serve_api_with, two_stores, ApiServer, TestApp, ADMIN_TOKEN};

/// The admin token browser.rs logs in with.
const BROWSER_TOKEN: &str = "dashboard-test-admin-token";

/// The API for browser.rs: [`serve_api_with`] behind [`BROWSER_TOKEN`], as
/// (base URL, server). Kept until browser.rs calls `serve_api` itself.
pub async fn serve_with(app: &TestApp, edit: impl FnOnce(&mut AppState)) -> (String, ApiServer) {
    let api = serve_api_with(app, |state| {
        state.admin_token = Arc::new(SecretString::from(BROWSER_TOKEN));
        edit(state);
    })
    .await;
    (api.base.clone(), api)
}

/// A client that shows us redirects instead of following them, and keeps no
/// cookies: each test sends exactly the cookie it means to.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
        .to_str()
        .unwrap()
}

/// Log in with `token`; the session cookie's value when one was set.
async fn login(base: &str, token: &str) -> (StatusCode, Option<String>, String) {
    let response = client()
        .post(format!("{base}/dashboard/login"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let status = response.status();
    let cookie = response
        .headers()
        .get(SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned())
        .and_then(|v| {
            v.split(';')
                .next()
                .and_then(|pair| pair.strip_prefix(&format!("{COOKIE_NAME}=")))
                .map(str::to_owned)
        });
    (status, cookie, response.text().await.unwrap())
}

async fn csrf_token(base: &str, cookie: &str) -> String {
    let session: Value = client()
        .get(format!("{base}/dashboard/api/session"))
        .header("cookie", format!("{COOKIE_NAME}={cookie}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    session["csrf_token"].as_str().unwrap().to_owned()
}

async fn is_open(app: &TestApp, id: uuid::Uuid) -> bool {
    let resolution: Option<String> =
        sqlx::query_scalar("SELECT resolution FROM dead_letters WHERE job_id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    resolution.is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_needs_a_login_and_everything_it_serves_carries_a_strict_policy() {
    let app = TestApp::spawn(two_stores(1)).await;
    let api = serve_api(&app).await;
    let base = &api.base;
    let http = client();

    let root = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(root.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(root.headers(), "location"), "dashboard/");
    let page = http.get(format!("{base}/dashboard/")).send().await.unwrap();
    assert_eq!(
        page.status(),
        StatusCode::SEE_OTHER,
        "no page without a login"
    );
    assert_eq!(header(page.headers(), "location"), "login");
    assert!(!page.text().await.unwrap().contains("app.js"));

    let login_page = http
        .get(format!("{base}/dashboard/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(login_page.status(), StatusCode::OK);
    let headers = login_page.headers().clone();
    let csp = header(&headers, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header(&headers, "x-frame-options"), "DENY");
    assert_eq!(header(&headers, "referrer-policy"), "no-referrer");
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
    let html = login_page.text().await.unwrap();
    assert!(html.contains(r#"name="token""#), "{html}");
    assert!(!html.contains("<script"), "the login page runs no script");

    for (asset, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let url = format!("{base}/dashboard/assets/{asset}");
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        let headers = response.headers().clone();
        assert_eq!(header(&headers, "content-type"), content_type);
        assert_eq!(header(&headers, "content-security-policy"), csp);
        assert_eq!(header(&headers, "cache-control"), "no-cache");
        let etag = header(&headers, "etag").to_owned();
        assert!(!response.text().await.unwrap().is_empty());
        let again = http
            .get(&url)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{asset}");
    }
    let missing = http
        .get(format!("{base}/dashboard/assets/secrets.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.text().await.unwrap().contains("secrets.txt"));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_gets_no_session_and_the_right_one_gets_a_strict_cookie() {
    let app = TestApp::spawn(two_stores(1)).await;
    let api = serve_api(&app).await;
    let base = &api.base;
    let http = client();

    let (status, cookie, page) = login(base, "wrong-token-value").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(cookie, None, "no session for a wrong token");
    assert!(page.contains("That is not the admin token."), "{page}");
    assert!(
        !page.contains("wrong-token-value"),
        "the token is never echoed"
    );
    let (status, cookie, page) = login(base, "  ").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(cookie, None);
    assert!(page.contains("Enter the admin token."), "{page}");

    let response = http
        .post(format!("{base}/dashboard/login"))
        .form(&[("token", format!("{ADMIN_TOKEN}\n"))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(response.headers(), "location"), "./");
    let set_cookie = header(response.headers(), "set-cookie").to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set_cookie.contains(attribute), "{attribute}: {set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain http on loopback: {set_cookie}"
    );
    let cookie = set_cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches(&format!("{COOKIE_NAME}="))
        .to_owned();
    assert!(
        !cookie.contains(ADMIN_TOKEN),
        "the cookie does not carry the token"
    );
    let with_cookie = format!("{COOKIE_NAME}={cookie}");

    let page = http
        .get(format!("{base}/dashboard/"))
        .header("cookie", &with_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("assets/app.js"));
    let session: Value = http
        .get(format!("{base}/dashboard/api/session"))
        .header("cookie", &with_cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!session["csrf_token"].as_str().unwrap().is_empty());
    let expires: chrono::DateTime<Utc> = session["expires_at"].as_str().unwrap().parse().unwrap();
    let hours = (expires - Utc::now()).num_minutes() as f64 / 60.0;
    assert!((11.9..=12.0).contains(&hours), "a 12 h session: {hours}");
    let listed = http
        .get(format!("{base}/admin/api/jobs/failed"))
        .header("cookie", &with_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.status(),
        StatusCode::OK,
        "the cookie reads the admin API"
    );

    // Our login form posts with Origin: null (the page's policy is
    // no-referrer); a post from another site is refused all the same.
    let own_form = http
        .post(format!("{base}/dashboard/login"))
        .header("origin", "null")
        .header("sec-fetch-site", "same-origin")
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(own_form.status(), StatusCode::SEE_OTHER);
    let cross_site = http
        .post(format!("{base}/dashboard/login"))
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert!(cross_site.headers().get(SET_COOKIE).is_none());

    let behind_tls = http
        .post(format!("{base}/dashboard/login"))
        .header("x-forwarded-proto", "https")
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert!(header(behind_tls.headers(), "set-cookie").contains("; Secure"));

    let logout = http
        .post(format!("{base}/dashboard/logout"))
        .header("cookie", &with_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        header(logout.headers(), "location"),
        "login?reason=logged-out"
    );
    let cleared = header(logout.headers(), "set-cookie");
    assert!(
        cleared.starts_with(&format!("{COOKIE_NAME}=;")) && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secure_cookies_switch_marks_the_cookie_secure_on_plain_http() {
    let app = TestApp::spawn(two_stores(1)).await;
    let api = serve_api_with(&app, |state| state.dashboard.secure_cookies = true).await;
    let base = &api.base;
    let response = client()
        .post(format!("{base}/dashboard/login"))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(header(response.headers(), "set-cookie").contains("; Secure"));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_authenticated_writes_need_the_sessions_csrf_token_and_bearer_ones_do_not() {
    let mut app = TestApp::spawn(two_stores(1)).await;
    app.start_worker(&[JobKind::Noop]);
    let first = app.failed_noop().await;
    let second = app.failed_noop().await;
    let api = serve_api(&app).await;
    let base = &api.base;
    let http = client();
    let (_, cookie, _) = login(base, ADMIN_TOKEN).await;
    let cookie = cookie.unwrap();
    let (_, other_cookie, _) = login(base, ADMIN_TOKEN).await;
    let csrf = csrf_token(base, &cookie).await;
    let other_csrf = csrf_token(base, &other_cookie.unwrap()).await;
    assert_ne!(csrf, other_csrf, "each session has its own token");
    let replay = |extra: &[(&str, &str)]| {
        let mut request = http
            .post(format!("{base}/admin/api/jobs/replay"))
            .header("cookie", format!("{COOKIE_NAME}={cookie}"))
            .json(&json!({"ids": [first]}));
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        request.send()
    };

    let refusals = [
        (vec![], "missing X-CSRF-Token header"),
        (
            vec![("x-csrf-token", "not-the-token")],
            "X-CSRF-Token does not match this session",
        ),
        (
            vec![("x-csrf-token", other_csrf.as_str())],
            "X-CSRF-Token does not match this session",
        ),
        (
            vec![
                ("x-csrf-token", csrf.as_str()),
                ("sec-fetch-site", "cross-site"),
            ],
            "cross-site request refused",
        ),
        (
            vec![
                ("x-csrf-token", csrf.as_str()),
                ("origin", "https://evil.example"),
            ],
            "cross-origin request refused (Origin: https://evil.example)",
        ),
        (
            vec![("x-csrf-token", csrf.as_str()), ("origin", "null")],
            "cross-origin request refused (Origin: null)",
        ),
    ];
    for (headers, expected) in refusals {
        let response = replay(&headers).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{headers:?}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(expected),
            "{headers:?}: {body}"
        );
        assert!(
            is_open(&app, first).await,
            "a refused replay changes nothing"
        );
    }

    let origin = base.clone();
    let accepted = replay(&[
        ("x-csrf-token", csrf.as_str()),
        ("origin", origin.as_str()),
        ("sec-fetch-site", "same-origin"),
    ])
    .await
    .unwrap();
    assert_eq!(accepted.status(), StatusCode::OK);
    let body: Value = accepted.json().await.unwrap();
    assert_eq!(
        body["summary"],
        json!({"resolved": 1, "skipped": 0, "errors": 0})
    );
    assert!(!is_open(&app, first).await);

    let by_bearer = http
        .post(format!("{base}/admin/api/jobs/discard"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"ids": [second]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_bearer.status(),
        StatusCode::OK,
        "no CSRF token for bearer"
    );
    assert!(!is_open(&app, second).await);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_rotated_session_cookies_are_refused() {
    let app = TestApp::spawn(two_stores(1)).await;
    let api = serve_api(&app).await;
    let base = &api.base;
    let http = client();
    let keys = SessionKeys::derive(&SecretString::from(ADMIN_TOKEN));
    let twelve_hours = std::time::Duration::from_secs(12 * 3600);
    let expired = keys
        .issue(Utc::now() - chrono::Duration::hours(13), twelve_hours)
        .cookie_value;
    let rotated = SessionKeys::derive(&SecretString::from("the-previous-admin-token"))
        .issue(Utc::now(), twelve_hours)
        .cookie_value;
    let valid = keys.issue(Utc::now(), twelve_hours).cookie_value;
    let (signed, _mac) = valid.rsplit_once('.').unwrap();
    let forged = format!("{signed}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");

    for (cookie, expected) in [
        (forged.as_str(), "not valid"),
        (rotated.as_str(), "not valid"),
        (expired.as_str(), "the session expired"),
        ("garbage", "malformed"),
    ] {
        let with_cookie = format!("{COOKIE_NAME}={cookie}");
        let api = http
            .get(format!("{base}/admin/api/jobs/failed"))
            .header("cookie", &with_cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), StatusCode::UNAUTHORIZED, "{cookie}");
        let body: Value = api.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(expected),
            "{cookie}: {body}"
        );
        let session = http
            .get(format!("{base}/dashboard/api/session"))
            .header("cookie", &with_cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(session.status(), StatusCode::UNAUTHORIZED, "{cookie}");
        let page = http
            .get(format!("{base}/dashboard/"))
            .header("cookie", &with_cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::SEE_OTHER);
        assert_eq!(header(page.headers(), "location"), "login?reason=expired");
    }
    let ok = http
        .get(format!("{base}/admin/api/jobs/failed"))
        .header("cookie", format!("{COOKIE_NAME}={valid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ok.status(),
        StatusCode::OK,
        "a cookie this token signed is accepted by any replica"
    );
    let bearer = http
        .get(format!("{base}/admin/api/jobs/failed"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        bearer.status(),
        StatusCode::OK,
        "the bearer token still works"
    );
    assert_eq!(
        header(bearer.headers(), CONTENT_TYPE.as_str()),
        "application/json"
    );
    let wrong_bearer_with_cookie = http
        .get(format!("{base}/admin/api/jobs/failed"))
        .bearer_auth("nope")
        .header("cookie", format!("{COOKIE_NAME}={valid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong_bearer_with_cookie.status(),
        StatusCode::UNAUTHORIZED,
        "a wrong bearer token is not rescued by a cookie"
    );
    app.cleanup().await;
}
