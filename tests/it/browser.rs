//! The dashboard in a real headless Chromium, driven over WebDriver: log in,
//! see a failed group, replay it, see it succeed.
//!
//! Needs `chromedriver` (Debian: `chromium-driver`; `deploy/ensure-browser.sh`
//! installs it, and `just test` runs that first). Without it the test fails
//! when `CI` is set, and is skipped, loudly, otherwise. Set
//! `ORDERSYNC_SCREENSHOTS=<dir>` to keep a screenshot of every step; a failed
//! run always leaves one (and the page's HTML) in the target directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use ordersync::domain::JobKind;
use ordersync::queue::NewJob;
use secrecy::ExposeSecret;

use crate::dashboard::serve_with;
use crate::helpers::{two_stores, TestApp, DEADLINE};

const TOKEN: &str = "dashboard-test-admin-token";
const FAILED_ORDERS: usize = 3;

/// The chromedriver binary: `$CHROMEDRIVER`, else Debian's path.
fn chromedriver_path() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    path.is_file().then_some(path)
}

/// A chromedriver process of our own, on a free port, killed on drop.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    async fn start(binary: &Path) -> anyhow::Result<Self> {
        // Ask the OS for a free port, then hand it to chromedriver (which
        // cannot report a port it picked itself).
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http
                .get(format!("{}/status", driver.url))
                .send()
                .await
                .ok()
                .map(|r| r.json::<serde_json::Value>());
            if let Some(body) = ready {
                if body.await.ok().and_then(|b| b["value"]["ready"].as_bool()) == Some(true) {
                    return Ok(driver);
                }
            }
            ensure!(
                Instant::now() < deadline,
                "chromedriver did not answer on {} within 30 s",
                driver.url
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new headless Chromium session with a throwaway profile.
    async fn browser(&self, profile: &Path) -> anyhow::Result<Client> {
        let mut options = serde_json::json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1440,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        });
        if let Some(chromium) = std::env::var_os("CHROMIUM") {
            options["binary"] = chromium.to_string_lossy().into_owned().into();
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .context("starting a headless Chromium session through chromedriver")
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `check` until it yields a value; fail after the deadline, saying
/// what we waited for and what we last saw.
async fn until<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Result<T, String>>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        match check().await? {
            Ok(value) => return Ok(value),
            Err(seen) => ensure!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last saw: {seen}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Run `act` on the first element matching `css` (`None` when there is
/// none). The dashboard redraws a table when a refresh brings new data, so
/// an element found a moment ago may be gone: find it again and retry.
async fn on_element<T, F, Fut>(c: &Client, css: &str, act: F) -> anyhow::Result<Option<T>>
where
    F: Fn(Element) -> Fut,
    Fut: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        let element = match c.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) if e.is_no_such_element() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match act(element).await {
            Ok(value) => return Ok(Some(value)),
            Err(e) if e.is_stale_element_reference() && Instant::now() < deadline => continue,
            Err(e) => return Err(anyhow::Error::from(e).context(format!("on {css}"))),
        }
    }
}

/// The text of the first element matching `css`, if there is one.
async fn text_of(c: &Client, css: &str) -> anyhow::Result<Option<String>> {
    on_element(c, css, |e| async move { e.text().await }).await
}

async fn click(c: &Client, css: &str) -> anyhow::Result<()> {
    on_element(c, css, |e| async move { e.click().await })
        .await?
        .with_context(|| format!("nothing to click at {css}"))
}

async fn type_into(c: &Client, css: &str, text: &str) -> anyhow::Result<()> {
    on_element(c, css, |e| async move { e.send_keys(text).await })
        .await?
        .with_context(|| format!("nothing to type into at {css}"))
}

/// Wait until an element matching `css` shows text containing `expected`.
async fn until_text(c: &Client, css: &str, expected: &str) -> anyhow::Result<String> {
    until(&format!("'{expected}' in {css}"), || async {
        Ok(match text_of(c, css).await? {
            Some(text) if text.contains(expected) => Ok(text),
            other => Err(format!("{other:?}")),
        })
    })
    .await
}

struct Screenshots(Option<PathBuf>);

impl Screenshots {
    async fn take(&self, c: &Client, step: &str) -> anyhow::Result<()> {
        if let Some(dir) = &self.0 {
            std::fs::create_dir_all(dir)?;
            std::fs::write(dir.join(format!("{step}.png")), c.screenshot().await?)?;
        }
        Ok(())
    }
}

/// The ERP's API key, which the simulator can revoke and restore.
fn erp_key(app: &TestApp) -> String {
    app.config.erp_key.expose_secret().to_owned()
}

