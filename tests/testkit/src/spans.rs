//! A span exporter that keeps what it is given, for tests that follow a trace.

use std::sync::{Arc, Mutex};

use opentelemetry_sdk::{
    error::OTelSdkResult,
    trace::{SpanData, SpanExporter},
};

/// Collects exported spans; clones share the collection.
#[derive(Debug, Clone, Default)]
pub struct SpanCollector(Arc<Mutex<Vec<SpanData>>>);

impl SpanCollector {
    /// Every span exported so far.
    pub fn spans(&self) -> Vec<SpanData> {
        self.0.lock().map(|spans| spans.clone()).unwrap_or_default()
    }
}

impl SpanExporter for SpanCollector {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if let Ok(mut spans) = self.0.lock() {
            spans.extend(batch);
        }
        Ok(())
    }
}
