//! Process counters for `/metrics` (Prometheus text format).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::domain::Action;

/// Job outcomes per action.
#[derive(Default)]
pub struct Counters {
    pub enqueued: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
}

pub struct Metrics {
    /// One set per hosting job, in [`crate::jobs::HOSTING_JOBS`] order.
    jobs: Vec<Counters>,
    /// Call latency by (module, action).
    pub latency: std::sync::Mutex<std::collections::HashMap<(String, &'static str), Histogram>>,
    /// Woken (all current waiters) each time a job's handler returns, so a
    /// test can wait for the queue to drain instead of sleeping. Costs nothing
    /// when nobody waits.
    pub job_finished: tokio::sync::Notify,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            jobs: crate::jobs::HOSTING_JOBS
                .iter()
                .map(|_| Counters::default())
                .collect(),
            latency: Default::default(),
            job_finished: tokio::sync::Notify::new(),
        }
    }
}

impl Metrics {
    /// The counters of an action's job (`None`: it never runs as a job).
    pub fn for_action(&self, action: Action) -> Option<&Counters> {
        let i = crate::jobs::HOSTING_JOBS
            .iter()
            .position(|j| j.action == action)?;
        self.jobs.get(i)
    }

    pub fn bump(&self, action: Action, pick: impl Fn(&Counters) -> &AtomicU64) {
        if let Some(c) = self.for_action(action) {
            pick(c).fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Upper bounds (seconds) of the provisioning call latency histogram.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// One histogram series.
#[derive(Default, Clone)]
pub struct Histogram {
    pub buckets: [u64; LATENCY_BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
}

impl Metrics {
    /// Records how long one module call took.
    pub fn observe_call(&self, module: &str, action: Action, took: std::time::Duration) {
        let secs = took.as_secs_f64();
        let mut map = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = map.entry((module.to_owned(), action.as_str())).or_default();
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    pub fn latency_snapshot(&self) -> Vec<((String, &'static str), Histogram)> {
        let map = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = map.iter().map(|(k, h)| (k.clone(), h.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}
