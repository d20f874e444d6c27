//! Test Connection: one saved server, unsaved form values, or every server at
//! once (bounded fan-out, per-server timeout). Results are stored on the rows.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use provisioning::{Credentials, Failure, FailureKind, ProvisioningResult, Redactor};
use serde::{Deserialize, Serialize};

use crate::app::alerts;
use crate::app::error::{AppError, AppResult};
use crate::app::servers::{self, ServerRow};
use crate::app::tls::ServerTls;
use crate::domain::FieldErrors;
use crate::state::Core;

/// What a connection test found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TestOutcome {
    pub ok: bool,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::domain::ProvisioningErrorSchema>)]
    pub error: Option<Failure>,
}

/// One server's result in a sweep.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SweepItem {
    pub server_id: i64,
    #[serde(flatten)]
    pub outcome: TestOutcome,
}

/// Unsaved values from the server form (or the API).
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsavedTest {
    pub module: String,
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
    /// With a server id, a blank secret means the stored one.
    pub server_id: Option<i64>,
    /// The trust to test with; with a server id and none given, the stored one.
    #[serde(default)]
    pub tls: Option<ServerTls>,
}

impl std::fmt::Debug for UnsavedTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsavedTest")
            .field("module", &self.module)
            .field("credentials", &servers::CredentialNames(&self.credentials))
            .field("server_id", &self.server_id)
            .field("tls", &self.tls)
            .finish()
    }
}

fn outcome(result: ProvisioningResult, started: Instant) -> TestOutcome {
    let latency_ms = started.elapsed().as_millis() as u64;
    match result.outcome {
        Ok(ok) => TestOutcome {
            ok: true,
            latency_ms,
            server: Some(serde_json::json!({
                "name": ok.data.get("name"),
                "version": ok.data.get("version"),
                "message": ok.message,
            })),
            error: None,
        },
        Err(f) => TestOutcome {
            ok: false,
            latency_ms,
            server: None,
            error: Some(f),
        },
    }
}

/// Runs the module's test_connection within `limit`.
async fn probe(
    state: &Core,
    module_id: &str,
    creds: &Credentials,
    tls: &ServerTls,
    limit: Duration,
) -> TestOutcome {
    let started = Instant::now();
    let Some(module) = state.registry.get(module_id) else {
        let f = Failure::new(
            FailureKind::Config,
            format!("unknown module {module_id:?}"),
            "Pick a known module.",
            false,
        );
        return outcome(ProvisioningResult::failure(f), started);
    };
    let ctx = state.http.ctx_for(tls);
    match tokio::time::timeout(limit, module.test_connection(&ctx, creds)).await {
        Ok(mut result) => {
            // A certificate the admin may pin: say which one the Panel presented.
            if let Err(f) = &mut result.outcome
                && f.kind == FailureKind::Tls
                && let Some(url) = creds.field("api_url").filter(|u| u.starts_with("https://"))
            {
                f.certificate = state.http.presented_certificate(url).await.map(Box::new);
            }
            // The answer and what is stored on the server hold no credential,
            // whatever the Panel (or whatever answered instead) sent back.
            outcome(Redactor::for_attempt(creds, &[]).result(&result), started)
        }
        Err(_) => {
            let kind = FailureKind::Timeout;
            let f = Failure::new(
                kind,
                format!("no answer within {} s", limit.as_secs()),
                kind.hint(),
                true,
            );
            outcome(ProvisioningResult::failure(f), started)
        }
    }
}

async fn store(state: &Core, id: i64, o: &TestOutcome) -> AppResult<()> {
    let error = o
        .error
        .as_ref()
        .map(|e| serde_json::to_value(e).unwrap_or_default());
    let panel = o.server.as_ref().map(|s| {
        let text = |k: &str| s.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        (text("name"), text("version"))
    });
    let before = servers::record_health(
        &state.pool,
        id,
        o.ok,
        i32::try_from(o.latency_ms).unwrap_or(i32::MAX),
        error.as_ref(),
        panel,
    )
    .await?;
    // One alert per change, not per test: offline from anything else, and
    // online again after offline (a first test of a new server is no news).
    let Some((name, was)) = before else {
        return Ok(());
    };
    match (was.as_str(), o.ok, &o.error) {
        ("offline", true, _) => {
            let message = format!("server {name} is back online (a connection test passed)");
            alerts::raise(
                &state.pool,
                &state.config,
                &alerts::NewAlert {
                    event: "server_online",
                    service_id: None,
                    server_id: Some(id),
                    kind: None,
                    message: &message,
                    hint: None,
                },
            )
            .await
        }
        (w, false, Some(f)) if w != "offline" => {
            let message = format!("server {name} is offline: {}", f.message);
            alerts::raise(
                &state.pool,
                &state.config,
                &alerts::NewAlert {
                    event: "server_offline",
                    service_id: None,
                    server_id: Some(id),
                    kind: Some(f.kind.as_str()),
                    message: &message,
                    hint: Some(&f.hint),
                },
            )
            .await
        }
        _ => Ok(()),
    }
}

async fn test_row(state: &Core, row: &ServerRow, limit: Duration) -> AppResult<TestOutcome> {
    let creds = servers::credentials(row, &state.sealer)?;
    let o = probe(state, &row.module, &creds, &row.tls(), limit).await;
    store(state, row.id, &o).await?;
    Ok(o)
}

