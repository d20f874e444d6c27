//! One `LISTEN` for every queue. apalis's own `with_pubsub()` opens a
//! listener connection per queue, eight connections held for good; its
//! `PostgresStorageFactory` shares one but panics when PostgreSQL is down at
//! start and when a restarted worker's receiver is gone. Here one task holds
//! the listener, reconnects after an outage, and wakes the workers of the
//! queue a new job names. A wake is only a hint to fetch now: each worker
//! still polls every second, so a notification lost while the listener was
//! reconnecting delays a job by at most that second.

use std::collections::HashMap;
use std::time::Duration;

use apalis_postgres::{InsertEvent, PgListener};
use futures::Stream;
use sqlx::PgPool;
use tokio::sync::watch;

/// The channel apalis's insert trigger notifies.
const CHANNEL: &str = "apalis::job::insert";
/// How long the listener waits before it tries to reconnect.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// The shared listener's task and one wake signal per queue. Dropping it
/// stops the task (and returns its connection to the pool).
pub struct Wakeups {
    queues: HashMap<&'static str, watch::Sender<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Wakeups {
    /// Starts listening for new jobs of `queues`.
    pub fn start(pool: &PgPool, queues: impl IntoIterator<Item = &'static str>) -> Self {
        let queues: HashMap<_, _> = queues
            .into_iter()
            .map(|q| (q, watch::Sender::new(0)))
            .collect();
        let senders = queues.clone();
        let task = tokio::spawn(listen(pool.clone(), senders));
        Self { queues, task }
    }

    /// The wake-ups of `queue`, as the stream a worker's poll strategy reads:
    /// one item each time at least one job was inserted since the last item.
    /// A worker rebuilt after a failure asks again and gets its own.
    pub fn of(&self, queue: &str) -> impl Stream<Item = ()> + Unpin + Send + use<> {
        let rx = self.queues.get(queue).map(watch::Sender::subscribe);
        Box::pin(futures::stream::unfold(rx, |rx| async move {
            let mut rx = rx?;
            rx.changed().await.ok()?;
            Some(((), Some(rx)))
        }))
    }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Holds the listener until the task is aborted. A lost connection
/// (PostgreSQL restarting) is logged once, and the listener reconnects.
async fn listen(pool: PgPool, queues: HashMap<&'static str, watch::Sender<u64>>) {
    let mut lost = false;
    loop {
        let error = match subscribe(&pool).await {
            Ok(mut listener) => {
                if lost {
                    tracing::info!("job wake-up listener reconnected");
                    lost = false;
                }
                // A job inserted while the listener was away had no
                // notification: wake every queue once instead of waiting
                // for its poll.
                queues.values().for_each(wake);
                relay(&mut listener, &queues).await
            }
            Err(e) => e,
        };
        if !lost {
            tracing::warn!(error = %error, "job wake-up listener lost its connection; reconnecting (workers still poll every second)");
            lost = true;
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // By default `try_recv` reconnects before it reports a lost
    // connection (waiting out the pool's acquire timeout while PostgreSQL
    // is down); `listen` below reconnects instead, once, and says so.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Passes each notification on to its queue until the connection fails.
async fn relay(
    listener: &mut PgListener,
    queues: &HashMap<&'static str, watch::Sender<u64>>,
) -> sqlx::Error {
    loop {
        // `None`: the connection was lost. The caller reconnects (and wakes
        // every queue), where `recv` would reconnect silently.
        let note = match listener.try_recv().await {
            Ok(Some(note)) => note,
            Ok(None) => {
                return sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "the connection to PostgreSQL was lost",
                ));
            }
            Err(e) => return e,
        };
        let Ok(event) = serde_json::from_str::<InsertEvent>(note.payload()) else {
            continue;
        };
        if let Some(tx) = queues.get(event.job_type.as_str()) {
            wake(tx);
        }
    }
}

fn wake(tx: &watch::Sender<u64>) {
    tx.send_modify(|n| *n = n.wrapping_add(1));
}
