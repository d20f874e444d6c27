//! The real processes: where the built binaries are, starting `opterius-sim`
//! and `commerce` on loopback, stopping them, and reading their memory and CPU.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A fixed APP_KEY: benchmark and test data are throwaway.
pub const APP_KEY: &str = "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Every variable `commerce` reads; cleared from the child's environment so the
/// caller's shell (or a `.env`) cannot change what is measured.
const COMMERCE_VARS: &[&str] = &[
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "APP_KEY",
    "SSL_VERIFY",
    "PANEL_CONNECT_TIMEOUT_SECS",
    "PANEL_TIMEOUT_SECS",
    "WORKER_CONCURRENCY",
    "PROVISION_MAX_ATTEMPTS",
    "RETRY_BASE_MS",
    "RETRY_MAX_MS",
    "SWEEP_CONCURRENCY",
    "SWEEP_TIMEOUT_SECS",
    "LISTEN_ADDR",
    "LOG_FORMAT",
    "JOB_RETENTION_SECS",
    "SECURE_COOKIES",
    "PANEL_ALLOWED_NETWORKS",
    "APP_KEY_PREVIOUS",
    "TRUSTED_PROXIES",
    "RUST_LOG",
];

/// The `commerce` and `opterius-sim` executables of one build.
#[derive(Debug, Clone)]
pub struct Bins {
    pub commerce: PathBuf,
    pub sim: PathBuf,
    /// The target/<profile> directory they live in.
    pub dir: PathBuf,
}

impl Bins {
    /// The binaries of the build the current executable belongs to: next to it
    /// (target/release/bench), or one level up for a test (target/debug/deps/x).
    /// `COMMERCE_BIN` and `OPTERIUS_SIM_BIN` override.
    pub fn of_current_exe() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the current executable")?;
        let mut dir = exe
            .parent()
            .context("the current executable has no directory")?
            .to_path_buf();
        if dir.file_name().is_some_and(|n| n == "deps") {
            dir.pop();
        }
        Self::in_dir(&dir)
    }

    /// The binaries in `dir`, or an error that says how to build them.
    pub fn in_dir(dir: &Path) -> anyhow::Result<Self> {
        let find = |var: &str, name: &str| -> anyhow::Result<PathBuf> {
            if let Some(p) = std::env::var_os(var).filter(|v| !v.is_empty()) {
                return Ok(PathBuf::from(p));
            }
            let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
            if !path.is_file() {
                let profile = if dir.ends_with("release") {
                    " --release"
                } else {
                    ""
                };
                bail!(
                    "{} is missing: build the binaries first with `cargo build{profile} -p commerce -p opterius-sim` \
                     (scripts/test.sh and scripts/bench.sh do), or set {var}",
                    path.display()
                );
            }
            Ok(path)
        };
        Ok(Self {
            commerce: find("COMMERCE_BIN", "commerce")?,
            sim: find("OPTERIUS_SIM_BIN", "opterius-sim")?,
            dir: dir.to_path_buf(),
        })
    }
}

/// A child process that is killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    child: Option<Child>,
    pub name: String,
    pub pid: u32,
    pub log: PathBuf,
}

impl Proc {
    fn new(child: Child, name: &str, log: &Path) -> Self {
        Self {
            pid: child.id(),
            child: Some(child),
            name: name.to_owned(),
            log: log.to_path_buf(),
        }
    }

    /// `kill -9`: no chance to finish anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The last `lines` lines of its log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The last `lines` lines of a file.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn log_file(path: &Path) -> anyhow::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create log directory {}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open log file {}", path.display()))
}

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running `opterius-sim`: N Panel servers at BASE/s/n, token T-n (server 0: T).
pub struct SimProc {
    pub proc: Proc,
    pub base: String,
    pub token: String,
    pub servers: usize,
    _stdout: Option<std::process::ChildStdout>,
}

impl SimProc {
    /// Starts the simulator and reads its base URL from the first stdout line.
    pub fn start(bins: &Bins, servers: usize, token: &str, log: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(&bins.sim)
            .args(["--listen", "127.0.0.1:0", "--token", token])
            .args(["--packages", "Starter,Pro"])
            .args(["--servers", &servers.to_string()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(log)?)
            .spawn()
            .with_context(|| format!("cannot start {}", bins.sim.display()))?;
        let stdout = child.stdout.take().context("sim stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let _ = tx.send((first, reader.into_inner()));
        });
        let mut proc = Proc::new(child, "opterius-sim", log);
        let Ok((first, stdout)) = rx.recv_timeout(Duration::from_secs(20)) else {
            proc.kill9();
            bail!(
                "opterius-sim printed no base URL within 20 s; log:\n{}",
                proc.log_tail(20)
            );
        };
        let base = first.trim().to_owned();
        if !base.starts_with("http") {
            proc.kill9();
            bail!(
                "opterius-sim's first line is not a URL: {base:?}; log:\n{}",
                proc.log_tail(20)
            );
        }
        Ok(Self {
            proc,
            base,
            token: token.to_owned(),
            servers,
            _stdout: Some(stdout),
        })
    }