/// Tests a saved server and stores the result on it (the plug icon).
pub async fn test_saved(state: &Core, id: i64) -> AppResult<TestOutcome> {
    let row = servers::get(&state.pool, id).await?;
    test_row(
        state,
        &row,
        state.config.panel_timeout + Duration::from_secs(1),
    )
    .await
}

/// Tests values as typed on the form, unsaved. Nothing is stored.
pub async fn test_unsaved(state: &Core, input: &UnsavedTest) -> AppResult<TestOutcome> {
    let module = state
        .registry
        .get(input.module.trim())
        .ok_or_else(|| AppError::field("module", format!("unknown module {:?}", input.module)))?;
    let (stored, stored_tls) = match input.server_id {
        Some(id) => {
            let row = servers::get(&state.pool, id).await?;
            (
                Some(servers::credentials(&row, &state.sealer)?),
                Some(row.tls()),
            )
        }
        None => (None, None),
    };
    let mut errors = FieldErrors::default();
    let tls = match (&input.tls, stored_tls) {
        (None, Some(t)) => t,
        (given, _) => ServerTls::parse(given.as_ref(), &mut errors),
    };
    let creds = servers::split_credentials(
        module.as_ref(),
        &input.credentials,
        stored.as_ref(),
        &mut errors,
    );
    errors.into_result()?;
    Ok(probe(
        state,
        module.info().id,
        &creds,
        &tls,
        state.config.panel_timeout + Duration::from_secs(1),
    )
    .await)
}

/// The advisory lock that makes Test all one at a time across processes.
const SWEEP_LOCK: i64 = 0x636f_6d6d_7377_6570;

/// The right to run Test all: this process's flag and, on a connection of its
/// own, the cluster-wide advisory lock. Released when the sweep's stream ends
/// (or, if the stream is dropped early, by a task spawned on drop).
pub struct SweepSlot {
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
    lock: Option<sqlx::PgConnection>,
}

impl SweepSlot {
    async fn release(mut self) {
        if let Some(conn) = self.lock.take() {
            unlock(conn).await;
        }
        self.flag.store(false, std::sync::atomic::Ordering::Release);
    }
}

async fn unlock(mut conn: sqlx::PgConnection) {
    use sqlx::Connection as _;
    let _ = sqlx::query_scalar!("SELECT pg_advisory_unlock($1)", SWEEP_LOCK)
        .fetch_one(&mut conn)
        .await;
    // Closing the session releases the lock even if the unlock failed.
    let _ = conn.close().await;
}

impl Drop for SweepSlot {
    fn drop(&mut self) {
        if let Some(conn) = self.lock.take() {
            let flag = self.flag.clone();
            tokio::spawn(async move {
                unlock(conn).await;
                flag.store(false, std::sync::atomic::Ordering::Release);
            });
        } else {
            self.flag.store(false, std::sync::atomic::Ordering::Release);
        }
    }
}

/// Takes the one Test all slot (of this process, then of the whole cluster),
/// or says one is already running: a sweep fans out to every server, two at
/// once double the load for nothing.
pub async fn start_sweep(state: &Core) -> AppResult<SweepSlot> {
    use std::sync::atomic::Ordering;
    let busy = || {
        AppError::conflict("a Test all is already running; wait for its results, then try again")
    };
    state
        .sweep_running
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .map_err(|_| busy())?;
    let mut slot = SweepSlot {
        flag: state.sweep_running.clone(),
        lock: None,
    };
    // A connection of its own, out of the pool: the session holds the lock.
    let mut conn = state.pool.acquire().await?.detach();
    let got = sqlx::query_scalar!(r#"SELECT pg_try_advisory_lock($1) as "got!""#, SWEEP_LOCK)
        .fetch_one(&mut conn)
        .await?;
    if !got {
        use sqlx::Connection as _;
        let _ = conn.close().await;
        return Err(busy());
    }
    slot.lock = Some(conn);
    Ok(slot)
}

/// Tests every enabled server concurrently, yielding each result as it arrives;
/// holds `slot` until the stream ends (then releases it) or is dropped.
pub fn sweep(state: Core, rows: Vec<ServerRow>, slot: SweepSlot) -> impl Stream<Item = SweepItem> {
    let limit = state.config.sweep_timeout;
    let width = state.config.sweep_concurrency;
    let release = futures::stream::once(async move {
        slot.release().await;
        None
    });
    futures::stream::iter(rows.into_iter().filter(|r| r.enabled))
        .map(move |row| {
            let state = state.clone();
            async move {
                let outcome = match test_row(&state, &row, limit).await {
                    Ok(o) => o,
                    Err(e) => {
                        let f = Failure::new(
                            FailureKind::Internal,
                            e.to_string(),
                            "Check the server's stored credentials.",
                            false,
                        );
                        TestOutcome {
                            ok: false,
                            latency_ms: 0,
                            server: None,
                            error: Some(f),
                        }
                    }
                };
                SweepItem {
                    server_id: row.id,
                    outcome,
                }
            }
        })
        .buffer_unordered(width)
        .map(Some)
        .chain(release)
        .filter_map(futures::future::ready)
}
