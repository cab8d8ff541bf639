//! The platform every careers service is built on, written once.
//!
//! - [`settings`]: layered configuration with unknown keys refused by path.
//! - [`telemetry`]: JSON logs with trace ids, OTLP traces, Prometheus metrics.
//! - [`store`]: SQLite or PostgreSQL from one URL, migrations under an advisory lock.
//! - [`readiness`]: the `liveness` and full-name health statuses of CONTRACT.md.
//! - [`cursor`]: opaque HMAC-signed page cursors.
//! - [`grpc`]: reflection and W3C trace context on calls.
//! - [`identity`]: the gateway's identity token, verified by every service.
//! - [`service`]: the [`service::Service`] trait, [`service::App`] and the shared `main`.
//! - [`shutdown`]: SIGTERM and Ctrl-C.
//! - [`status`]: errors as gRPC statuses with the contract code in `ErrorInfo`.

pub mod cursor;
pub mod grpc;
pub mod identity;
pub mod readiness;
pub mod service;
pub mod settings;
pub mod shutdown;
pub mod status;
pub mod store;
pub mod telemetry;

pub use service::{App, AppError, Context, Service};

/// The version and the commit this was built from, e.g. `0.1.0 (commit 8ae1317c0d2a)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CAREERS_COMMIT"),
    ")"
);
/// The commit this was built from (`unknown` when neither git nor `CAREERS_COMMIT` said).
pub const COMMIT: &str = env!("CAREERS_COMMIT");
pub use settings::Settings;
