//! The one way services turn a failure into a gRPC status: the CONTRACT.md `code` rides
//! as `google.rpc.ErrorInfo{reason, domain: "careers"}` and field errors as
//! `google.rpc.BadRequest`, which the gateway maps to problem+json.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The ErrorInfo domain of every careers error.
pub const DOMAIN: &str = "careers";

/// A status with its contract `code` (snake_case) and a message a person can act on.
pub fn status(code: Code, reason: &str, message: impl Into<String>) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, DOMAIN, HashMap::new()),
    )
}

/// INVALID_ARGUMENT `validation_failed` with one violation per field.
pub fn invalid_fields(message: impl Into<String>, fields: &[(&str, String)]) -> Status {
    let mut details = ErrorDetails::with_error_info("validation_failed", DOMAIN, HashMap::new());
    for (field, problem) in fields {
        details.add_bad_request_violation(*field, problem.clone());
    }
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// INVALID_ARGUMENT with a code of its own (`dbs_expired`), the field still named.
pub fn invalid_field(reason: &str, field: &str, message: impl Into<String>) -> Status {
    let message = message.into();
    let mut details = ErrorDetails::with_error_info(reason, DOMAIN, HashMap::new());
    details.add_bad_request_violation(field, message.clone());
    Status::with_error_details(Code::InvalidArgument, message, details)
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
    fn internal_errors_carry_no_detail() {
        let status = internal(&"connection refused to 10.0.0.3");
        assert_eq!(status.message(), "internal error");
    }
}
