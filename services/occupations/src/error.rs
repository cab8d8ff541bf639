//! Everything that can go wrong in occupations, mapped once to a gRPC status.

use careers_eventbus::EventbusError;
use careers_platform::status;
use sea_orm::DbErr;
use tonic::Status;

use crate::search;
use careers_platform::status::Refusal;

/// Everything that can go wrong in the occupations service, mapped once to a status.
#[derive(Debug, thiserror::Error)]
pub enum OccupationsError {
    #[error("soc_code {0:?} is not a SOC 2020 unit group code (four digits, the first not 0)")]
    InvalidSocCode(String),
    #[error("no occupation has SOC code {0}")]
    NotFound(String),
    #[error(
        "route {0:?} is not one of university, apprenticeship, college, direct_entry, professional_registration"
    )]
    InvalidRoute(String),
    #[error("{}", .0.iter().map(|(field, problem)| format!("{field}: {problem}")).collect::<Vec<_>>().join("; "))]
    InvalidEdit(Vec<(&'static str, String)>),
    #[error("this needs the {0} role")]
    RoleRequired(&'static str),
    #[error("an update needs the version it was based on (If-Match with the ETag)")]
    IfMatchRequired,
    #[error(
        "occupation {soc_code} is at version {current}, not {expected}: read it again and reapply the change"
    )]
    VersionConflict {
        soc_code: String,
        current: i64,
        expected: u64,
    },
    #[error("outlook {0:?} is not one of growing, stable, declining")]
    InvalidOutlook(String),
    #[error("min_median_pay {0} must be a number of pounds, zero or more")]
    InvalidPay(f64),
    #[error("{0}")]
    InvalidQuery(String),
    #[error("search: {0}")]
    Search(String),
    #[error("the cursor is not one this service issued")]
    BadCursor,
    #[error("limit {0}")]
    InvalidLimit(#[from] careers_platform::cursor::LimitTooLarge),
    #[error("store: {0}")]
    Store(#[from] DbErr),
    #[error("events: {0}")]
    Events(#[from] EventbusError),
    #[error("seed: {0}")]
    Seed(String),
}

impl From<OccupationsError> for Status {
    fn from(error: OccupationsError) -> Self {
        match &error {
            OccupationsError::InvalidSocCode(_) => {
                status::invalid_fields(error.to_string(), &[("soc_code", error.to_string())])
            }
            OccupationsError::InvalidLimit(_) => {
                status::invalid_fields(error.to_string(), &[("limit", error.to_string())])
            }
            OccupationsError::InvalidRoute(_) => {
                status::invalid_fields(error.to_string(), &[("route", error.to_string())])
            }
            OccupationsError::InvalidOutlook(_) => {
                status::invalid_fields(error.to_string(), &[("outlook", error.to_string())])
            }
            OccupationsError::InvalidPay(_) => {
                status::invalid_fields(error.to_string(), &[("min_median_pay", error.to_string())])
            }
            OccupationsError::InvalidQuery(problem) => {
                status::invalid_fields(format!("q: {problem}"), &[("q", problem.clone())])
            }
            OccupationsError::InvalidEdit(fields) => {
                status::invalid_fields(error.to_string(), fields)
            }
            OccupationsError::RoleRequired(_) => Refusal::Forbidden.status(error.to_string()),
            OccupationsError::IfMatchRequired => Refusal::IfMatchRequired.status(error.to_string()),
            OccupationsError::VersionConflict { .. } => {
                Refusal::VersionConflict.status(error.to_string())
            }
            OccupationsError::BadCursor => Refusal::BadCursor.status(error.to_string()),
            OccupationsError::NotFound(_) => Refusal::NotFound.status(error.to_string()),
            OccupationsError::Store(store) => status::store(store),
            OccupationsError::Events(_)
            | OccupationsError::Search(_)
            | OccupationsError::Seed(_) => status::internal(&error),
        }
    }
}

impl From<search::SearchError> for OccupationsError {
    fn from(error: search::SearchError) -> Self {
        match error {
            search::SearchError::InvalidQuery(problem) => Self::InvalidQuery(problem),
            search::SearchError::Store(error) => Self::Store(error),
            other => Self::Search(other.to_string()),
        }
    }
}
