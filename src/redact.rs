//! Keeping secrets out of what we print, log and store.

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
}