/// `FAILED_ORDERS` payable BETA orders whose invoices failed for good while
/// the ERP refused our (revoked) key: one cause, so one group. (An ERP that
/// answers random 500s and 503s would split them into two groups.)
async fn failed_invoices(app: &TestApp) -> Vec<String> {
    let refs: Vec<String> = (0..FAILED_ORDERS)
        .map(|_| {
            format!(
                "BETA-{}",
                app.sim.add_shop_order("BETA", "cod", "processing", false)["number"]
                    .as_str()
                    .unwrap()
            )
        })
        .collect();
    let import = app
        .enqueue_one(NewJob::for_store(JobKind::ImportOrders, "BETA"))
        .await;
    assert_eq!(
        app.wait_final(import).await.last().unwrap().outcome,
        "succeeded"
    );
    app.sim.revoke_key(&erp_key(app));
    let jobs = app
        .enqueue(
            refs.iter()
                .map(|r| NewJob::for_order(JobKind::CreateInvoice, "BETA", r))
                .collect(),
        )
        .await;
    for job in jobs {
        assert_eq!(
            app.wait_final(job.job_id).await.last().unwrap().outcome,
            "failed"
        );
    }
    refs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_logs_in_replays_a_failed_group_and_sees_it_succeed() {
    let Some(chromedriver) = chromedriver_path() else {
        let why = "chromedriver is not installed (looked at $CHROMEDRIVER, then \
                   /usr/bin/chromedriver); run deploy/ensure-browser.sh";
        if std::env::var_os("CI").is_some() {
            panic!("the dashboard's browser test must run in CI: {why}");
        }
        eprintln!(
            "\n\n*** SKIPPED the dashboard browser test: {why} ***\n*** (with CI set, this is a failure) ***\n"
        );
        return;
    };
    let mut app = TestApp::spawn(two_stores(1)).await;
    app.start_worker(&[]);
    let refs = failed_invoices(&app).await;
    let (base, _stop) = serve_with(&app, |_| {}).await;

    let driver = Chromedriver::start(&chromedriver).await.unwrap();
    let profile = tempfile::tempdir().unwrap();
    let c = driver.browser(profile.path()).await.unwrap();
    let shots = Screenshots(std::env::var_os("ORDERSYNC_SCREENSHOTS").map(PathBuf::from));
    let outcome = operator_session(&c, &app, &base, &shots).await;
    if let Err(e) = &outcome {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let _ = std::fs::write(
            dir.join("browser-failure.png"),
            c.screenshot().await.unwrap_or_default(),
        );
        let _ = std::fs::write(
            dir.join("browser-failure.html"),
            c.source().await.unwrap_or_default(),
        );
        eprintln!(
            "browser test failed: {e:#}\nscreenshot and page: {}/browser-failure.{{png,html}}",
            dir.display()
        );
    }
    let _ = c.close().await;
    drop(driver);
    outcome.unwrap();

    for r in &refs {
        assert_eq!(app.sim.invoice_count(r), 1, "one invoice for {r}");
    }
    let resolved_by: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT resolved_by FROM dead_letters WHERE resolution = 'replayed'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(resolved_by, vec!["api:dashboard"]);
    app.cleanup().await;
}

async fn operator_session(
    c: &Client,
    app: &TestApp,
    base: &str,
    shots: &Screenshots,
) -> anyhow::Result<()> {
    // Not logged in: the dashboard sends us to the login page.
    c.goto(&format!("{base}/")).await?;
    let url = c.current_url().await?;
    ensure!(url.path() == "/dashboard/login", "landed on {url}");
    shots.take(c, "1-login").await?;

    // A wrong token: a clear message, no session.
    type_into(c, "#token", "not-the-token").await?;
    click(c, "#login-submit").await?;
    until_text(c, "#login-error", "That is not the admin token").await?;
    ensure!(
        !c.source().await?.contains("not-the-token"),
        "the page echoes the wrong token"
    );
    let cookies = c.get_all_cookies().await?;
    ensure!(cookies.is_empty(), "a wrong token got cookies: {cookies:?}");
    shots.take(c, "2-wrong-token").await?;

    // The right token: the dashboard, and the failed group with its count.
    type_into(c, "#token", TOKEN).await?;
    click(c, "#login-submit").await?;
    until("the dashboard after login", || async {
        let url = c.current_url().await?;
        Ok(if url.path() == "/dashboard/" {
            Ok(())
        } else {
            Err(url.to_string())
        })
    })
    .await?;
    let session = c.get_named_cookie("ordersync_session").await?;
    ensure!(
        session.http_only() == Some(true),
        "the session cookie is HttpOnly"
    );
    until_text(c, "#nav-failed-count", &FAILED_ORDERS.to_string()).await?;
    shots.take(c, "3-overview").await?;

    // Pause the first store from the overview: listed with who and why, in
    // Redis for every worker; then resume it from its row.
    type_into(c, "#pause-reason", "stock audit").await?;
    click(c, "#pause-submit").await?;
    until_text(c, "#flash .flash-text", "Paused store").await?;
    let row = until_text(c, "#pauses-list tr[data-pause]", "stock audit").await?;
    ensure!(row.contains("api:dashboard"), "{row}");
    let paused =
        ordersync::queue::pause::list(&mut crate::helpers::redis().await, &app.namespace).await?;
    ensure!(paused.len() == 1, "{paused:?}");
    shots.take(c, "3b-paused").await?;
    click(c, "#pauses-list button.resume").await?;
    until_text(c, "#pauses-none", "Nothing is paused").await?;
    let paused =
        ordersync::queue::pause::list(&mut crate::helpers::redis().await, &app.namespace).await?;
    ensure!(paused.is_empty(), "still paused: {paused:?}");

    // The orders browser lists the store's orders, each linking to its trace.
    let reference: String =
        sqlx::query_scalar("SELECT reference FROM orders ORDER BY reference LIMIT 1")
            .fetch_one(&app.db)
            .await?;
    click(c, r#"a[data-nav="orders"]"#).await?;
    until_text(c, "#orders-list table.orders-list tbody", &reference).await?;
    shots.take(c, "3c-orders").await?;
    click(c, r#"a[data-nav="failed"]"#).await?;
    let group = r#"tr.group-row"#;
    until_text(
        c,
        &format!("{group} td.group-count"),
        &FAILED_ORDERS.to_string(),
    )
    .await?;
    let row = text_of(c, group).await?.unwrap_or_default();
    ensure!(row.contains("create_invoice"), "{row}");
    ensure!(row.contains("unauthorized"), "{row}");
    shots.take(c, "4-failed-group").await?;

    // Discard, then think better of it: the dialog's Cancel changes nothing.
    click(c, &format!("{group} button.discard-group")).await?;
    until_text(
        c,
        "#confirm-dialog[open] #confirm-title",
        &format!("Discard {FAILED_ORDERS} failed jobs?"),
    )
    .await?;
    click(c, "#confirm-cancel").await?;
    until("the dialog to close", || async {
        Ok(match text_of(c, "#confirm-dialog[open]").await? {
            None => Ok(()),
            Some(text) => Err(text),
        })
    })
    .await?;
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dead_letters WHERE resolution IS NULL")
            .fetch_one(&app.db)
            .await?;
    ensure!(
        open == FAILED_ORDERS as i64,
        "cancel discarded something: {open} open"
    );

    // The ERP takes our key again: replay the group, confirming in the dialog.
    app.sim.restore_key(&erp_key(app));
    click(c, &format!("{group} button.replay-group")).await?;
    let title = until_text(c, "#confirm-dialog[open] #confirm-title", "Replay").await?;
    ensure!(
        title == format!("Replay {FAILED_ORDERS} failed jobs?"),
        "{title}"
    );
    let confirm = text_of(c, "#confirm-ok").await?.unwrap_or_default();
    ensure!(
        confirm == format!("Replay {FAILED_ORDERS} jobs"),
        "{confirm}"
    );
    shots.take(c, "5-confirm").await?;
    click(c, "#confirm-ok").await?;

    // The result, and the group gone from the list.
    until_text(
        c,
        "#flash .flash-text",
        &format!("replayed {FAILED_ORDERS}, skipped 0, errors 0"),
    )
    .await?;
    until_text(c, "#failed-empty", "No failed jobs").await?;
    until("the failed-jobs badge to hide at zero", || async {
        let hidden = on_element(
            c,
            "#nav-failed-count",
            |e| async move { e.attr("hidden").await },
        )
        .await?
        .flatten();
        Ok(match hidden {
            Some(_) => Ok(()),
            None => Err(format!("{:?}", text_of(c, "#nav-failed-count").await?)),
        })
    })
    .await?;
    shots.take(c, "6-replayed").await?;

    // One replay's history: it ran and succeeded.
    click(c, "#flash a.replay-link").await?;
    until_text(c, "table.runs tr.run td.outcome", "succeeded").await?;
    until_text(c, ".job-state", "succeeded").await?;
    let facts = text_of(c, ".kv").await?.unwrap_or_default();
    ensure!(
        facts.contains("replay"),
        "the job says it is a replay: {facts}"
    );
    shots.take(c, "7-job-history").await?;

    // Nothing broke on the way: no script error, nothing the CSP blocked.
    let errors = c
        .execute("return document.body.dataset.pageErrors || null", vec![])
        .await?;
    ensure!(
        errors.is_null(),
        "the page reported {errors} problem(s): {:?}",
        text_of(c, "#flash").await?
    );
    Ok(())
}
