//! [`LogThrottle`]: one log line per kind of failure per interval, with how
//! many were left out, instead of one per request. While PostgreSQL is
//! away every grab fails the same way; a line each buried the log in
//! thousands a second and told nothing the first did not. Metrics still
//! count every failure.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one kind of failure is logged at most, by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// The engine's failures that every request of an outage meets: a commit
/// that failed, a promotion that could not be claimed or loaded.
pub(crate) static FAILURES: LogThrottle = LogThrottle::new(DEFAULT_INTERVAL);

/// Admits the first failure of each kind, then one per interval, and counts
/// the rest. Kinds are `&'static str` names: a handful per program.
///
/// ```
/// use seckill_app::throttle::LogThrottle;
///
/// static FAILURES: LogThrottle = LogThrottle::new(seckill_app::throttle::DEFAULT_INTERVAL);
///
/// # let error = "connection refused";
/// if let Some(left_out) = FAILURES.admit("query failed") {
///     eprintln!("query failed: {error} ({left_out} more since the last line)");
/// }
/// ```
#[derive(Debug)]
pub struct LogThrottle {
    interval: Duration,
    /// Per kind: when its current interval opened, and how many failures
    /// it left out since. A lock, not atomics: it is taken on failure paths
    /// only, where it costs less than the line it saves.
    kinds: Mutex<Vec<(&'static str, Instant, u64)>>,
}

impl LogThrottle {
    /// A throttle that logs each kind at most once per `interval`.
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            kinds: Mutex::new(Vec::new()),
        }
    }

    /// Whether a failure of `kind` is to be logged now: `Some(n)`, with `n`
    /// failures of that kind left out since its last line, or `None` to
    /// leave this one out.
    pub fn admit(&self, kind: &'static str) -> Option<u64> {
        self.admit_at(kind, Instant::now())
    }

    fn admit_at(&self, kind: &'static str, now: Instant) -> Option<u64> {
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        let Some((_, opened, left_out)) = kinds.iter_mut().find(|(k, ..)| *k == kind) else {
            kinds.push((kind, now, 0));
            return Some(0);
        };
        if now.saturating_duration_since(*opened) >= self.interval {
            let admitted = *left_out;
            *opened = now;
            *left_out = 0;
            Some(admitted)
        } else {
            *left_out += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_logged_once_an_interval_with_what_it_left_out() {
        let throttle = LogThrottle::new(Duration::from_secs(10));
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert_eq!(throttle.admit_at("commit failed", at(0)), Some(0));
        for second in 1..10 {
            assert_eq!(throttle.admit_at("commit failed", at(second)), None);
        }
        // Another kind has an interval of its own.
        assert_eq!(throttle.admit_at("query failed", at(5)), Some(0));
        assert_eq!(throttle.admit_at("commit failed", at(10)), Some(9));
        assert_eq!(throttle.admit_at("commit failed", at(11)), None);
        assert_eq!(throttle.admit_at("commit failed", at(25)), Some(1));
        assert_eq!(throttle.admit_at("query failed", at(25)), Some(0));
    }
}
