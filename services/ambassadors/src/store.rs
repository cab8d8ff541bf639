//! The ambassadors store: the register, activity requests, matching runs, engagements and
//! ambassadors' projection of the catalogue. Lists are JSON text columns; dates are
//! `YYYY-MM-DD` text, instants microseconds since the epoch.

use careers_platform::store::sql::{all, execute};
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, QueryResult};
use sea_orm_migration::prelude::*;

/// An ambassador as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AmbassadorRow {
    pub id: String,
    pub name: String,
    pub employer: String,
    pub soc_code: String,
    /// JSON arrays of strings.
    pub subjects: String,
    pub expertise: String,
    pub training: String,
    pub postcode_district: String,
    pub latitude: f64,
    pub longitude: f64,
    pub district_terminated: bool,
    pub travel_radius_km: f64,
    /// JSON of the proto `Availability`.
    pub availability: String,
    pub monthly_capacity: i64,
    pub dbs_checked_on: String,
    pub dbs_expires_on: String,
    pub synthetic: bool,
    pub erased: bool,
    pub created_at: i64,
    pub version: i64,
}

const AMBASSADOR_COLUMNS: &str = "id, name, employer, soc_code, subjects, expertise, training, \
     postcode_district, latitude, longitude, district_terminated, travel_radius_km, availability, \
     monthly_capacity, dbs_checked_on, dbs_expires_on, synthetic, erased, created_at, version";

fn ambassador_row(row: &QueryResult) -> Result<AmbassadorRow, DbErr> {
    Ok(AmbassadorRow {
        id: row.try_get_by_index(0)?,
        name: row.try_get_by_index(1)?,
        employer: row.try_get_by_index(2)?,
        soc_code: row.try_get_by_index(3)?,
        subjects: row.try_get_by_index(4)?,
        expertise: row.try_get_by_index(5)?,
        training: row.try_get_by_index(6)?,
        postcode_district: row.try_get_by_index(7)?,
        latitude: row.try_get_by_index(8)?,
        longitude: row.try_get_by_index(9)?,
        district_terminated: row.try_get_by_index(10)?,
        travel_radius_km: row.try_get_by_index(11)?,
        availability: row.try_get_by_index(12)?,
        monthly_capacity: row.try_get_by_index(13)?,
        dbs_checked_on: row.try_get_by_index(14)?,
        dbs_expires_on: row.try_get_by_index(15)?,
        synthetic: row.try_get_by_index(16)?,
        erased: row.try_get_by_index(17)?,
        created_at: row.try_get_by_index(18)?,
        version: row.try_get_by_index(19)?,
    })
}

pub async fn insert_ambassador(
    connection: &impl ConnectionTrait,
    row: &AmbassadorRow,
) -> Result<(), DbErr> {
    execute(
        connection,
        &format!(
            "INSERT INTO ambassadors ({AMBASSADOR_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, \
             $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
        ),
        vec![
            row.id.clone().into(),
            row.name.clone().into(),
            row.employer.clone().into(),
            row.soc_code.clone().into(),
            row.subjects.clone().into(),
            row.expertise.clone().into(),
            row.training.clone().into(),
            row.postcode_district.clone().into(),
            row.latitude.into(),
            row.longitude.into(),
            row.district_terminated.into(),
            row.travel_radius_km.into(),
            row.availability.clone().into(),
            row.monthly_capacity.into(),
            row.dbs_checked_on.clone().into(),
            row.dbs_expires_on.clone().into(),
            row.synthetic.into(),
            row.erased.into(),
            row.created_at.into(),
            row.version.into(),
        ],
    )
    .await
    .map(|_| ())
}

/// Replaces a registration's fields if it is still at `expected_version`; whether it
/// was.
pub async fn update_ambassador(
    connection: &impl ConnectionTrait,
    row: &AmbassadorRow,
    expected_version: i64,
) -> Result<bool, DbErr> {
    Ok(execute(
        connection,
        "UPDATE ambassadors SET name = $3, employer = $4, soc_code = $5, subjects = $6, \
         expertise = $7, training = $8, postcode_district = $9, latitude = $10, \
         longitude = $11, district_terminated = $12, travel_radius_km = $13, \
         availability = $14, monthly_capacity = $15, dbs_checked_on = $16, \
         dbs_expires_on = $17, version = version + 1 \
         WHERE id = $1 AND version = $2 AND NOT erased",
        vec![
            row.id.clone().into(),
            expected_version.into(),
            row.name.clone().into(),
            row.employer.clone().into(),
            row.soc_code.clone().into(),
            row.subjects.clone().into(),
            row.expertise.clone().into(),
            row.training.clone().into(),
            row.postcode_district.clone().into(),
            row.latitude.into(),
            row.longitude.into(),
            row.district_terminated.into(),
            row.travel_radius_km.into(),
            row.availability.clone().into(),
            row.monthly_capacity.into(),
            row.dbs_checked_on.clone().into(),
            row.dbs_expires_on.clone().into(),
        ],
    )
    .await?
        > 0)
}

