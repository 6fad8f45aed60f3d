//! Operator input shared by the CLI and the admin API: filter values and
//! `since`. Every refusal names the parameter and says what is accepted;
//! nothing here panics on any input (`since=300000y` used to overflow the
//! date arithmetic), and nothing with a NUL reaches Postgres (whose error
//! text would be a 500, or a 400 quoting the database).

use chrono::{DateTime, Utc};

/// Refuse a value holding U+0000 (or another control character, which no
/// store code, kind, fingerprint or search text contains).
///
/// # Errors
/// The value has a control character; the message names `parameter`.
pub fn plain_text(parameter: &str, value: &str) -> Result<(), String> {
    match value.chars().find(|c| c.is_control()) {
        None => Ok(()),
        Some(c) => Err(format!(
            "{parameter} contains the control character {c:?}; remove it"
        )),
    }
}

/// `since` as an instant: a duration back from `now` (`2h`, `3d`) or an
/// RFC 3339 time.
///
/// # Errors
/// Neither form, or a duration reaching back before the calendar's start;
/// the message names `parameter`.
pub fn parse_since(
    parameter: &str,
    text: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    plain_text(parameter, text)?;
    if let Ok(back) = humantime::parse_duration(text.trim()) {
        return chrono::Duration::from_std(back)
            .ok()
            .and_then(|back| now.checked_sub_signed(back))
            .ok_or_else(|| {
                format!(
                    "{parameter} '{text}' is out of range: it reaches back past the earliest \
                     date there is (use e.g. 2h, 3d, 52w)"
                )
            });
    }
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!("{parameter} '{text}' is neither a duration (2h, 3d) nor an RFC 3339 time")
        })
}

/// A duration back from now, as an instant (`--older-than 90d`).
///
/// # Errors
/// Not a duration, or out of range; the message names `parameter`.
pub fn parse_age(parameter: &str, text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    plain_text(parameter, text)?;
    let age = humantime::parse_duration(text.trim())
        .map_err(|_| format!("{parameter} '{text}' is not a duration (e.g. 90d)"))?;
    chrono::Duration::from_std(age)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))
        .ok_or_else(|| format!("{parameter} '{text}' is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_durations_and_times_and_never_panics() {
        let now = Utc::now();
        assert_eq!(
            parse_since("since", "2h", now).unwrap(),
            now - chrono::Duration::hours(2)
        );
        assert_eq!(
            parse_since("since", "2026-01-01T00:00:00Z", now)
                .unwrap()
                .to_rfc3339(),
            "2026-01-01T00:00:00+00:00"
        );
        for huge in ["300000y", "99999999999999999s", "584542046090626years"] {
            let err = parse_since("since", huge, now).unwrap_err();
            assert!(err.starts_with("since '"), "{huge}: {err}");
            assert!(
                err.contains("out of range") || err.contains("neither"),
                "{err}"
            );
        }
        let err = parse_since("--since", "yesterday", now).unwrap_err();
        assert!(err.contains("--since 'yesterday' is neither"), "{err}");
        assert!(parse_since("since", "2h\0", now)
            .unwrap_err()
            .contains("control character"));
        assert!(parse_age("--older-than", "300000y", now).is_err());
    }

    #[test]
    fn control_characters_are_named() {
        assert!(plain_text("store", "ALPH").is_ok());
        let err = plain_text("grep", "a\0b").unwrap_err();
        assert_eq!(err, "grep contains the control character '\\0'; remove it");
    }
}
