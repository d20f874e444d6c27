//! Login throttling, reserve-then-verify: an attempt takes a slot for its
//! client address and for the account before the password is hashed, so
//! parallel attempts cannot all pass a check made before any of them failed.
//! Per account: [`ACCOUNT_MAX`] failures (or attempts in flight) per
//! [`ACCOUNT_WINDOW`], short, so an attacker can slow an admin's sign-in but
//! not lock it out for long. Per address: [`IP_MAX`] per [`IP_WINDOW`], across
//! accounts (rotating emails buys nothing). Argon2 runs on the blocking pool,
//! at most [`HASHING_AT_ONCE`] at a time. In memory: each process counts its own.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

pub const ACCOUNT_MAX: usize = 5;
pub const ACCOUNT_WINDOW: Duration = Duration::from_secs(60);
pub const IP_MAX: usize = 20;
pub const IP_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Password hashes computed at once by one process (each takes ~19 MiB).
pub const HASHING_AT_ONCE: usize = 2;
/// Keys kept before old ones are swept, so a flood cannot grow memory unbounded.
const MAX_KEYS: usize = 50_000;

#[derive(Default)]
struct Entry {
    failures: VecDeque<Instant>,
    in_flight: usize,
}

pub struct LoginLimiter {
    entries: Mutex<HashMap<String, Entry>>,
    /// Bounds concurrent argon2 work: sign-in floods cannot starve the server.
    pub hashing: Semaphore,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            hashing: Semaphore::new(HASHING_AT_ONCE),
        }
    }
}

/// A slot taken for one attempt; give it back with `failed` or `succeeded`
/// (dropping it gives it back without counting a failure).
pub struct Reservation<'a> {
    limiter: &'a LoginLimiter,
    keys: [(String, usize, Duration); 2],
    open: bool,
}

impl LoginLimiter {
    fn keys(ip: &str, email: &str) -> [(String, usize, Duration); 2] {
        [
            (format!("ip|{ip}"), IP_MAX, IP_WINDOW),
            (
                format!("account|{}", email.trim().to_lowercase()),
                ACCOUNT_MAX,
                ACCOUNT_WINDOW,
            ),
        ]
    }

    /// Takes a slot for (address, account), or says how long to wait.
    pub fn reserve(&self, ip: &str, email: &str) -> Result<Reservation<'_>, Duration> {
        let now = Instant::now();
        let keys = Self::keys(ip, email);
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS {
            map.retain(|_, e| {
                e.in_flight > 0
                    || e.failures
                        .back()
                        .is_some_and(|l| now.duration_since(*l) <= IP_WINDOW)
            });
        }
        for (key, max, window) in &keys {
            let e = map.entry(key.clone()).or_default();
            while e
                .failures
                .front()
                .is_some_and(|t| now.duration_since(*t) > *window)
            {
                e.failures.pop_front();
            }
            if e.failures.len() + e.in_flight >= *max {
                let wait = match e.failures.front() {
                    Some(oldest) if e.failures.len() >= *max => {
                        window.saturating_sub(now.duration_since(*oldest))
                    }
                    _ => Duration::from_secs(1),
                };
                return Err(wait.max(Duration::from_secs(1)));
            }
        }
        for (key, _, _) in &keys {
            map.entry(key.clone()).or_default().in_flight += 1;
        }
        Ok(Reservation {
            limiter: self,
            keys,
            open: true,
        })
    }
}

impl Reservation<'_> {
    fn close(&mut self, failed: bool, clear_account: bool) {
        if !std::mem::replace(&mut self.open, false) {
            return;
        }
        let now = Instant::now();
        let mut map = self
            .limiter
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (i, (key, max, _)) in self.keys.iter().enumerate() {
            let e = map.entry(key.clone()).or_default();
            e.in_flight = e.in_flight.saturating_sub(1);
            if failed {
                e.failures.push_back(now);
                while e.failures.len() > *max {
                    e.failures.pop_front();
                }
            }
            if clear_account && i == 1 {
                e.failures.clear();
            }
        }
    }

    /// The password was wrong: counts against the address and the account.
    pub fn failed(mut self) {
        self.close(true, false);
    }

    /// Signed in: the account's failures are forgotten (the address's are not).
    pub fn succeeded(mut self) {
        self.close(false, true);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.close(false, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_attempts_for_one_account_get_only_a_handful_of_slots() {
        let l = LoginLimiter::default();
        let held: Vec<_> = (0..20)
            .filter_map(|_| l.reserve("1.2.3.4", "a@b.c").ok())
            .collect();
        assert_eq!(held.len(), ACCOUNT_MAX);
        drop(held);
        assert!(l.reserve("1.2.3.4", "A@b.c").is_ok(), "slots come back");
    }

    #[test]
    fn failures_lock_the_account_briefly_and_the_address_across_accounts() {
        let l = LoginLimiter::default();
        for _ in 0..ACCOUNT_MAX {
            l.reserve("1.2.3.4", "a@b.c").expect("slot").failed();
        }
        let wait = l.reserve("5.6.7.8", "a@b.c").err().expect("account locked");
        assert!(wait <= ACCOUNT_WINDOW, "{wait:?}");
        assert!(l.reserve("1.2.3.4", "other@b.c").is_ok());
        // Rotating emails from one address: stopped at IP_MAX failures.
        let l = LoginLimiter::default();
        for n in 0..IP_MAX {
            l.reserve("9.9.9.9", &format!("u{n}@b.c"))
                .expect("slot")
                .failed();
        }
        assert!(l.reserve("9.9.9.9", "fresh@b.c").is_err());
        assert!(l.reserve("8.8.8.8", "fresh@b.c").is_ok());
    }

    #[test]
    fn success_clears_the_account() {
        let l = LoginLimiter::default();
        for _ in 0..ACCOUNT_MAX - 1 {
            l.reserve("1.2.3.4", "a@b.c").expect("slot").failed();
        }
        l.reserve("1.2.3.4", "a@b.c").expect("slot").succeeded();
        for _ in 0..ACCOUNT_MAX - 1 {
            l.reserve("1.2.3.4", "a@b.c").expect("slot").failed();
        }
        assert!(l.reserve("1.2.3.4", "a@b.c").is_ok());
    }
}
