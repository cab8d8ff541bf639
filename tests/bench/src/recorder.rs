//! A metrics recorder that keeps histogram samples, so the bench reads the figures the
//! services themselves record (for example `careers_event_propagation_seconds`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

/// Histogram samples by metric name.
#[derive(Debug, Clone, Default)]
pub struct Samples(Arc<Mutex<HashMap<String, Vec<f64>>>>);

impl Samples {
    pub fn clear(&self) {
        if let Ok(mut samples) = self.0.lock() {
            samples.clear();
        }
    }

    pub fn take(&self, name: &str) -> Vec<f64> {
        self.0
            .lock()
            .map(|mut samples| samples.remove(name).unwrap_or_default())
            .unwrap_or_default()
    }
}

struct Series {
    name: String,
    samples: Samples,
}

impl HistogramFn for Series {
    fn record(&self, value: f64) {
        if let Ok(mut samples) = self.samples.0.lock() {
            samples.entry(self.name.clone()).or_default().push(value);
        }
    }
}

#[derive(Debug)]
struct SampleRecorder(Samples);

impl Recorder for SampleRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Series {
            name: key.name().to_owned(),
            samples: self.0.clone(),
        }))
    }
}

/// Installs the recorder for the process and returns its samples.
pub fn install() -> Samples {
    let samples = Samples::default();
    if metrics::set_global_recorder(SampleRecorder(samples.clone())).is_err() {
        eprintln!(
            "bench: a metrics recorder was already installed; figures from metrics will be empty"
        );
    }
    samples
}
