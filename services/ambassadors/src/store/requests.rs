//! Activity requests from schools and colleges, and from casenotes referrals.

use super::*;

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

pub(super) const REQUEST_COLUMNS: &str = "id, school_urn, school_name, latitude, longitude, activity_type, \
     subjects, year_group, audience_size, window_from, window_to, ambassadors_wanted, \
     preferred_sector, wants_diversity, status, referral_id, client_id, created_at";

pub(super) fn request_row(row: &QueryResult) -> Result<RequestRow, DbErr> {
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
