//! Durations as the user writes them: `--lifetime 12h`, `agent_lifetime: 45m`, `opkssh check
//! --exp 24h`, or plain seconds (`28800`), as upstream opkssh accepts for `--lifetime`
//! (openpubkey/opkssh#611).

use std::time::Duration;

/// A duration string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {why}")]
pub struct DurationError {
    /// What was given.
    pub text: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// The agent lifetime when neither `--lifetime` nor `agent_lifetime` says otherwise: 24 hours,
/// upstream's default (its server's default expiration policy).
pub const DEFAULT_AGENT_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Parses `<seconds>` or one or more `<number><unit>` with unit `h`, `m` or `s` (`1h30m`).
///
/// # Errors
/// Empty text, a number without a unit after another part, an unknown unit, or overflow.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let fail = |why| DurationError {
        text: text.to_owned(),
        why,
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(fail("it is empty"));
    }
    if trimmed.bytes().all(|byte| byte.is_ascii_digit()) {
        return trimmed
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| fail("it is too large"));
    }
    let mut total: u64 = 0;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, after) = rest.split_at(digits);
        if number.is_empty() {
            return Err(fail("expected a number such as 90s, 45m, 12h or 1h30m"));
        }
        let number: u64 = number.parse().map_err(|_| fail("it is too large"))?;
        let mut chars = after.chars();
        let unit = match chars.next() {
            Some('h') => 3600,
            Some('m') => 60,
            Some('s') => 1,
            Some(_) => return Err(fail("the unit must be h, m or s")),
            None => return Err(fail("a number without a unit (h, m or s)")),
        };
        total = number
            .checked_mul(unit)
            .and_then(|seconds| total.checked_add(seconds))
            .ok_or_else(|| fail("it is too large"))?;
        rest = chars.as_str();
    }
    Ok(Duration::from_secs(total))
}

/// Like [`parse`], for an ssh-agent lifetime: at least one second (0 would mean "forever" to
/// the agent) and at most `u32::MAX` seconds (the agent protocol's limit).
///
/// # Errors
/// As [`parse`], or zero, or more than the agent protocol can carry.
pub fn parse_lifetime(text: &str) -> Result<Duration, DurationError> {
    let duration = parse(text)?;
    lifetime(duration).map_err(|why| DurationError {
        text: text.to_owned(),
        why,
    })
}

/// Checks an agent lifetime given as seconds (a number in the client config).
///
/// # Errors
/// Zero, or more than `u32::MAX` seconds.
pub fn lifetime(duration: Duration) -> Result<Duration, &'static str> {
    if duration.is_zero() {
        return Err("an agent lifetime must be at least 1s");
    }
    if u32::try_from(duration.as_secs()).is_err() {
        return Err("it is longer than an ssh-agent lifetime can be");
    }
    Ok(duration)
}

/// `1h30m5s`, `45m`, `0s`: the shortest form [`parse`] reads back.
pub fn format(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (hours, minutes, seconds) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    let mut text = String::new();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 || text.is_empty() {
        text.push_str(&format!("{seconds}s"));
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn units_and_plain_seconds() {
        let cases = [
            ("28800", 28800),
            ("12h", 43200),
            ("45m", 2700),
            ("90s", 90),
            ("1h30m", 5400),
            ("1h0m5s", 3605),
            (" 5s ", 5),
            ("0", 0),
            ("0s", 0),
        ];
        for (text, seconds) in cases {
            assert_eq!(parse(text), Ok(Duration::from_secs(seconds)), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_why() {
        let cases = [
            ("", "it is empty"),
            ("12", ""),
            ("h", "expected a number such as 90s, 45m, 12h or 1h30m"),
            ("1d", "the unit must be h, m or s"),
            ("1.5h", "the unit must be h, m or s"),
            ("1h30", "a number without a unit (h, m or s)"),
            ("-5s", "expected a number such as 90s, 45m, 12h or 1h30m"),
            ("99999999999999999999", "it is too large"),
            ("9999999999999999999h", "it is too large"),
        ];
        for (text, why) in cases {
            if why.is_empty() {
                assert!(parse(text).is_ok(), "{text}");
            } else {
                assert_eq!(parse(text).unwrap_err().why, why, "{text}");
            }
        }
    }

    #[test]
    fn lifetimes_are_positive_and_fit_the_agent_protocol() {
        assert_eq!(parse_lifetime("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(
            parse_lifetime("0s").unwrap_err().why,
            "an agent lifetime must be at least 1s"
        );
        assert_eq!(
            parse_lifetime("4294967296").unwrap_err().why,
            "it is longer than an ssh-agent lifetime can be"
        );
        assert!(parse_lifetime("4294967295").is_ok());
    }

    #[test]
    fn format_reads_back() {
        for seconds in [0, 1, 59, 60, 61, 3600, 3661, 86400, 90061] {
            let duration = Duration::from_secs(seconds);
            assert_eq!(parse(&format(duration)), Ok(duration), "{seconds}");
        }
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::ZERO), "0s");
    }
}
