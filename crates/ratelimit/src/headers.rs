//! The IETF RateLimit header values (draft-ietf-httpapi-ratelimit-headers, -08/-09)
//! and `Retry-After`, as pure string formatting.
//!
//! `RateLimit-Policy: "name";q=100;w=60` states a policy: quota `q` per window of `w`
//! seconds. `RateLimit: "name";r=42;t=17` states its current status: `r` quota units
//! remaining, `t` seconds until it resets. Both fields are Structured Field lists
//! (RFC 9651) whose items are strings with integer parameters; several policies are
//! joined with `", "` ([`join_items`]). Seconds are rounded up, so a client that
//! waits what it is told never arrives early.

use crate::{Decision, Limit, Status};

/// The item for `RateLimit-Policy`: `"name";q=quota;w=window_secs`.
pub fn policy_item(name: &str, quota: u64, window_secs: u64) -> String {
    format!("{};q={quota};w={window_secs}", sf_string(name))
}

/// The `RateLimit-Policy` item for a limit: `q` is `limit`, `w` its duration in whole
/// seconds (rounded up, at least 1).
pub fn limit_policy_item(name: &str, limit: &Limit) -> String {
    policy_item(name, limit.limit, window_secs(limit.duration_ms))
}

/// The item for `RateLimit`: `"name";r=remaining;t=reset_secs`.
pub fn status_item(name: &str, remaining: u64, reset_secs: u64) -> String {
    format!("{};r={remaining};t={reset_secs}", sf_string(name))
}

/// The `RateLimit` item for a decision: `r` is `remaining`, `t` is
/// `reset_after_ms` in seconds, rounded up.
pub fn decision_status_item(name: &str, decision: &Decision) -> String {
    status_item(name, decision.remaining, ceil_secs(decision.reset_after_ms))
}

/// Joins items into one field value (a Structured Field list).
pub fn join_items<I, S>(items: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = String::new();
    for item in items {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(item.as_ref());
    }
    out
}

/// The `Retry-After` seconds for a rejected decision: `reset_after_ms` rounded up and
/// at least 1 (a rejected client must not be told to retry at once, even when its
/// request is larger than the capacity and can never fit). `None` when admitted.
pub fn retry_after_secs(decision: &Decision) -> Option<u64> {
    match decision.status {
        Status::UnderLimit => None,
        Status::OverLimit => Some(ceil_secs(decision.reset_after_ms).max(1)),
    }
}

/// A window in whole seconds for `w`: rounded up, at least 1 (the draft allows no
/// zero window).
pub fn window_secs(duration_ms: u64) -> u64 {
    ceil_secs(duration_ms).max(1)
}

fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

/// A Structured Field string: quoted, with `"` and `\` escaped. Characters a string
/// cannot hold (controls, non-ASCII) become `?`: a policy name is a label for humans,
/// and a slightly altered label beats a missing header.
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(status: Status, remaining: u64, reset_after_ms: u64) -> Decision {
        Decision {
            status,
            limit: 100,
            remaining,
            reset_after_ms,
        }
    }

    #[test]
    fn formats_the_draft_examples() {
        assert_eq!(policy_item("default", 100, 60), r#""default";q=100;w=60"#);
        assert_eq!(status_item("default", 42, 17), r#""default";r=42;t=17"#);
        assert_eq!(
            limit_policy_item("burst", &Limit::new(100, 1500)),
            r#""burst";q=100;w=2"#
        );
        assert_eq!(
            decision_status_item("d", &decision(Status::UnderLimit, 3, 16_001)),
            r#""d";r=3;t=17"#
        );
        assert_eq!(
            join_items([
                policy_item("min", 100, 60),
                policy_item("day", 5000, 86_400)
            ]),
            r#""min";q=100;w=60, "day";q=5000;w=86400"#
        );
        assert_eq!(join_items(Vec::<String>::new()), "");
    }

    #[test]
    fn names_are_escaped_into_valid_strings() {
        assert_eq!(policy_item(r#"a"b\c"#, 1, 1), r#""a\"b\\c";q=1;w=1"#);
        assert_eq!(status_item("é\n", 0, 0), r#""??";r=0;t=0"#);
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(
            retry_after_secs(&decision(Status::UnderLimit, 1, 5000)),
            None
        );
        assert_eq!(
            retry_after_secs(&decision(Status::OverLimit, 0, 1)),
            Some(1)
        );
        assert_eq!(
            retry_after_secs(&decision(Status::OverLimit, 0, 1000)),
            Some(1)
        );
        assert_eq!(
            retry_after_secs(&decision(Status::OverLimit, 0, 1001)),
            Some(2)
        );
        assert_eq!(
            retry_after_secs(&decision(Status::OverLimit, 0, 0)),
            Some(1)
        );
        assert_eq!(window_secs(1), 1);
        assert_eq!(window_secs(60_000), 60);
    }
}
