//! The casenotes store: client records, their notes, interactions, consents, referrals,
//! Gatsby encounters, transfers and tombstones. Personal fields and note text are stored
//! only sealed (see [`crate::crypto`]); everything in the clear is an id, a code or a date.

use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, QueryResult, Statement, Value};
use sea_orm_migration::prelude::*;

fn statement(connection: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(connection.get_database_backend(), sql, values)
}

async fn execute(
    connection: &impl ConnectionTrait,
    sql: &str,
    values: Vec<Value>,
) -> Result<u64, DbErr> {
    Ok(connection
        .execute_raw(statement(connection, sql, values))
        .await?
        .rows_affected())
}

async fn all<T>(
    connection: &impl ConnectionTrait,
    sql: &str,
    values: Vec<Value>,
    row: impl Fn(&QueryResult) -> Result<T, DbErr>,
) -> Result<Vec<T>, DbErr> {
    connection
        .query_all_raw(statement(connection, sql, values))
        .await?
        .iter()
        .map(row)
        .collect()
}

mod audit;
mod clients;
mod encounters;
mod erasure;
mod migration;
mod outcomes;
mod plans;
mod projections;
mod records;
mod transfers;

pub use audit::*;
pub use clients::*;
pub use encounters::*;
pub use erasure::*;
pub use migration::*;
pub use outcomes::*;
pub use plans::*;
pub use projections::*;
pub use records::*;
pub use transfers::*;
