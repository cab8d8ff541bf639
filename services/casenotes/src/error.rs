//! Everything that can go wrong in casenotes, mapped once to a status.

use careers_platform::status;
use sea_orm::DbErr;

use tonic::Status;

use crate::{audit_log::AuditLogError, crypto::CryptoError, keystore::KeystoreError};
use careers_platform::status::Refusal;

#[derive(Debug, thiserror::Error)]
pub enum CasenotesError {
    #[error("{0}")]
    Forbidden(String),
    /// An unknown id, another organisation's client and an erased one all read the same.
    #[error("no {0} with that id")]
    NotFound(&'static str),
    #[error("{}", .0.iter().map(|(field, problem)| format!("{field}: {problem}")).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<(&'static str, String)>),
    #[error("a note is at most {max} bytes of UTF-8; this one is {actual}")]
    NoteTooLong { max: usize, actual: usize },
    #[error("the client has not consented to {0}; record their consent first")]
    ConsentRequired(&'static str),
    #[error("send If-Match with the version you read")]
    IfMatchRequired,
    #[error("the client changed since version {0}; read it again")]
    VersionConflict(i64),
    #[error("{0}")]
    InvalidTransition(String),
    #[error("the cursor is not one this listing issued; start again without it")]
    BadCursor,
    #[error("store: {0}")]
    Store(#[from] DbErr),
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Audit(#[from] AuditLogError),
    #[error("events: {0}")]
    Events(#[from] careers_eventbus::EventbusError),
    #[error("stored record unreadable: {0}")]
    Corrupt(String),
}

impl From<CasenotesError> for Status {
    fn from(error: CasenotesError) -> Self {
        let message = error.to_string();
        match &error {
            CasenotesError::Forbidden(_) => Refusal::Forbidden.status(message),
            CasenotesError::NotFound(_) => Refusal::NotFound.status(message),
            CasenotesError::Invalid(fields) => status::invalid_fields(message, fields),
            // The contract's own code, with the field still named.
            CasenotesError::NoteTooLong { .. } => {
                status::invalid_field("note_too_long", "text", message)
            }
            CasenotesError::ConsentRequired(_) => Refusal::ConsentRequired.status(message),
            CasenotesError::IfMatchRequired => Refusal::IfMatchRequired.status(message),
            CasenotesError::VersionConflict(_) => Refusal::VersionConflict.status(message),
            CasenotesError::InvalidTransition(_) => Refusal::InvalidTransition.status(message),
            CasenotesError::BadCursor => Refusal::BadCursor.status(message),
            CasenotesError::Store(store) => status::store(store),
            CasenotesError::Keystore(_)
            | CasenotesError::Crypto(_)
            | CasenotesError::Audit(_)
            | CasenotesError::Events(_)
            | CasenotesError::Corrupt(_) => status::internal(&error),
        }
    }
}
