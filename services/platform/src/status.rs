//! The one way services turn a failure into a gRPC status: the CONTRACT.md `code` rides
//! as `google.rpc.ErrorInfo{reason, domain: "careers"}` and field errors as
//! `google.rpc.BadRequest`, which the gateway maps to problem+json.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The ErrorInfo domain of every careers error.
pub const DOMAIN: &str = "careers";

/// The longest message a status carries, in characters. Messages echo what the caller
/// sent; a 100,000-character value echoed in the `grpc-message` header (and again in the
/// details) would exceed HTTP/2's header limit and reach the caller as a transport error.
pub const MESSAGE_LIMIT: usize = 300;

/// `text` cut to [`MESSAGE_LIMIT`] characters, marked with `…` where it was cut.
pub fn bounded(text: impl Into<String>) -> String {
    let text = text.into();
    match text.char_indices().nth(MESSAGE_LIMIT) {
        None => text,
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// The refusals every service answers alike, each with its one gRPC code and contract
/// code, so no service can drift from the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The caller's role or organisation does not allow this.
    Forbidden,
    NotFound,
    /// A page cursor this listing did not issue.
    BadCursor,
    /// The record changed since the version the caller read.
    VersionConflict,
    /// A write that needs `If-Match` (or `expected_version`) came without it.
    IfMatchRequired,
    /// A state change the record's current state does not allow.
    InvalidTransition,
    /// Consent the data needs was not given.
    ConsentRequired,
}

impl Refusal {
    /// The gRPC code and the contract code (`ErrorInfo.reason`).
    pub fn codes(self) -> (Code, &'static str) {
        match self {
            Self::Forbidden => (Code::PermissionDenied, "forbidden"),
            Self::NotFound => (Code::NotFound, "not_found"),
            Self::BadCursor => (Code::InvalidArgument, "bad_cursor"),
            Self::VersionConflict => (Code::Aborted, "version_conflict"),
            Self::IfMatchRequired => (Code::FailedPrecondition, "if_match_required"),
            Self::InvalidTransition => (Code::FailedPrecondition, "invalid_transition"),
            Self::ConsentRequired => (Code::FailedPrecondition, "consent_required"),
        }
    }

    /// This refusal as a status saying `message`.
    pub fn status(self, message: impl Into<String>) -> Status {
        let (code, reason) = self.codes();
        status(code, reason, message)
    }
}

/// A status with its contract `code` (snake_case) and a message a person can act on.
pub fn status(code: Code, reason: &str, message: impl Into<String>) -> Status {
    Status::with_error_details(
        code,
        bounded(message),
        ErrorDetails::with_error_info(reason, DOMAIN, HashMap::new()),
    )
}

/// INVALID_ARGUMENT `validation_failed` with one violation per field.
pub fn invalid_fields(message: impl Into<String>, fields: &[(&str, String)]) -> Status {
    let mut details = ErrorDetails::with_error_info("validation_failed", DOMAIN, HashMap::new());
    for (field, problem) in fields {
        details.add_bad_request_violation(bounded(*field), bounded(problem.clone()));
    }
    Status::with_error_details(Code::InvalidArgument, bounded(message), details)
}

/// INVALID_ARGUMENT with a code of its own (`dbs_expired`), the field still named.
pub fn invalid_field(reason: &str, field: &str, message: impl Into<String>) -> Status {
    let message = bounded(message);
    let mut details = ErrorDetails::with_error_info(reason, DOMAIN, HashMap::new());
    details.add_bad_request_violation(bounded(field), message.clone());
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// A store failure: with every connection taken (a burst of slow calls), UNAVAILABLE
/// `store_busy`, which the caller may retry; anything else INTERNAL, logged.
pub fn store(error: &sea_orm::DbErr) -> Status {
    if matches!(error, sea_orm::DbErr::ConnectionAcquire(_)) {
        tracing::warn!(%error, "no store connection free");
        metrics::counter!("careers_store_busy_total").increment(1);
        return status(
            Code::Unavailable,
            "store_busy",
            "the service is busy; retry in a moment",
        );
    }
    internal(error)
}

/// INTERNAL without detail; the cause is logged once here and never sent.
pub fn internal(cause: &dyn std::fmt::Display) -> Status {
    tracing::error!(error = %cause, "internal error");
    status(Code::Internal, "internal", "internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_code_and_field_errors_travel_in_the_details() {
        let status = invalid_fields(
            "soc_code must be four digits",
            &[("soc_code", "must match ^[1-9][0-9]{3}$".into())],
        );
        assert_eq!(status.code(), Code::InvalidArgument);
        let info = status.get_details_error_info().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("validation_failed", "careers")
        );
        let violations = status.get_details_bad_request().unwrap().field_violations;
        assert_eq!(violations[0].field, "soc_code");
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let echoed = "é".repeat(100_000);
        let status = invalid_fields(
            format!("name is too long: {echoed}"),
            &[("name", format!("must be shorter than {echoed}"))],
        );
        assert_eq!(status.message().chars().count(), MESSAGE_LIMIT + 1);
        assert!(status.message().ends_with('…'));
        let violation = &status.get_details_bad_request().unwrap().field_violations[0];
        assert_eq!(violation.field, "name");
        assert_eq!(violation.description.chars().count(), MESSAGE_LIMIT + 1);
        assert_eq!(bounded("short"), "short");
    }

    #[tokio::test]
    async fn a_store_with_every_connection_taken_is_unavailable_not_internal() {
        use sea_orm::{ConnectOptions, ConnectionTrait, Database, TransactionTrait};
        let mut options = ConnectOptions::new("sqlite::memory:");
        options
            .max_connections(1)
            .acquire_timeout(std::time::Duration::from_millis(100));
        let db = Database::connect(options).await.unwrap();
        let held = db.begin().await.unwrap();
        let error = db.execute_unprepared("SELECT 1").await.unwrap_err();
        let status = store(&error);
        assert_eq!(status.code(), Code::Unavailable, "{error}");
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "store_busy"
        );
        held.rollback().await.unwrap();
        let other = store(&sea_orm::DbErr::Custom("disk on fire".into()));
        assert_eq!(other.code(), Code::Internal);
        assert_eq!(other.message(), "internal error");
    }

    #[test]
    fn internal_errors_carry_no_detail() {
        let status = internal(&"connection refused to 10.0.0.3");
        assert_eq!(status.message(), "internal error");
    }
}
