//! The register: ambassadors, their sealed role-model attributes and the reads of them.

use super::*;

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

pub(super) const AMBASSADOR_COLUMNS: &str = "id, name, employer, soc_code, subjects, expertise, training, \
     postcode_district, latitude, longitude, district_terminated, travel_radius_km, availability, \
     monthly_capacity, dbs_checked_on, dbs_expires_on, synthetic, erased, created_at, version";

pub(super) fn ambassador_row(row: &QueryResult) -> Result<AmbassadorRow, DbErr> {
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