/// Removes an ambassador's role model.
pub async fn clear_role_model(connection: &impl ConnectionTrait, id: &str) -> Result<(), DbErr> {
    execute(
        connection,
        "UPDATE ambassadors SET role_model = NULL WHERE id = $1",
        vec![id.into()],
    )
    .await
    .map(|_| ())
}

pub async fn ambassador(
    connection: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<AmbassadorRow>, DbErr> {
    Ok(all(
        connection,
        &format!("SELECT {AMBASSADOR_COLUMNS} FROM ambassadors WHERE id = $1"),
        vec![id.into()],
        ambassador_row,
    )
    .await?
    .pop())
}

/// A page of ambassadors after `after` in id order.
pub async fn ambassadors_page(
    connection: &impl ConnectionTrait,
    after: &str,
    limit: u64,
) -> Result<Vec<AmbassadorRow>, DbErr> {
    all(
        connection,
        &format!("SELECT {AMBASSADOR_COLUMNS} FROM ambassadors WHERE id > $1 ORDER BY id LIMIT $2"),
        vec![after.into(), (limit as i64).into()],
        ambassador_row,
    )
    .await
}

/// Every ambassador the matcher may consider: not erased.
pub async fn active_ambassadors(
    connection: &impl ConnectionTrait,
) -> Result<Vec<AmbassadorRow>, DbErr> {
    all(
        connection,
        &format!("SELECT {AMBASSADOR_COLUMNS} FROM ambassadors WHERE NOT erased ORDER BY id"),
        vec![],
        ambassador_row,
    )
    .await
}

/// The ambassadors in an occupation, not erased.
pub async fn ambassadors_in_occupation(
    connection: &impl ConnectionTrait,
    soc_code: &str,
) -> Result<Vec<AmbassadorRow>, DbErr> {
    all(
        connection,
        &format!(
            "SELECT {AMBASSADOR_COLUMNS} FROM ambassadors WHERE NOT erased AND soc_code = $1 \
             ORDER BY id"
        ),
        vec![soc_code.into()],
        ambassador_row,
    )
    .await
}

/// Drops the ambassador's personal data, keeping the id so past engagements still count,
/// and the schools' free-text feedback on their engagements (it may name them). Returns
/// whether there was anyone to erase.
pub async fn erase_ambassador(connection: &impl ConnectionTrait, id: &str) -> Result<bool, DbErr> {
    execute(
        connection,
        "UPDATE engagements SET feedback = '' WHERE ambassador_id = $1",
        vec![id.into()],
    )
    .await?;
    Ok(execute(
        connection,
        "UPDATE ambassadors SET name = '', employer = '', subjects = '[]', expertise = '[]', \
         training = '[]', postcode_district = '', latitude = 0, longitude = 0, \
         availability = '{}', monthly_capacity = 0, role_model = NULL, erased = TRUE \
         WHERE id = $1 AND NOT erased",
        vec![id.into()],
    )
    .await?
        > 0)
}

/// Sets an ambassador's sealed role-model attributes.
pub async fn set_role_model(
    connection: &impl ConnectionTrait,
    id: &str,
    sealed: Vec<u8>,
) -> Result<(), DbErr> {
    execute(
        connection,
        "UPDATE ambassadors SET role_model = $2 WHERE id = $1",
        vec![id.into(), sealed.into()],
    )
    .await
    .map(|_| ())
}

/// The sealed role-model attributes of these ambassadors (those that have them).
pub async fn role_models(
    connection: &impl ConnectionTrait,
) -> Result<Vec<(String, Vec<u8>)>, DbErr> {
    all(
        connection,
        "SELECT id, role_model FROM ambassadors WHERE role_model IS NOT NULL AND NOT erased",
        vec![],
        |row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)),
    )
    .await
}

