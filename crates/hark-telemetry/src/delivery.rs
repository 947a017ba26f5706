//! How a client treats the collector's answers: which to retry, after how
//! long, and which to give up on. One rule for the browser's queue and for
//! anything else that uploads batches, beside the wire format it belongs to
//! (docs/collector.md states the same).
//!
//! * `2xx`: delivered (a schema-2 answer may still name rejected events;
//!   those are dropped and counted, never resent).
//! * network error, `429`, `502`, `503`, `504`: retry — after `Retry-After`
//!   when the server sent one, else after an exponential backoff with full
//!   jitter (AWS's "full jitter": a uniform draw below the capped
//!   exponential, so that many clients coming back online do not retry in
//!   step).
//! * `400`, `413`, `415`, `422` and any other answer: drop the batch and
//!   count it — resending the same bytes cannot succeed. (`403`, a consent
//!   or key mismatch, is not retried either: the page's state is at fault.)

use std::time::Duration;

/// What to do with a batch after an attempt to send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Keep it and try again after this long.
    RetryAfter(Duration),
    /// Give it up (counted): the server will never take these bytes.
    Drop,
}

/// The first retry's ceiling.
pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// No retry waits longer than this (also caps a server's `Retry-After`).
pub const BACKOFF_CAP: Duration = Duration::from_secs(15 * 60);

/// The ceiling of the `attempt`-th retry (0-based): base × 2^attempt, capped.
pub fn backoff_ceiling(attempt: u32) -> Duration {
    BACKOFF_BASE.saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX)).min(BACKOFF_CAP)
}

/// The wait before the `attempt`-th retry, `unit` a uniform draw in `0..1`
/// (the caller's randomness: `Math.random()` in the browser). Never under
/// 100 ms.
pub fn backoff(attempt: u32, unit: f64) -> Duration {
    backoff_ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0)).max(Duration::from_millis(100))
}

/// A `Retry-After` header's delay: seconds (the collector's form) or an
/// HTTP date relative to `now_ms` (Unix milliseconds). `None` when it
/// cannot be read.
pub fn retry_after(header: &str, now_ms: u64) -> Option<Duration> {
    let header = header.trim();
    if let Ok(seconds) = header.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(BACKOFF_CAP));
    }
    let at = httpdate_ms(header)?;
    Some(Duration::from_millis(at.saturating_sub(now_ms)).min(BACKOFF_CAP))
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as Unix milliseconds.
fn httpdate_ms(text: &str) -> Option<u64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else { return None };
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = months.iter().position(|m| m == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else { return None };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + h * 3_600 + m * 60 + s;
    u64::try_from(seconds).ok().map(|s| s * 1000)
}

/// The verdict on an answer with HTTP `status` (`None`: the network failed)
/// and `Retry-After` header, for the `attempt`-th try (0-based), `unit` a
/// uniform draw in `0..1`, at `now_ms`.
pub fn verdict(status: Option<u16>, retry_after_header: Option<&str>, attempt: u32, unit: f64, now_ms: u64) -> Verdict {
    match status {
        Some(200..=299) => Verdict::Delivered,
        None | Some(429 | 502 | 503 | 504) => Verdict::RetryAfter(
            retry_after_header.and_then(|h| retry_after(h, now_ms)).unwrap_or_else(|| backoff(attempt, unit)),
        ),
        Some(_) => Verdict::Drop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_is_delivered_client_errors_are_dropped_and_overload_is_retried() {
        assert_eq!(verdict(Some(202), None, 0, 0.5, 0), Verdict::Delivered);
        for status in [400, 403, 404, 413, 415, 422, 500] {
            assert_eq!(verdict(Some(status), None, 0, 0.5, 0), Verdict::Drop, "{status}");
        }
        for status in [None, Some(429), Some(502), Some(503), Some(504)] {
            assert!(matches!(verdict(status, None, 0, 0.5, 0), Verdict::RetryAfter(_)), "{status:?}");
        }
    }

    #[test]
    fn the_server_s_retry_after_wins_over_the_backoff() {
        assert_eq!(verdict(Some(429), Some("7"), 5, 0.9, 0), Verdict::RetryAfter(Duration::from_secs(7)));
        // 1994-11-06 08:49:37 GMT = 784111777 s.
        let now = 784_111_777_000 - 30_000;
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(retry_after("soon", 0), None);
        assert_eq!(retry_after("999999", 0), Some(BACKOFF_CAP), "a server cannot park a client for days");
        // An unreadable header falls back on the backoff.
        assert_eq!(verdict(Some(503), Some("soon"), 0, 1.0, 0), Verdict::RetryAfter(BACKOFF_BASE));
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap_and_is_spread_by_the_draw() {
        assert_eq!(backoff_ceiling(0), Duration::from_secs(2));
        assert_eq!(backoff_ceiling(3), Duration::from_secs(16));
        assert_eq!(backoff_ceiling(40), BACKOFF_CAP);
        assert_eq!(backoff(3, 0.5), Duration::from_secs(8));
        assert_eq!(backoff(3, 0.0), Duration::from_millis(100), "never a busy loop");
        assert!(backoff(3, 0.25) < backoff(3, 0.75));
    }
}
