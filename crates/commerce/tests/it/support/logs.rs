//! Capturing this test's log events, reliably beside the other tests of the
//! binary.
//!
//! tracing caches each callsite's interest for the whole process. While only
//! one dispatcher is registered, it takes that interest from the default of
//! whichever thread reaches the callsite first. A sibling test's thread has
//! no subscriber, so it caches "never", and the event is then dropped on
//! every thread, this test's capture included (tokio-rs/tracing#3611; it
//! made an outage test miss its "restarting" and "lost its connection"
//! lines in CI, never alone). With a second dispatcher registered, tracing
//! asks all of them, so the capture's interest counts.

use std::sync::{Arc, Mutex};

use tracing::Subscriber;
use tracing::subscriber::DefaultGuard;

/// Log output kept in memory: a `fmt` subscriber's writer.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

/// `subscriber` is this thread's default until the guard drops.
pub struct LogCapture {
    _default: DefaultGuard,
    _second: tracing::Dispatch,
}

pub fn capture(subscriber: impl Subscriber + Send + Sync + 'static) -> LogCapture {
    let default = tracing::subscriber::set_default(subscriber);
    // Registering a dispatcher also re-evaluates every callsite already
    // cached, so one a sibling cached as "never" before is repaired here.
    let second = tracing::Dispatch::new(tracing_subscriber::registry());
    LogCapture {
        _default: default,
        _second: second,
    }
}