/// One ambassador's sealed role-model attributes, if held.
pub async fn role_model(
    connection: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<Vec<u8>>, DbErr> {
    Ok(all(
        connection,
        "SELECT role_model FROM ambassadors WHERE id = $1",
        vec![id.into()],
        |row| row.try_get_by_index::<Option<Vec<u8>>>(0),
    )
    .await?
    .pop()
    .flatten())
}

/// Records reads of role-model attributes: who, why, when, whose.
pub async fn record_attribute_reads(
    connection: &impl ConnectionTrait,
    ambassador_ids: &[String],
    actor: &str,
    purpose: &str,
    at: i64,
) -> Result<(), DbErr> {
    for chunk in ambassador_ids.chunks(200) {
        let mut values = Vec::with_capacity(chunk.len() * 5);
        let mut rows = Vec::with_capacity(chunk.len());
        for (index, id) in chunk.iter().enumerate() {
            let base = index * 5;
            rows.push(format!(
                "(${}, ${}, ${}, ${}, ${})",
                base + 1,
                base + 2,
                base + 3,
                base + 4,
                base + 5
            ));
            values.extend([
                uuid::Uuid::now_v7().to_string().into(),
                id.clone().into(),
                actor.into(),
                purpose.into(),
                at.into(),
            ]);
        }
        execute(
            connection,
            &format!(
                "INSERT INTO attribute_reads (id, ambassador_id, actor, purpose, read_at) VALUES {}",
                rows.join(", ")
            ),
            values,
        )
        .await?;
    }
    Ok(())
}

/// An activity request as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRow {
    pub id: String,
    pub school_urn: String,
    pub school_name: String,
    pub latitude: f64,
    pub longitude: f64,
    pub activity_type: String,
    /// JSON array of strings.
    pub subjects: String,
    pub year_group: i64,
    pub audience_size: i64,
    pub window_from: String,
    pub window_to: String,
    pub ambassadors_wanted: i64,
    pub preferred_sector: String,
    pub wants_diversity: bool,
    pub status: String,
    pub referral_id: Option<String>,
    pub client_id: Option<String>,
    pub created_at: i64,
}

const REQUEST_COLUMNS: &str = "id, school_urn, school_name, latitude, longitude, activity_type, \
     subjects, year_group, audience_size, window_from, window_to, ambassadors_wanted, \
     preferred_sector, wants_diversity, status, referral_id, client_id, created_at";

fn request_row(row: &QueryResult) -> Result<RequestRow, DbErr> {
    Ok(RequestRow {
        id: row.try_get_by_index(0)?,
        school_urn: row.try_get_by_index(1)?,
        school_name: row.try_get_by_index(2)?,
        latitude: row.try_get_by_index(3)?,
        longitude: row.try_get_by_index(4)?,
        activity_type: row.try_get_by_index(5)?,
        subjects: row.try_get_by_index(6)?,
        year_group: row.try_get_by_index(7)?,
        audience_size: row.try_get_by_index(8)?,
        window_from: row.try_get_by_index(9)?,
        window_to: row.try_get_by_index(10)?,
        ambassadors_wanted: row.try_get_by_index(11)?,
        preferred_sector: row.try_get_by_index(12)?,
        wants_diversity: row.try_get_by_index(13)?,
        status: row.try_get_by_index(14)?,
        referral_id: row.try_get_by_index(15)?,
        client_id: row.try_get_by_index(16)?,
        created_at: row.try_get_by_index(17)?,
    })
}

