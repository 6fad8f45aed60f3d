//! Config and knobs JSON, the demo setup, and configs `start` refuses.

use std::collections::HashSet;
use std::time::Duration;

use super::PRIMARY_KEY;
use crate::{start, Knobs, SimConfig, DEFAULT_HANG};

#[test]
fn knobs_and_config_json_use_milliseconds() {
    let knobs: Knobs = serde_json::from_str(r#"{"latency_ms":250,"error_rate":0.1}"#).unwrap();
    assert_eq!(knobs.latency, Duration::from_millis(250));
    assert_eq!(knobs.hang, DEFAULT_HANG);
    assert_eq!(
        serde_json::to_value(Knobs::default()).unwrap()["hang_ms"],
        30_000
    );
    let config = SimConfig::demo(6);
    let round: SimConfig = serde_json::from_value(serde_json::to_value(&config).unwrap()).unwrap();
    assert_eq!(round, config);
    let stepped: SimConfig = serde_json::from_str(r#"{"status_step_ms":1000}"#).unwrap();
    assert_eq!(
        (stepped.status_step, stepped.courier_page_size),
        (Duration::from_secs(1), 20)
    );
}

#[test]
fn demo_maps_five_stores_to_one_primary_key_and_alph_to_its_own() {
    let config = SimConfig::demo(100);
    let codes: Vec<&str> = config.stores.iter().map(|s| s.code.as_str()).collect();
    assert_eq!(codes, ["ALPH", "BETA", "GAMA", "DELT", "EPSI", "ZETA"]);
    assert_eq!(config.stores.iter().map(|s| s.orders).sum::<usize>(), 100);
    let primary: HashSet<_> = config.stores[1..]
        .iter()
        .map(|s| (&s.courier_account, &s.courier_key))
        .collect();
    assert_eq!(primary.len(), 1);
    assert_eq!(config.stores[0].courier_account, "alph");
    assert_ne!(config.stores[0].courier_key, config.stores[1].courier_key);
    assert_eq!(config.status_step, Duration::ZERO);
}

#[tokio::test]
async fn start_refuses_ambiguous_configs() {
    let mut config = SimConfig::demo(6);
    config.stores[1].code = "ALPH".into();
    let err = start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("ALPH"), "{err:#}");
    let mut config = SimConfig::demo(6);
    config.stores[0].courier_key = PRIMARY_KEY.into();
    assert!(start(config, "127.0.0.1:0".parse().unwrap()).await.is_err());
}
