//! The ambassadors store: the register, activity requests, matching runs, engagements and
//! ambassadors' projection of the catalogue. Lists are JSON text columns; dates are
//! `YYYY-MM-DD` text, instants microseconds since the epoch.

use careers_platform::store::sql::{all, execute};
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, QueryResult};
use sea_orm_migration::prelude::*;

mod engagements;
mod migration;
mod projections;
mod register;
mod requests;
mod runs;

pub use engagements::*;
pub use migration::*;
pub use projections::*;
pub use register::*;
pub use requests::*;
pub use runs::*;