pub async fn insert_request(
    connection: &impl ConnectionTrait,
    row: &RequestRow,
) -> Result<(), DbErr> {
    execute(
        connection,
        &format!(
            "INSERT INTO activity_requests ({REQUEST_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, \
             $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        ),
        vec![
            row.id.clone().into(),
            row.school_urn.clone().into(),
            row.school_name.clone().into(),
            row.latitude.into(),
            row.longitude.into(),
            row.activity_type.clone().into(),
            row.subjects.clone().into(),
            row.year_group.into(),
            row.audience_size.into(),
            row.window_from.clone().into(),
            row.window_to.clone().into(),
            row.ambassadors_wanted.into(),
            row.preferred_sector.clone().into(),
            row.wants_diversity.into(),
            row.status.clone().into(),
            row.referral_id.clone().into(),
            row.client_id.clone().into(),
            row.created_at.into(),
        ],
    )
    .await
    .map(|_| ())
}

pub async fn request(
    connection: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<RequestRow>, DbErr> {
    Ok(all(
        connection,
        &format!("SELECT {REQUEST_COLUMNS} FROM activity_requests WHERE id = $1"),
        vec![id.into()],
        request_row,
    )
    .await?
    .pop())
}

/// A page of requests after `after` in id order, only `school_urn`'s when given.
pub async fn requests_page(
    connection: &impl ConnectionTrait,
    school_urn: Option<&str>,
    after: &str,
    limit: u64,
) -> Result<Vec<RequestRow>, DbErr> {
    all(
        connection,
        &format!(
            "SELECT {REQUEST_COLUMNS} FROM activity_requests WHERE id > $1 \
             AND ($2 = '' OR school_urn = $2) ORDER BY id LIMIT $3"
        ),
        vec![
            after.into(),
            school_urn.unwrap_or_default().into(),
            (limit as i64).into(),
        ],
        request_row,
    )
    .await
}

/// Open requests whose window has not ended by `today`.
pub async fn open_requests(
    connection: &impl ConnectionTrait,
    today: &str,
) -> Result<Vec<RequestRow>, DbErr> {
    all(
        connection,
        &format!(
            "SELECT {REQUEST_COLUMNS} FROM activity_requests WHERE status = 'open' \
             AND window_to >= $1 ORDER BY id"
        ),
        vec![today.into()],
        request_row,
    )
    .await
}

/// Whether a request already came from this referral (events are applied once, but a
/// referral must never become two requests whatever happens upstream).
pub async fn request_of_referral(
    connection: &impl ConnectionTrait,
    referral_id: &str,
) -> Result<bool, DbErr> {
    Ok(!all(
        connection,
        "SELECT id FROM activity_requests WHERE referral_id = $1",
        vec![referral_id.into()],
        |row| row.try_get_by_index::<String>(0),
    )
    .await?
    .is_empty())
}

/// Removes every link to an erased client: its id and its referral's id on the requests
/// made for it, and closes those still open (nobody is left to go).
pub async fn forget_client(
    connection: &impl ConnectionTrait,
    client_id: &str,
) -> Result<u64, DbErr> {
    execute(
        connection,
        "UPDATE activity_requests SET client_id = NULL, referral_id = NULL, \
         status = CASE WHEN status = 'open' THEN 'closed' ELSE status END \
         WHERE client_id = $1",
        vec![client_id.into()],
    )
    .await
}

pub async fn set_request_status(
    connection: &impl ConnectionTrait,
    id: &str,
    status: &str,
) -> Result<(), DbErr> {
    execute(
        connection,
        "UPDATE activity_requests SET status = $2 WHERE id = $1",
        vec![id.into(), status.into()],
    )
    .await
    .map(|_| ())
}

/// An engagement: an ambassador proposed for, then holding, a request's slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngagementRow {
    pub id: String,
    pub run_id: String,
    pub request_id: String,
    pub ambassador_id: String,
    pub school_urn: String,
    pub activity_date: String,
    /// proposed, accepted, declined, confirmed, completed or cancelled.
    pub status: String,
    pub score: i64,
    /// JSON of the score terms.
    pub terms: String,
    pub feedback: String,
    pub students_reached: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const ENGAGEMENT_COLUMNS: &str = "id, run_id, request_id, ambassador_id, school_urn, \
     activity_date, status, score, terms, feedback, students_reached, created_at, updated_at";

fn engagement_row(row: &QueryResult) -> Result<EngagementRow, DbErr> {
    Ok(EngagementRow {
        id: row.try_get_by_index(0)?,
        run_id: row.try_get_by_index(1)?,
        request_id: row.try_get_by_index(2)?,
        ambassador_id: row.try_get_by_index(3)?,
        school_urn: row.try_get_by_index(4)?,
        activity_date: row.try_get_by_index(5)?,
        status: row.try_get_by_index(6)?,
        score: row.try_get_by_index(7)?,
        terms: row.try_get_by_index(8)?,
        feedback: row.try_get_by_index(9)?,
        students_reached: row.try_get_by_index(10)?,
        created_at: row.try_get_by_index(11)?,
        updated_at: row.try_get_by_index(12)?,
    })
}

/// Statuses that hold a slot and a unit of the ambassador's capacity.
pub const HOLDING: &str = "('proposed', 'accepted', 'confirmed', 'completed')";

pub async fn insert_engagement(
    connection: &impl ConnectionTrait,
    row: &EngagementRow,
) -> Result<(), DbErr> {
    execute(
        connection,
        &format!(
            "INSERT INTO engagements ({ENGAGEMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, \
             $8, $9, $10, $11, $12, $13)"
        ),
        vec![
            row.id.clone().into(),
            row.run_id.clone().into(),
            row.request_id.clone().into(),
            row.ambassador_id.clone().into(),
            row.school_urn.clone().into(),
            row.activity_date.clone().into(),
            row.status.clone().into(),
            row.score.into(),
            row.terms.clone().into(),
            row.feedback.clone().into(),
            row.students_reached.into(),
            row.created_at.into(),
            row.updated_at.into(),
        ],
    )
    .await
    .map(|_| ())
}

pub async fn engagement(
    connection: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<EngagementRow>, DbErr> {
    Ok(all(
        connection,
        &format!("SELECT {ENGAGEMENT_COLUMNS} FROM engagements WHERE id = $1"),
        vec![id.into()],
        engagement_row,
    )
    .await?
    .pop())
}

/// Whose engagements a page holds.
#[derive(Debug, Clone, Copy)]
pub enum EngagementsOf<'a> {
    Everyone,
    Ambassador(&'a str),
    School(&'a str),
}

/// A page of engagements after `after` in id order.
pub async fn engagements_page(
    connection: &impl ConnectionTrait,
    of: EngagementsOf<'_>,
    after: &str,
    limit: u64,
) -> Result<Vec<EngagementRow>, DbErr> {
    let (filter, value) = match of {
        EngagementsOf::Everyone => ("$2 = ''", ""),
        EngagementsOf::Ambassador(id) => ("ambassador_id = $2", id),
        EngagementsOf::School(urn) => ("school_urn = $2", urn),
    };
    all(
        connection,
        &format!(
            "SELECT {ENGAGEMENT_COLUMNS} FROM engagements WHERE id > $1 AND {filter} \
             ORDER BY id LIMIT $3"
        ),
        vec![after.into(), value.into(), (limit as i64).into()],
        engagement_row,
    )
    .await
}

/// Moves an engagement to `to` if it is in one of `from`; whether it moved. Conditional,
/// so two callers racing cannot both move it.
pub async fn transition(
    connection: &impl ConnectionTrait,
    id: &str,
    from: &[&str],
    to: &str,
    updated_at: i64,
    completion: Option<(&str, i64)>,
) -> Result<bool, DbErr> {
    let states = from
        .iter()
        .map(|state| format!("'{state}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let (feedback, students) = completion.unwrap_or(("", 0));
    Ok(execute(
        connection,
        &format!(
            "UPDATE engagements SET status = $2, updated_at = $3, \
             feedback = CASE WHEN $4 THEN $5 ELSE feedback END, \
             students_reached = CASE WHEN $4 THEN $6 ELSE students_reached END \
             WHERE id = $1 AND status IN ({states})"
        ),
        vec![
            id.into(),
            to.into(),
            updated_at.into(),
            completion.is_some().into(),
            feedback.into(),
            students.into(),
        ],
    )
    .await?
        > 0)
}

/// Engagements that hold a slot or capacity, for the matcher.
pub async fn holding_engagements(
    connection: &impl ConnectionTrait,
) -> Result<Vec<EngagementRow>, DbErr> {
    all(
        connection,
        &format!("SELECT {ENGAGEMENT_COLUMNS} FROM engagements WHERE status IN {HOLDING}"),
        vec![],
        engagement_row,
    )
    .await
}

/// A run's engagements, in request then ambassador order.
pub async fn run_engagements(
    connection: &impl ConnectionTrait,
    run_id: &str,
) -> Result<Vec<EngagementRow>, DbErr> {
    all(
        connection,
        &format!(
            "SELECT {ENGAGEMENT_COLUMNS} FROM engagements WHERE run_id = $1 \
             ORDER BY request_id, ambassador_id"
        ),
        vec![run_id.into()],
        engagement_row,
    )
    .await
}

/// Completed engagements per school since `since` (an academic year's 1 September).
pub async fn school_encounters(
    connection: &impl ConnectionTrait,
    since: &str,
) -> Result<Vec<(String, i64)>, DbErr> {
    all(
        connection,
        "SELECT school_urn, COUNT(*) FROM engagements \
         WHERE status = 'completed' AND activity_date >= $1 GROUP BY school_urn",
        vec![since.into()],
        |row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)),
    )
    .await
}

/// A matching run as stored; matches are its engagements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: String,
    pub status: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub total_score: i64,
    pub optimal_score: i64,
    /// JSON list of `{request_id, blocked_by, open_slots}`.
    pub unmatched: String,
    pub error: Option<String>,
}

const RUN_COLUMNS: &str =
    "id, status, started_at, finished_at, total_score, optimal_score, unmatched, error";

fn run_row(row: &QueryResult) -> Result<RunRow, DbErr> {
    Ok(RunRow {
        id: row.try_get_by_index(0)?,
        status: row.try_get_by_index(1)?,
        started_at: row.try_get_by_index(2)?,
        finished_at: row.try_get_by_index(3)?,
        total_score: row.try_get_by_index(4)?,
        optimal_score: row.try_get_by_index(5)?,
        unmatched: row.try_get_by_index(6)?,
        error: row.try_get_by_index(7)?,
    })
}

pub async fn insert_run(
    connection: &impl ConnectionTrait,
    id: &str,
    started_at: i64,
) -> Result<(), DbErr> {
    execute(
        connection,
        "INSERT INTO matching_runs (id, status, started_at, total_score, optimal_score, unmatched) \
         VALUES ($1, 'running', $2, 0, 0, '[]')",
        vec![id.into(), started_at.into()],
    )
    .await
    .map(|_| ())
}

/// Marks as failed the runs still "running" that started before `before`: their process
/// stopped mid-run (its transaction, and so its lock and its writes, went with it).
pub async fn fail_abandoned_runs(
    connection: &impl ConnectionTrait,
    before: i64,
    now: i64,
) -> Result<u64, DbErr> {
    execute(
        connection,
        "UPDATE matching_runs SET status = 'failed', finished_at = $2, \
         error = 'abandoned: the process running it stopped before it finished' \
         WHERE status = 'running' AND started_at < $1",
        vec![before.into(), now.into()],
    )
    .await
}

pub async fn finish_run(connection: &impl ConnectionTrait, run: &RunRow) -> Result<(), DbErr> {
    execute(
        connection,
        "UPDATE matching_runs SET status = $2, finished_at = $3, total_score = $4, \
         optimal_score = $5, unmatched = $6, error = $7 WHERE id = $1",
        vec![
            run.id.clone().into(),
            run.status.clone().into(),
            run.finished_at.into(),
            run.total_score.into(),
            run.optimal_score.into(),
            run.unmatched.clone().into(),
            run.error.clone().into(),
        ],
    )
    .await
    .map(|_| ())
}

pub async fn run(connection: &impl ConnectionTrait, id: &str) -> Result<Option<RunRow>, DbErr> {
    Ok(all(
        connection,
        &format!("SELECT {RUN_COLUMNS} FROM matching_runs WHERE id = $1"),
        vec![id.into()],
        run_row,
    )
    .await?
    .pop())
}

/// Serialises matching runs across replicas for the rest of the transaction, which must
/// be one `careers_eventbus::begin_write` opened: on PostgreSQL a transaction-scoped
/// advisory lock; on SQLite that transaction already holds the single write lock.
pub async fn lock_matching(connection: &impl ConnectionTrait) -> Result<(), DbErr> {
    if connection.get_database_backend() == DatabaseBackend::Postgres {
        execute(
            connection,
            "SELECT pg_advisory_xact_lock($1)",
            vec![MATCHING_LOCK_KEY.into()],
        )
        .await?;
    }
    Ok(())
}

/// The advisory lock key of matching runs ("ambmatch" in ASCII).
const MATCHING_LOCK_KEY: i64 = 0x616d_626d_6174_6368;

/// ambassadors' projection of the catalogue: each unit group's sub-major group and STEM
/// discipline, newer versions only.
pub async fn apply_occupation(
    connection: &impl ConnectionTrait,
    soc_code: &str,
    version: i64,
    sub_major_group: &str,
    stem_discipline: &str,
) -> Result<(), DbErr> {
    execute(
        connection,
        "INSERT INTO known_occupations (soc_code, version, sub_major_group, stem_discipline) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (soc_code) DO UPDATE SET \
         version = excluded.version, sub_major_group = excluded.sub_major_group, \
         stem_discipline = excluded.stem_discipline \
         WHERE known_occupations.version < excluded.version",
        vec![
            soc_code.into(),
            version.into(),
            sub_major_group.into(),
            stem_discipline.into(),
        ],
    )
    .await
    .map(|_| ())
}

pub async fn clear_occupations(connection: &impl ConnectionTrait) -> Result<(), DbErr> {
    execute(connection, "DELETE FROM known_occupations", vec![])
        .await
        .map(|_| ())
}

/// A unit group's (sub-major group, STEM discipline), if the catalogue has it.
pub async fn occupation(
    connection: &impl ConnectionTrait,
    soc_code: &str,
) -> Result<Option<(String, String)>, DbErr> {
    Ok(all(
        connection,
        "SELECT sub_major_group, stem_discipline FROM known_occupations WHERE soc_code = $1",
        vec![soc_code.into()],
        |row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)),
    )
    .await?
    .pop())
}

/// Every known unit group's (soc_code, sub-major group, STEM discipline).
pub async fn occupations(
    connection: &impl ConnectionTrait,
) -> Result<Vec<(String, String, String)>, DbErr> {
    all(
        connection,
        "SELECT soc_code, sub_major_group, stem_discipline FROM known_occupations ORDER BY soc_code",
        vec![],
        |row| {
            Ok((
                row.try_get_by_index(0)?,
                row.try_get_by_index(1)?,
                row.try_get_by_index(2)?,
            ))
        },
    )
    .await
}

/// A `skills_shortage` figure as ambassadors keeps it: the latest per (SOC code, region).
#[derive(Debug, Clone, PartialEq)]
pub struct ShortageFlag {
    pub soc_code: String,
    pub region: String,
    /// `careers_proto::period::order_key`'s first part: the month the period ends.
    pub period_end: String,
    pub period: String,
    pub recorded_at: i64,
    pub figure_id: String,
    pub in_shortage: bool,
}

/// Keeps `flag` if it is later than the one held for its (SOC code, region): later
/// period, then later recorded_at, then higher figure id, so any delivery order gives
/// the same result.
pub async fn merge_shortage(
    connection: &impl ConnectionTrait,
    flag: &ShortageFlag,
) -> Result<(), DbErr> {
    // The rank is compared by the upsert itself, under the row lock its conflict takes:
    // a read followed by a write would let two consumers put an older flag over a newer.
    // Text compares byte by byte, whatever the database's collation.
    let c = match connection.get_database_backend() {
        DatabaseBackend::Postgres => " COLLATE \"C\"",
        _ => "",
    };
    execute(
        connection,
        &format!(
            "INSERT INTO shortage_flags (soc_code, region, period_end, period, recorded_at, \
             figure_id, in_shortage) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (soc_code, region) DO UPDATE SET period_end = excluded.period_end, \
             period = excluded.period, recorded_at = excluded.recorded_at, \
             figure_id = excluded.figure_id, in_shortage = excluded.in_shortage \
             WHERE (excluded.period_end{c}, excluded.period{c}, excluded.recorded_at, \
             excluded.figure_id{c}) > (shortage_flags.period_end{c}, shortage_flags.period{c}, \
             shortage_flags.recorded_at, shortage_flags.figure_id{c})"
        ),
        vec![
            flag.soc_code.clone().into(),
            flag.region.clone().into(),
            flag.period_end.clone().into(),
            flag.period.clone().into(),
            flag.recorded_at.into(),
            flag.figure_id.clone().into(),
            flag.in_shortage.into(),
        ],
    )
    .await
    .map(|_| ())
}

pub async fn clear_shortages(connection: &impl ConnectionTrait) -> Result<(), DbErr> {
    execute(connection, "DELETE FROM shortage_flags", vec![])
        .await
        .map(|_| ())
}

/// SOC codes whose latest `skills_shortage` flag is set in some region.
pub async fn shortage_codes(connection: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
    all(
        connection,
        "SELECT DISTINCT soc_code FROM shortage_flags WHERE in_shortage ORDER BY soc_code",
        vec![],
        |row| row.try_get_by_index(0),
    )
    .await
}

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
