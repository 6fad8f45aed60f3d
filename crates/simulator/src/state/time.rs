//! The shop's time zone and the date formats each provider writes.

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeDelta, Utc};

/// Algeria is UTC+1 all year; WooCommerce "local" dates and Maystro's
/// timestamps use it.
const SITE_OFFSET_SECS: i32 = 3600;

/// WooCommerce's "local" date: site time zone, no offset in the string.
pub(super) fn woo_local(t: DateTime<Utc>) -> String {
    (t + TimeDelta::seconds(SITE_OFFSET_SECS.into()))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// WooCommerce's `_gmt` date: UTC, no offset in the string.
pub(super) fn woo_gmt(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Django REST Framework style: local time with microseconds and offset.
pub(super) fn drf_time(t: DateTime<Utc>) -> String {
    let tz = FixedOffset::east_opt(SITE_OFFSET_SECS).expect("valid offset");
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// Offset of the shop's site time zone from UTC.
pub(crate) fn site_offset() -> FixedOffset {
    FixedOffset::east_opt(SITE_OFFSET_SECS).expect("valid offset")
}

/// Now, at WooCommerce's one-second resolution.
pub(super) fn now_secs() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
}
