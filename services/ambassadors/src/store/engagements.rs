//! Engagements: an ambassador proposed for, then holding, a request's slot.

use super::*;

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

pub(super) const ENGAGEMENT_COLUMNS: &str = "id, run_id, request_id, ambassador_id, school_urn, \
     activity_date, status, score, terms, feedback, students_reached, created_at, updated_at";

pub(super) fn engagement_row(row: &QueryResult) -> Result<EngagementRow, DbErr> {
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