    /// The api_url of simulated server `n`.
    pub fn server_url(&self, n: usize) -> String {
        format!("{}/s/{n}", self.base)
    }

    /// The api_token of simulated server `n`.
    pub fn server_token(&self, n: usize) -> String {
        if n == 0 {
            self.token.clone()
        } else {
            format!("{}-{n}", self.token)
        }
    }
}

/// Settings for a `commerce` process, on top of a clean environment.
#[derive(Debug, Clone)]
pub struct CommerceEnv {
    vars: Vec<(String, String)>,
}

impl CommerceEnv {
    /// DATABASE_URL, APP_KEY and PANEL_ALLOWED_NETWORKS (the simulator is on
    /// loopback); everything else at the service's defaults.
    pub fn new(database_url: &str) -> Self {
        Self {
            vars: vec![
                ("DATABASE_URL".into(), database_url.into()),
                ("APP_KEY".into(), APP_KEY.into()),
                ("PANEL_ALLOWED_NETWORKS".into(), "127.0.0.0/8".into()),
            ],
        }
    }

    /// Sets (or replaces) one variable.
    pub fn set(mut self, key: &str, value: impl ToString) -> Self {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.into(), value.to_string()));
        self
    }

    /// The variables that differ from the service's defaults, for reports.
    pub fn describe(&self) -> String {
        self.vars
            .iter()
            .filter(|(k, _)| {
                !["DATABASE_URL", "APP_KEY", "PANEL_ALLOWED_NETWORKS"].contains(&k.as_str())
            })
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn command(&self, bins: &Bins) -> Command {
        let mut cmd = Command::new(&bins.commerce);
        for k in COMMERCE_VARS {
            cmd.env_remove(k);
        }
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd.env("NO_COLOR", "1");
        // No `.env` from the caller's directory tree.
        cmd.current_dir(std::env::temp_dir());
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs a short `commerce` command to completion; returns its stdout.
    pub fn run(&self, bins: &Bins, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .command(bins)
            .args(args)
            .output()
            .with_context(|| format!("cannot run {}", bins.commerce.display()))?;
        if !out.status.success() {
            bail!(
                "`commerce {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `commerce migrate`.
    pub fn migrate(&self, bins: &Bins) -> anyhow::Result<()> {
        self.run(bins, &["migrate"]).map(|_| ())
    }

    /// `commerce token create`: the token is alone on the last stdout line.
    pub fn create_token(&self, bins: &Bins, name: &str) -> anyhow::Result<String> {
        let out = self.run(bins, &["token", "create", "--name", name])?;
        out.lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_owned)
            .context("`commerce token create` printed no token")
    }

    /// `commerce serve` on a free port; returns once /healthz answers.
    pub async fn serve(
        &self,
        bins: &Bins,
        no_worker: bool,
        log: &Path,
    ) -> anyhow::Result<CommerceProc> {
        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = self.command(bins);
        cmd.args(["serve", "--listen", &listen]);
        if no_worker {
            cmd.arg("--no-worker");
        }
        let file = log_file(log)?;
        let child = cmd
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {}", bins.commerce.display()))?;
        let mut proc = Proc::new(child, "commerce serve", log);
        let base = format!("http://{listen}");
        let http = crate::api::http_client(Duration::from_secs(5))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{base}/healthz")).send().await
                && r.status().is_success()
            {
                break;
            }
            if !proc.running() {
                bail!(
                    "`commerce serve` exited during startup; log:\n{}",
                    proc.log_tail(30)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "`commerce serve` did not answer /healthz within 60 s; log:\n{}",
                    proc.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(CommerceProc { proc, base })
    }

    /// `commerce worker` (returns at once; it connects on its own).
    pub fn worker(&self, bins: &Bins, log: &Path) -> anyhow::Result<Proc> {
        let file = log_file(log)?;
        let child = self
            .command(bins)
            .arg("worker")
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {}", bins.commerce.display()))?;
        Ok(Proc::new(child, "commerce worker", log))
    }
}

/// A running `commerce serve`.
pub struct CommerceProc {
    pub proc: Proc,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

/// One field (in kB) of /proc/<pid>/status, e.g. VmRSS or VmHWM.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// CPU time (user + system) a process has used so far, in seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) are space-separated.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU seconds used by PostgreSQL processes: (backends whose title names
/// `database`, every other postgres process).
pub fn postgres_cpu_secs(database: &str) -> (f64, f64) {
    let mut ours = 0.0;
    let mut other = 0.0;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (0.0, 0.0);
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "postgres" {
            continue;
        }
        let title = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let title = String::from_utf8_lossy(&title);
        let secs = cpu_secs(pid).unwrap_or(0.0);
        if title.contains(&format!(" {database} ")) {
            ours += secs;
        } else {
            other += secs;
        }
    }
    (ours, other)
}

/// Busy and total CPU time of the whole machine so far, in seconds.
pub fn machine_cpu_secs() -> Option<(f64, f64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<f64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some(((total - idle) / clock_ticks(), total / clock_ticks()))
}
