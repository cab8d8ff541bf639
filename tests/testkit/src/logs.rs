//! The log lines a process writes (the platform's JSON lines, at the default filter),
//! captured in memory so that a test can search them: for request ids, and for what must
//! never be logged.

use std::{
    io::Write,
    sync::{Arc, Mutex, PoisonError},
};

use careers_platform::settings::TelemetrySettings;

/// Everything logged in this process since [`capture`].
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// The lines so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

/// One write into the buffer.
#[derive(Debug)]
pub struct CapturedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the platform's log subscriber, writing here: call it first in a test, before
/// any service starts (a process has one subscriber, and the first one stays).
pub fn capture() -> anyhow::Result<CapturedLogs> {
    let logs = CapturedLogs::default();
    let buffer = logs.0.clone();
    let guard = careers_platform::telemetry::init_writing_to(
        "test",
        &TelemetrySettings::default(),
        None::<crate::spans::SpanCollector>,
        move || CapturedWriter(buffer.clone()),
    )?;
    // Nothing is exported, so there is nothing to flush at the end.
    drop(guard);
    Ok(logs)
}
