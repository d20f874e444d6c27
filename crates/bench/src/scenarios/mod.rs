//! The measured scenarios. Each creates its own database (the same name, one
//! after another), starts its own processes and returns its results as JSON.

pub mod api_latency;
pub mod pgbench;
pub mod sweep;
pub mod throughput;

use std::path::PathBuf;

use crate::procs::Bins;

/// What every scenario needs.
pub struct Ctx {
    pub bins: Bins,
    /// `commerce_bench_<pid>`: created and dropped by each scenario.
    pub db_name: String,
    /// Where process logs go (target/bench/logs).
    pub log_dir: PathBuf,
}

impl Ctx {
    pub fn log(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }
}

/// A tiny deterministic generator (xorshift), so runs pick the same ids.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}
