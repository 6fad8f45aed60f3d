//! The command line: the store mapping, account checks, start-up refusals.

use std::process::Command;

use crate::helpers::{two_stores, TestApp};

fn ordersync(app: &TestApp, args: &[&str]) -> std::process::Output {
    app.cli(args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_prints_the_mapping_without_secrets() {
    let app = TestApp::spawn(two_stores(2)).await;
    let out = ordersync(&app, &["stores"]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("ALPH -> courier account 'alph'"),
        "{stdout}"
    );
    assert!(
        stdout.contains("BETA -> courier account 'primary'"),
        "{stdout}"
    );
    let everything = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for (_, secret) in &app.secrets {
        assert!(
            !everything.contains(secret.as_str()),
            "a secret was printed"
        );
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_check_calls_every_account_and_names_the_broken_one() {
    let app = TestApp::spawn(two_stores(2)).await;
    let out = ordersync(&app, &["stores", "check"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        6,
        "2 couriers, 2 shops, ERP, SMS: {stdout}"
    );
    let alph_key = app.courier_key("ALPH");
    app.sim.revoke_key(&alph_key);
    let out = ordersync(&app, &["stores", "check"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!out.status.success());
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("FAIL  courier account 'alph'") && l.contains("unauthorized")),
        "{stdout}"
    );
    assert!(!stdout.contains(&alph_key));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_to_start_with_an_unmapped_store() {
    let app = TestApp::spawn(two_stores(2)).await;
    let toml = std::fs::read_to_string(&app.config_path)
        .unwrap()
        .replace("stores = [\"ALPH\"]", "stores = []");
    std::fs::write(&app.config_path, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ordersync-worker"))
        .arg("--config")
        .arg(&app.config_path)
        .env("DATABASE_URL", app.database_url())
        .env("ORDERSYNC_NAMESPACE", &app.namespace)
        .envs(app.secrets.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("store ALPH is active but no courier account lists it"),
        "{stderr}"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_records_cli_as_the_source_and_jobs_show_tells_the_story() {
    let mut app = TestApp::spawn(two_stores(3)).await;
    let out = ordersync(&app, &["enqueue", "import_orders", "--store", "ALPH"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    let id: uuid::Uuid = stdout.trim().rsplit(' ').next().unwrap().parse().unwrap();
    app.start_worker(&[]);
    app.wait_final(id).await;
    let out = ordersync(&app, &["jobs", "show", &id.to_string()]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("import_orders store=ALPH"), "{stdout}");
    assert!(stdout.contains("source=cli"), "{stdout}");
    assert!(stdout.contains("run 1 attempt 1/5"), "{stdout}");
    assert!(stdout.contains("-> succeeded"), "{stdout}");
    let bad = ordersync(&app, &["enqueue", "refresh_status", "--store", "ALPH"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr)
        .contains("refresh_status is a per-order job: pass --order REF"));
    let unknown = ordersync(&app, &["enqueue", "import_orders", "--store", "NOPE"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("store NOPE is not an active store"));
    app.cleanup().await;
}
