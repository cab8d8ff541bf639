//! The event backbone shared by every careers service.
//!
//! - [`migration`]: the `outbox` and `inbox` tables each service's migrator includes, so
//!   a state change and its event, or an event and its effect, commit in one transaction.
//!
//! The JetStream relay, consumers, dead letters and reconciler build on these tables.

pub mod migration;
