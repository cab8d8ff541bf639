//! Everything that can go wrong in lmi, mapped once to a gRPC status.

use careers_platform::status;
use careers_platform::status::Refusal;
use sea_orm::DbErr;
use tonic::{Code, Status};

fn unsealed(sent: Option<u64>, received: u64) -> String {
    match sent {
        Some(sent) => format!(
            "the stream's end counts {sent} rows but {received} arrived; nothing was recorded, send it again"
        ),
        None => format!(
            "the stream ended after {received} rows without its end part (the upload was cut off or given up); nothing was recorded, send it again"
        ),
    }
}

/// Everything that can go wrong in lmi, mapped once to a status.
#[derive(Debug, thiserror::Error)]
pub enum LmiError {
    #[error("this needs the {0} role")]
    RoleRequired(&'static str),
    #[error("the token names no SSC (claim `ssc`)")]
    SscClaimMissing,
    #[error("SSC {0:?} is not registered")]
    UnknownSsc(String),
    #[error("submission_key must be 1 to 200 characters")]
    InvalidKey,
    #[error("the first message must be the submission header, and only the first")]
    HeaderFirst,
    #[error("nothing may follow the end of a submission's stream")]
    AfterEnd,
    #[error("{}", unsealed(*.sent, *.received))]
    Unsealed { sent: Option<u64>, received: u64 },
    #[error("a submission holds at most {0} rows")]
    TooManyRows(u64),
    #[error("{}", .0.iter().map(|(field, problem)| format!("{field}: {problem}")).collect::<Vec<_>>().join("; "))]
    InvalidQuery(Vec<(&'static str, String)>),
    #[error("the cursor is not one this listing issued; start again without it")]
    BadCursor,
    #[error("no SSC {0} is registered")]
    SscNotFound(String),
    #[error("SSC {0} is already registered")]
    SscExists(String),
    #[error("{}", .0.iter().map(|(field, problem)| format!("{field}: {problem}")).collect::<Vec<_>>().join("; "))]
    InvalidSsc(Vec<(&'static str, String)>),
    #[error("no figure {0} is held for review")]
    FigureNotFound(String),
    #[error("figure {0} was already {1}; a decision is final")]
    AlreadyDecided(String, String),
    #[error("a rejection needs a reason")]
    ReasonRequired,
    #[error(
        "the upload stalled for longer than submissions.staging_timeout and was dropped; send it again with the same key"
    )]
    StagingExpired,
    #[error("no submission {0}")]
    SubmissionNotFound(String),
    #[error("stored answer unreadable: {0}")]
    Corrupt(String),
    #[error("store: {0}")]
    Store(#[from] DbErr),
    #[error("events: {0}")]
    Events(#[from] careers_eventbus::EventbusError),
    #[error("seed: {0}")]
    Seed(String),
}

impl From<LmiError> for Status {
    fn from(error: LmiError) -> Self {
        let message = error.to_string();
        match &error {
            LmiError::RoleRequired(_) | LmiError::SscClaimMissing => {
                Refusal::Forbidden.status(message)
            }
            LmiError::UnknownSsc(_) => {
                status::status(Code::PermissionDenied, "unknown_ssc", message)
            }
            LmiError::InvalidKey => {
                status::invalid_fields(message.clone(), &[("submission_key", message)])
            }
            LmiError::InvalidQuery(fields) | LmiError::InvalidSsc(fields) => {
                status::invalid_fields(message, fields)
            }
            LmiError::SscNotFound(_) => Refusal::NotFound.status(message),
            LmiError::SscExists(_) => {
                status::status(Code::AlreadyExists, "already_exists", message)
            }
            LmiError::BadCursor => Refusal::BadCursor.status(message),
            LmiError::HeaderFirst | LmiError::AfterEnd | LmiError::Unsealed { .. } => {
                status::status(Code::InvalidArgument, "malformed_submission", message)
            }
            LmiError::TooManyRows(_) => {
                status::status(Code::ResourceExhausted, "too_many_rows", message)
            }
            LmiError::SubmissionNotFound(_) | LmiError::FigureNotFound(_) => {
                Refusal::NotFound.status(message)
            }
            LmiError::StagingExpired => status::status(Code::Aborted, "staging_expired", message),
            LmiError::AlreadyDecided(..) => {
                status::status(Code::FailedPrecondition, "already_decided", message)
            }
            LmiError::ReasonRequired => {
                status::invalid_fields(message.clone(), &[("reason", message)])
            }
            LmiError::Store(store) => status::store(store),
            LmiError::Corrupt(_) | LmiError::Events(_) | LmiError::Seed(_) => {
                status::internal(&error)
            }
        }
    }
}
