//! The store's migrations.

use super::*;

/// The client record tables.
#[derive(Debug)]
pub struct CreateClientRecords;

impl MigrationName for CreateClientRecords {
    fn name(&self) -> &str {
        "m20261124_003004_casenotes_records"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateClientRecords {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let bytes = if db.get_database_backend() == DatabaseBackend::Postgres {
            "BYTEA"
        } else {
            "BLOB"
        };
        for sql in [
            format!(
                "CREATE TABLE IF NOT EXISTS clients (id TEXT PRIMARY KEY, org TEXT NOT NULL, \
                 stage TEXT NOT NULL, school_urn TEXT, personal {bytes} NOT NULL, \
                 created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, \
                 last_activity_on TEXT NOT NULL, version BIGINT NOT NULL)"
            ),
            "CREATE INDEX IF NOT EXISTS clients_by_org ON clients (org, id)".to_owned(),
            "CREATE INDEX IF NOT EXISTS clients_by_activity ON clients (last_activity_on)"
                .to_owned(),
            format!(
                "CREATE TABLE IF NOT EXISTS notes (id TEXT PRIMARY KEY, client_id TEXT NOT NULL, \
                 amends TEXT, author TEXT NOT NULL, recorded_at BIGINT NOT NULL, \
                 text {bytes} NOT NULL)"
            ),
            "CREATE INDEX IF NOT EXISTS notes_by_client ON notes (client_id, id)".to_owned(),
            "CREATE TABLE IF NOT EXISTS interactions (id TEXT PRIMARY KEY, \
             client_id TEXT NOT NULL, date TEXT NOT NULL, channel TEXT NOT NULL, \
             kind TEXT NOT NULL, recorded_by TEXT NOT NULL, recorded_at BIGINT NOT NULL)"
                .to_owned(),
            "CREATE INDEX IF NOT EXISTS interactions_by_client ON interactions (client_id)"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS consents (id TEXT PRIMARY KEY, client_id TEXT NOT NULL, \
             purpose TEXT NOT NULL, granted BOOLEAN NOT NULL, recorded_at BIGINT NOT NULL, \
             recorded_by TEXT NOT NULL)"
                .to_owned(),
            "CREATE INDEX IF NOT EXISTS consents_by_client ON consents (client_id, purpose, id)"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS referrals (id TEXT PRIMARY KEY, client_id TEXT NOT NULL, \
             activity_type TEXT NOT NULL, subjects TEXT NOT NULL, soc_codes TEXT NOT NULL, \
             earliest TEXT NOT NULL, latest TEXT NOT NULL, requested_at BIGINT NOT NULL, \
             requested_by TEXT NOT NULL)"
                .to_owned(),
            "CREATE INDEX IF NOT EXISTS referrals_by_client ON referrals (client_id)".to_owned(),
            "CREATE TABLE IF NOT EXISTS encounters (subject TEXT NOT NULL, \
             benchmark INTEGER NOT NULL, date TEXT NOT NULL, source TEXT NOT NULL, \
             source_id TEXT NOT NULL, PRIMARY KEY (subject, source, source_id))"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS transfers (id TEXT PRIMARY KEY, client_id TEXT NOT NULL, \
             from_org TEXT NOT NULL, to_org TEXT NOT NULL, status TEXT NOT NULL, \
             requested_at BIGINT NOT NULL, accepted_at BIGINT)"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS tombstones (client_id TEXT PRIMARY KEY, \
             org TEXT NOT NULL, erased_at BIGINT NOT NULL)"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS organisations (org TEXT PRIMARY KEY, \
             first_seen BIGINT NOT NULL)"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS advisers (org TEXT NOT NULL, sub TEXT NOT NULL, \
             first_seen BIGINT NOT NULL, PRIMARY KEY (org, sub))"
                .to_owned(),
            "CREATE INDEX IF NOT EXISTS audit_entries_by_client ON audit_entries (client_id)"
                .to_owned(),
        ] {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }
}

/// Action plans and outcomes, and casenotes' projection of the catalogue their SOC codes
/// are checked against.
#[derive(Debug)]
pub struct CreateActionPlans;

impl MigrationName for CreateActionPlans {
    fn name(&self) -> &str {
        "m20261124_003005_casenotes_action_plans"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateActionPlans {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let bytes = if db.get_database_backend() == DatabaseBackend::Postgres {
            "BYTEA"
        } else {
            "BLOB"
        };
        for sql in [
            format!(
                "CREATE TABLE IF NOT EXISTS action_plans (client_id TEXT PRIMARY KEY, \
                 version BIGINT NOT NULL, actions {bytes} NOT NULL, updated_at BIGINT NOT NULL, \
                 updated_by TEXT NOT NULL)"
            ),
            "CREATE TABLE IF NOT EXISTS known_occupations (soc_code TEXT PRIMARY KEY, \
             version BIGINT NOT NULL)"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS outcomes (id TEXT PRIMARY KEY, client_id TEXT NOT NULL, \
             date TEXT NOT NULL, kind TEXT NOT NULL, soc_code TEXT, recorded_by TEXT NOT NULL, \
             recorded_at BIGINT NOT NULL)"
                .to_owned(),
            "CREATE INDEX IF NOT EXISTS outcomes_by_client ON outcomes (client_id)".to_owned(),
        ] {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }
}
