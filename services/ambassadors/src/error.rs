//! Everything that can go wrong in ambassadors, mapped once to a status.

use careers_platform::status;
use careers_platform::status::Refusal;
use sea_orm::DbErr;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum AmbassadorsError {
    #[error("{0}")]
    Forbidden(String),
    /// An unknown id and one the caller may not see read the same.
    #[error("no {0} with that id")]
    NotFound(&'static str),
    #[error("{}", .0.iter().map(|(field, problem)| format!("{field}: {problem}")).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<(&'static str, String)>),
    /// A well-formed value the register cannot use, with the contract's code for it.
    #[error("{field}: {message}")]
    Rejected {
        code: &'static str,
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    InvalidTransition(String),
    #[error("send If-Match with the version you read")]
    IfMatchRequired,
    #[error("the ambassador changed since version {0}; read it again")]
    VersionConflict(i64),
    #[error(
        "role-model attributes are held only with the ambassador's consent: send role_model_consent: true"
    )]
    ConsentRequired,
    #[error(transparent)]
    Sealing(#[from] crate::sealing::SealingError),
    #[error("the cursor is not one this listing issued; start again without it")]
    BadCursor,
    #[error("store: {0}")]
    Store(#[from] DbErr),
    #[error("events: {0}")]
    Events(#[from] careers_eventbus::EventbusError),
    #[error("stored record unreadable: {0}")]
    Corrupt(String),
}

impl From<AmbassadorsError> for Status {
    fn from(error: AmbassadorsError) -> Self {
        let message = error.to_string();
        match &error {
            AmbassadorsError::Forbidden(_) => Refusal::Forbidden.status(message),
            AmbassadorsError::NotFound(_) => Refusal::NotFound.status(message),
            AmbassadorsError::Invalid(fields) => status::invalid_fields(message, fields),
            AmbassadorsError::Rejected {
                code,
                field,
                message,
            } => status::invalid_field(code, field, message.clone()),
            AmbassadorsError::InvalidTransition(_) => Refusal::InvalidTransition.status(message),
            AmbassadorsError::IfMatchRequired => Refusal::IfMatchRequired.status(message),
            AmbassadorsError::VersionConflict(_) => Refusal::VersionConflict.status(message),
            AmbassadorsError::ConsentRequired => Refusal::ConsentRequired.status(message),
            AmbassadorsError::BadCursor => Refusal::BadCursor.status(message),
            AmbassadorsError::Store(store) => status::store(store),
            AmbassadorsError::Events(_)
            | AmbassadorsError::Sealing(_)
            | AmbassadorsError::Corrupt(_) => status::internal(&error),
        }
    }
}
