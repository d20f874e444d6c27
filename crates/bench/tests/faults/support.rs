//! The fault suite's rig: database, simulator, `commerce serve` (and separate
//! workers), orders, and the checks every scenario ends with.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bench::Stack;
use bench::api::{Api, Catalog, SimControl};
use bench::procs::{Bins, CommerceEnv, Proc, SimProc, log_tail};
use serde_json::Value;
use sqlx::Connection as _;

/// Scenarios run one at a time: one restarts PostgreSQL, and two at once would
/// share the two cores and blur every timing.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// The binaries under test, built first (once per run) from this checkout,
/// so the suite never drives whatever stale `commerce` happens to lie in the
/// target directory. COMMERCE_BIN / OPTERIUS_SIM_BIN name binaries to use as
/// they are instead.
pub fn bins() -> Bins {
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    if let Err(e) = BUILT.get_or_init(build_binaries) {
        panic!("{e}");
    }
    Bins::of_current_exe().unwrap_or_else(|e| panic!("{e:#}"))
}

/// `cargo build` of the two binaries, into the target directory and profile
/// this test binary was built in (a no-op when they are fresh).
fn build_binaries() -> Result<(), String> {
    let chosen = |v: &str| std::env::var_os(v).is_some_and(|p| !p.is_empty());
    if chosen("COMMERCE_BIN") || chosen("OPTERIUS_SIM_BIN") {
        eprintln!("fault suite: using COMMERCE_BIN / OPTERIUS_SIM_BIN as given, not building");
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    // target/<profile>/deps/faults-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("the test binary is not in <target>/<profile>/deps")?;
    let target_dir = profile_dir.parent().ok_or("no target directory")?;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    // The whole workspace's bins, as scripts/test.sh builds them: the same
    // feature set as `cargo test --workspace`, so nothing is built twice.
    cmd.args(["build", "--workspace", "--bins"])
        .arg("--manifest-path")
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target_dir)
        .env("SQLX_OFFLINE", "true");
    if profile_dir.ends_with("release") {
        cmd.arg("--release");
    }
    // What `cargo test` sets for this test binary (CARGO_PKG_*, CARGO_MANIFEST_*...)
    // must not reach the build: build scripts that watch those variables (ring's)
    // would rebuild half the tree here, and again at the next plain build.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_BIN_",
            "CARGO_CRATE_",
            "CARGO_PRIMARY_",
        ]
        .iter()
        .any(|p| name.starts_with(p))
        {
            cmd.env_remove(name.as_ref());
        }
    }
    eprintln!("fault suite: building the binaries it drives: {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("running cargo build: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "cargo build of commerce and opterius-sim failed ({status}); the fault suite will not run stale binaries"
        ))
    }
}

/// Services by status.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub active: i64,
    pub failed: i64,
    pub provisioning: i64,
    pub pending: i64,
    pub total: i64,
}

impl Counts {
    /// Services still waiting for their account.
    pub fn unfinished(&self) -> i64 {
        self.provisioning + self.pending
    }
}

/// id, status, attempts, lock_by, last_result of an apalis job.
type JobRow = (String, String, i32, Option<String>, Option<String>);

/// One scenario's world.
pub struct Rig {
    pub name: String,
    bins: Bins,
    env: CommerceEnv,
    sim: SimProc,
    control: SimControl,
    stack: Option<Stack>,
    catalog: Catalog,
    clients: Vec<i64>,
    log_dir: PathBuf,
}

