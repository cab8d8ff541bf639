//! The store's migrations.

use super::*;

/// The register, requests, runs, engagements and the catalogue projection.
#[derive(Debug)]
pub struct CreateRegister;

impl MigrationName for CreateRegister {
    fn name(&self) -> &str {
        "m20261205_060000_ambassadors_register"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateRegister {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let (float, bytes) = if db.get_database_backend() == DatabaseBackend::Postgres {
            ("DOUBLE PRECISION", "BYTEA")
        } else {
            ("REAL", "BLOB")
        };
        for sql in [
            format!(
                "CREATE TABLE IF NOT EXISTS ambassadors (id TEXT PRIMARY KEY, name TEXT NOT NULL, \
                 employer TEXT NOT NULL, soc_code TEXT NOT NULL, subjects TEXT NOT NULL, \
                 expertise TEXT NOT NULL, training TEXT NOT NULL, \
                 postcode_district TEXT NOT NULL, latitude {float} NOT NULL, \
                 longitude {float} NOT NULL, district_terminated BOOLEAN NOT NULL, \
                 travel_radius_km {float} NOT NULL, availability TEXT NOT NULL, \
                 monthly_capacity BIGINT NOT NULL, dbs_checked_on TEXT NOT NULL, \
                 dbs_expires_on TEXT NOT NULL, synthetic BOOLEAN NOT NULL, \
                 erased BOOLEAN NOT NULL, created_at BIGINT NOT NULL, version BIGINT NOT NULL, \
                 role_model {bytes})"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS activity_requests (id TEXT PRIMARY KEY, \
                 school_urn TEXT NOT NULL, school_name TEXT NOT NULL, latitude {float} NOT NULL, \
                 longitude {float} NOT NULL, activity_type TEXT NOT NULL, subjects TEXT NOT NULL, \
                 year_group BIGINT NOT NULL, audience_size BIGINT NOT NULL, \
                 window_from TEXT NOT NULL, window_to TEXT NOT NULL, \
                 ambassadors_wanted BIGINT NOT NULL, preferred_sector TEXT NOT NULL, \
                 wants_diversity BOOLEAN NOT NULL, status TEXT NOT NULL, referral_id TEXT, \
                 client_id TEXT, created_at BIGINT NOT NULL)"
            ),
            "CREATE INDEX IF NOT EXISTS activity_requests_open ON activity_requests (status, window_to)"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS engagements (id TEXT PRIMARY KEY, run_id TEXT NOT NULL, \
             request_id TEXT NOT NULL, ambassador_id TEXT NOT NULL, activity_date TEXT NOT NULL, \
             status TEXT NOT NULL, score BIGINT NOT NULL, terms TEXT NOT NULL, \
             created_at BIGINT NOT NULL, school_urn TEXT NOT NULL, feedback TEXT NOT NULL, \
             students_reached BIGINT NOT NULL, updated_at BIGINT NOT NULL)"
                .to_owned(),
            "CREATE INDEX IF NOT EXISTS engagements_by_run ON engagements (run_id)".to_owned(),
            "CREATE INDEX IF NOT EXISTS engagements_by_status ON engagements (status)".to_owned(),
            "CREATE TABLE IF NOT EXISTS matching_runs (id TEXT PRIMARY KEY, status TEXT NOT NULL, \
             started_at BIGINT NOT NULL, finished_at BIGINT, total_score BIGINT NOT NULL, \
             optimal_score BIGINT NOT NULL, unmatched TEXT NOT NULL, error TEXT)"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS attribute_reads (id TEXT PRIMARY KEY, \
             ambassador_id TEXT NOT NULL, actor TEXT NOT NULL, purpose TEXT NOT NULL, \
             read_at BIGINT NOT NULL)"
                .to_owned(),
            "CREATE INDEX IF NOT EXISTS attribute_reads_by_ambassador ON attribute_reads (ambassador_id)"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS shortage_flags (soc_code TEXT NOT NULL, \
             region TEXT NOT NULL, period_end TEXT NOT NULL, period TEXT NOT NULL, \
             recorded_at BIGINT NOT NULL, figure_id TEXT NOT NULL, in_shortage BOOLEAN NOT NULL, \
             PRIMARY KEY (soc_code, region))"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS known_occupations (soc_code TEXT PRIMARY KEY, \
             version BIGINT NOT NULL, sub_major_group TEXT NOT NULL, \
             stem_discipline TEXT NOT NULL)"
                .to_owned(),
        ] {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }
}
