//! Login throttling: at most [`MAX_FAILURES`] failed sign-ins per client address
//! and email within [`WINDOW`]. In memory: each `serve` process counts its own.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Keys kept before old ones are swept, so a flood cannot grow memory unbounded.
const MAX_KEYS: usize = 50_000;

#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    fn key(ip: &str, email: &str) -> String {
        format!("{ip}|{}", email.trim().to_lowercase())
    }

    /// `Err(wait)` when the key is locked out for `wait` more.
    pub fn check(&self, ip: &str, email: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(times) = map.get_mut(&Self::key(ip, email)) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            times.pop_front();
        }
        if times.len() >= MAX_FAILURES {
            let oldest = times.front().copied().unwrap_or(now);
            return Err(WINDOW.saturating_sub(now.duration_since(oldest)));
        }
        Ok(())
    }

    pub fn failed(&self, ip: &str, email: &str) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS {
            map.retain(|_, t| t.back().is_some_and(|l| now.duration_since(*l) <= WINDOW));
        }
        let times = map.entry(Self::key(ip, email)).or_default();
        times.push_back(now);
        while times.len() > MAX_FAILURES {
            times.pop_front();
        }
    }

    pub fn succeeded(&self, ip: &str, email: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&Self::key(ip, email));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_out_that_address_and_email_only() {
        let l = LoginLimiter::default();
        for _ in 0..MAX_FAILURES {
            assert!(l.check("1.2.3.4", "a@b.c").is_ok());
            l.failed("1.2.3.4", "A@b.c");
        }
        assert!(l.check("1.2.3.4", "a@b.c").is_err());
        assert!(l.check("5.6.7.8", "a@b.c").is_ok());
        assert!(l.check("1.2.3.4", "other@b.c").is_ok());
        l.succeeded("1.2.3.4", "a@b.c");
        assert!(l.check("1.2.3.4", "a@b.c").is_ok());
    }
}