/// Drops databases left by fault-suite runs whose process is gone.
async fn drop_stale_databases() {
    let Ok(mut conn) = sqlx::PgConnection::connect(&bench::db::admin_url()).await else {
        return;
    };
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'commerce\\_faults\\_%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default();
    for name in names {
        let pid = name.split('_').nth(2).unwrap_or_default();
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
}

impl Rig {
    /// A database, a 4-server simulator, `commerce serve` (with its worker pool
    /// unless `no_worker`), a group of the 4 servers, a product and 20 clients.
    pub async fn start(
        name: &str,
        no_worker: bool,
        env: impl FnOnce(CommerceEnv) -> CommerceEnv,
    ) -> Self {
        drop_stale_databases().await;
        let bins = bins();
        let log_dir = bench::target_subdir(&bins, "faults").join(name);
        let _ = std::fs::remove_dir_all(&log_dir);
        let sim = SimProc::start(&bins, 4, "fault-token", &log_dir.join("sim.log"))
            .unwrap_or_else(|e| panic!("starting the simulator: {e:#}"));
        let control = SimControl::new(&sim).expect("sim control");
        let db_name = format!(
            "commerce_faults_{}_{}",
            std::process::id(),
            name.replace('-', "_")
        );
        let stack = Stack::start(&bins, &db_name, env, no_worker, &log_dir.join("serve.log"))
            .await
            .unwrap_or_else(|e| panic!("starting commerce: {e:#}"));
        let catalog = stack
            .api
            .setup_catalog(&sim, 0, 4, name)
            .await
            .unwrap_or_else(|e| panic!("catalog: {e:#}"));
        let clients = stack
            .api
            .create_clients(20, &name.replace('-', ""))
            .await
            .unwrap_or_else(|e| panic!("clients: {e:#}"));
        Self {
            name: name.to_owned(),
            env: stack.env.clone(),
            bins,
            sim,
            control,
            stack: Some(stack),
            catalog,
            clients,
            log_dir,
        }
    }

    fn stack(&self) -> &Stack {
        self.stack.as_ref().expect("stack")
    }

    pub fn api(&self) -> &Api {
        &self.stack().api
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.stack().pool
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn client_ids(&self) -> &[i64] {
        &self.clients
    }

    pub fn sim(&self) -> &SimProc {
        &self.sim
    }

    pub async fn sim_faults(&self, faults: Value) {
        self.control
            .faults(None, &faults)
            .await
            .unwrap_or_else(|e| panic!("sim faults: {e:#}"));
    }

    /// Places `n` on-order orders (64 requests in flight); every one must be 201.
    pub async fn place_orders(&self, n: usize) {
        let prefix: String = self
            .name
            .chars()
            .filter(char::is_ascii_alphabetic)
            .take(6)
            .collect();
        let placed = self
            .api()
            .place_orders(n, 64, self.catalog.product_id, &self.clients, &prefix)
            .await
            .unwrap_or_else(|e| panic!("placing orders: {e:#}"));
        assert!(
            placed.failures.is_empty(),
            "{} of {n} orders were refused, e.g. {:?}",
            placed.failures.len(),
            placed.failures.first()
        );
    }

    /// A separate `commerce worker` process.
    pub fn start_worker(&self, label: &str) -> Proc {
        self.env
            .worker(&self.bins, &self.log_dir.join(format!("{label}.log")))
            .unwrap_or_else(|e| panic!("starting a worker: {e:#}"))
    }

    pub async fn try_counts(&self) -> anyhow::Result<Counts> {
        let (active, failed, provisioning, pending, total): (i64, i64, i64, i64, i64) =
            sqlx::query_as(
                "SELECT count(*) FILTER (WHERE status = 'active'), count(*) FILTER (WHERE status = 'failed'),
                        count(*) FILTER (WHERE status = 'provisioning'), count(*) FILTER (WHERE status = 'pending'),
                        count(*)
                 FROM services",
            )
            .fetch_one(self.pool())
            .await?;
        Ok(Counts {
            active,
            failed,
            provisioning,
            pending,
            total,
        })
    }

    pub async fn counts(&self) -> Counts {
        self.try_counts()
            .await
            .unwrap_or_else(|e| panic!("counting services: {e:#}"))
    }

    /// Polls until `done` holds; panics with a diagnosis on timeout or as soon
    /// as a service has failed for good. Database errors (a restart) are
    /// retried.
    pub async fn wait_for(&self, limit: Duration, what: &str, done: impl Fn(&Counts) -> bool) {
        let started = Instant::now();
        let mut last = Counts::default();
        loop {
            if let Ok(c) = self.try_counts().await {
                last = c;
                if done(&c) {
                    eprintln!(
                        "[{}] {what} after {:.1} s",
                        self.name,
                        started.elapsed().as_secs_f64()
                    );
                    return;
                }
                if c.failed > 0 {
                    panic!(
                        "[{}] waiting for {what}: {} service(s) failed for good: {c:?}\n{}",
                        self.name,
                        c.failed,
                        self.diagnose().await
                    );
                }
            }
            if started.elapsed() > limit {
                panic!(
                    "[{}] {what}: not reached within {} s, last {last:?}\n{}",
                    self.name,
                    limit.as_secs(),
                    self.diagnose().await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Create attempts sent to the Panel whose answer is not recorded.
    pub async fn pending_log_rows(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM provisioning_log WHERE action = 'create' AND status = 'pending'",
        )
        .fetch_one(self.pool())
        .await
        .expect("pending log rows")
    }

    /// Failed attempts by error kind.
    pub async fn error_kinds(&self) -> Vec<(String, i64)> {
        sqlx::query_as(
            "SELECT coalesce(error_kind, '?'), count(*) FROM provisioning_log WHERE status = 'failed'
             GROUP BY 1 ORDER BY 2 DESC",
        )
        .fetch_all(self.pool())
        .await
        .expect("error kinds")
    }

    /// Every service active with its own Panel account, and the simulator
    /// holding exactly one account per username: none twice, none missing.
    pub async fn assert_exactly_once(&self, n: i64) {
        let c = self.counts().await;
        assert_eq!(c.active, n, "every service active: {c:?}");
        assert_eq!(c.total, n, "no service appeared or vanished: {c:?}");
        let (distinct_accounts, usernames): (i64, i64) = sqlx::query_as(
            "SELECT count(DISTINCT (server_id, panel_account_id)), count(DISTINCT username) FROM services",
        )
        .fetch_one(self.pool())
        .await
        .expect("accounts");
        assert_eq!(
            distinct_accounts, n,
            "each service records its own Panel account"
        );
        let creates = self.control.creates().await.expect("sim creates");
        let dups = creates
            .get("duplicates")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        assert!(
            dups.is_empty(),
            "the Panel created these usernames more than once: {dups:?}"
        );
        assert_eq!(
            creates.get("usernames").and_then(Value::as_i64),
            Some(usernames),
            "the Panel holds one account per service username (none missing)"
        );
        assert_eq!(creates.get("total").and_then(Value::as_i64), Some(n));
        assert_eq!(
            self.control.account_count().await.expect("sim accounts"),
            n as usize,
            "accounts held by the Panel"
        );
    }

    pub fn serve_running(&mut self) -> bool {
        self.stack.as_mut().is_some_and(|s| s.serve.proc.running())
    }

    /// The `commerce serve` log.
    pub fn log_path(&self) -> PathBuf {
        self.log_dir.join("serve.log")
    }

    pub fn log_tail(&self) -> String {
        log_tail(&self.log_dir.join("serve.log"), 40)
    }

    /// Service statuses, examples of unfinished services, job rows by status,
    /// failed attempts by kind, and the end of the service log.
    pub async fn diagnose(&self) -> String {
        let pool = self.pool();
        let by_status: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, count(*) FROM services GROUP BY 1 ORDER BY 1")
                .fetch_all(pool)
                .await
                .unwrap_or_default();
        let stuck: Vec<(i64, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT id, status, last_error::text, lease_until::text FROM services WHERE status <> 'active'
             ORDER BY id LIMIT 5",
        )
        .fetch_all(pool)
        .await
        .unwrap_or_default();
        let jobs: Vec<(String, i64)> =
            sqlx::query_as("SELECT status::text, count(*) FROM apalis.jobs GROUP BY 1 ORDER BY 1")
                .fetch_all(pool)
                .await
                .unwrap_or_default();
        let stuck_jobs: Vec<JobRow> = sqlx::query_as(
            "SELECT id::text, status::text, attempts::int4, lock_by::text, last_result::text FROM apalis.jobs
             WHERE status NOT IN ('Done') ORDER BY run_at LIMIT 5",
        )
        .fetch_all(pool)
        .await
        .unwrap_or_default();
        format!(
            "services by status: {by_status:?}\nunfinished services: {stuck:#?}\njobs by status: {jobs:?}\n\
             unfinished jobs: {stuck_jobs:#?}\nfailed attempts by kind: {:?}\nlogs in {}\n--- serve.log (tail) ---\n{}",
            self.error_kinds().await,
            self.log_dir.display(),
            self.log_tail()
        )
    }

    /// Stops everything and drops the database.
    pub async fn finish(mut self) {
        if let Some(stack) = self.stack.take()
            && let Err(e) = stack.stop().await
        {
            eprintln!("[{}] cleanup: {e:#}", self.name);
        }
    }
}

/// The local PostgreSQL cluster that serves DATABASE_URL.
pub struct Cluster {
    version: String,
    cluster: String,
    port: u16,
}

/// Finds the cluster (via pg_lsclusters) or says why it cannot be restarted.
pub fn pg_cluster() -> Result<Cluster, String> {
    let url = bench::db::admin_url();
    let authority = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split(['/', '?']).next())
        .unwrap_or_default();
    let hostport = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|e| format!("port in DATABASE_URL: {e}"))?,
        ),
        None => (hostport, 5432),
    };
    if !["127.0.0.1", "localhost", "::1", "[::1]", ""].contains(&host) {
        return Err(format!("DATABASE_URL points at {host}, not this machine"));
    }
    let out = Command::new("pg_lsclusters")
        .arg("-h")
        .output()
        .map_err(|e| format!("pg_lsclusters: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(2).and_then(|p| p.parse::<u16>().ok()) == Some(port))
        .ok_or_else(|| format!("no cluster on port {port} in pg_lsclusters"))?;
    let c = Cluster {
        version: line[0].to_owned(),
        cluster: line[1].to_owned(),
        port,
    };
    let me = Command::new("id")
        .arg("-un")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let owner = line.get(4).copied().unwrap_or("postgres");
    if me != "root" && me != owner {
        return Err(format!(
            "pg_ctlcluster needs root or the cluster owner {owner}; running as {me:?}"
        ));
    }
    if !c.online() {
        return Err(format!("cluster {} is not online", c.name()));
    }
    Ok(c)
}

impl Cluster {
    pub fn name(&self) -> String {
        format!("{}/{}", self.version, self.cluster)
    }

    fn ctl(&self, action: &str) -> bool {
        Command::new("pg_ctlcluster")
            .args([
                "--skip-systemctl-redirect",
                &self.version,
                &self.cluster,
                action,
            ])
            .status()
            .is_ok_and(|s| s.success())
    }

    fn online(&self) -> bool {
        Command::new("pg_isready")
            .args([
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-t",
                "2",
            ])
            .status()
            .is_ok_and(|s| s.success())
    }

    fn wait_online(&self, limit: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.online() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// `pg_ctlcluster restart`; returns once it accepts connections again.
    pub fn restart(&self) {
        assert!(
            self.ctl("restart"),
            "pg_ctlcluster {} restart failed",
            self.name()
        );
        assert!(
            self.wait_online(Duration::from_secs(60)),
            "PostgreSQL {} did not come back within 60 s",
            self.name()
        );
    }
}

impl Drop for Cluster {
    /// Whatever happened, leave PostgreSQL running.
    fn drop(&mut self) {
        if !self.online() {
            let _ = self.ctl("start");
            let _ = self.wait_online(Duration::from_secs(60));
        }
    }
}
