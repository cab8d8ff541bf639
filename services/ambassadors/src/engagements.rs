//! An engagement's life cycle: proposed → accepted (the ambassador) → confirmed (the
//! school) → completed (the school), or declined (the ambassador) or cancelled (any of
//! the three) on the way. A coordinator may act for anyone. Each move is a conditional
//! update in its own transaction, with its event, so two callers racing cannot both move
//! one engagement and no event is published for a move that did not commit.

use careers_eventbus::{begin_write, enqueue};
use careers_proto::careers::ambassadors::{
    events::v1::{EngagementCompleted, EngagementConfirmed},
    v1 as api,
};
use chrono::Utc;
use sea_orm::DatabaseConnection;

use crate::{error::AmbassadorsError, micros, store};

/// Who is acting, as far as an engagement cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Coordinator,
    /// The ambassador id (the token's `sub`).
    Ambassador(String),
    /// The school's URN (the token's `org`).
    School(String),
}

/// A move and what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Accept,
    Decline,
    Confirm,
    Complete {
        feedback: String,
        students_reached: u32,
    },
    Cancel,
}

impl Action {
    fn name(&self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Decline => "decline",
            Self::Confirm => "confirm",
            Self::Complete { .. } => "complete",
            Self::Cancel => "cancel",
        }
    }

    fn from(&self) -> &'static [&'static str] {
        match self {
            Self::Accept | Self::Decline => &["proposed"],
            Self::Confirm => &["accepted"],
            Self::Complete { .. } => &["confirmed"],
            Self::Cancel => &["proposed", "accepted", "confirmed"],
        }
    }

    fn to(&self) -> &'static str {
        match self {
            Self::Accept => "accepted",
            Self::Decline => "declined",
            Self::Confirm => "confirmed",
            Self::Complete { .. } => "completed",
            Self::Cancel => "cancelled",
        }
    }

    /// Whether the move gives the request's slot back.
    pub fn frees_the_slot(&self) -> bool {
        matches!(self, Self::Decline | Self::Cancel)
    }

    fn allowed(&self, actor: &Actor) -> bool {
        matches!(
            (self, actor),
            (_, Actor::Coordinator)
                | (Self::Cancel, _)
                | (Self::Accept | Self::Decline, Actor::Ambassador(_))
                | (Self::Confirm | Self::Complete { .. }, Actor::School(_))
        )
    }
}

/// Whether `actor` may see the engagement at all (otherwise it is NOT_FOUND).
pub fn visible(actor: &Actor, engagement: &store::EngagementRow) -> bool {
    match actor {
        Actor::Coordinator => true,
        Actor::Ambassador(id) => *id == engagement.ambassador_id,
        Actor::School(urn) => *urn == engagement.school_urn,
    }
}

/// Applies `action` for `actor`; the engagement after it.
pub async fn act(
    db: &DatabaseConnection,
    actor: &Actor,
    id: &str,
    action: &Action,
) -> Result<store::EngagementRow, AmbassadorsError> {
    let txn = begin_write(db).await?;
    let Some(engagement) = store::engagement(&txn, id).await? else {
        return Err(AmbassadorsError::NotFound("engagement"));
    };
    if !visible(actor, &engagement) {
        return Err(AmbassadorsError::NotFound("engagement"));
    }
    if !action.allowed(actor) {
        return Err(AmbassadorsError::Forbidden(format!(
            "to {} an engagement is for {}",
            action.name(),
            match action {
                Action::Accept | Action::Decline => "its ambassador or a coordinator",
                _ => "its school's contact or a coordinator",
            }
        )));
    }
    let completion = match action {
        Action::Complete {
            feedback,
            students_reached,
        } => {
            if feedback.chars().count() > 2000 {
                return Err(AmbassadorsError::Invalid(vec![(
                    "feedback",
                    "at most 2,000 characters".to_owned(),
                )]));
            }
            Some((feedback.as_str(), i64::from(*students_reached)))
        }
        _ => None,
    };
    let now = micros(Utc::now());
    if !store::transition(&txn, id, action.from(), action.to(), now, completion).await? {
        return Err(AmbassadorsError::InvalidTransition(format!(
            "the engagement is {}; to {} it, it must be {}",
            engagement.status,
            action.name(),
            action.from().join(" or ")
        )));
    }
    let request = store::request(&txn, &engagement.request_id)
        .await?
        .ok_or_else(|| AmbassadorsError::Corrupt(format!("engagement {id} has no request")))?;
    match action {
        Action::Confirm => {
            enqueue(
                &txn,
                id,
                2,
                &EngagementConfirmed {
                    engagement_id: id.to_owned(),
                    request_id: engagement.request_id.clone(),
                    ambassador_id: engagement.ambassador_id.clone(),
                    school_urn: engagement.school_urn.clone(),
                    activity_date: engagement.activity_date.clone(),
                },
            )
            .await?;
        }
        Action::Complete { .. } => {
            enqueue(
                &txn,
                id,
                3,
                &EngagementCompleted {
                    engagement_id: id.to_owned(),
                    request_id: engagement.request_id.clone(),
                    school_urn: engagement.school_urn.clone(),
                    referral_id: request.referral_id.clone().unwrap_or_default(),
                    activity_date: engagement.activity_date.clone(),
                    client_id: request.client_id.clone().unwrap_or_default(),
                    activity_type: request.activity_type.clone(),
                },
            )
            .await?;
        }
        _ if action.frees_the_slot() && request.status == "matched" => {
            store::set_request_status(&txn, &request.id, "open").await?;
        }
        _ => {}
    }
    let after = store::engagement(&txn, id)
        .await?
        .ok_or(AmbassadorsError::NotFound("engagement"))?;
    txn.commit().await?;
    Ok(after)
}

/// The API's view of an engagement.
pub fn message(row: &store::EngagementRow) -> api::Engagement {
    api::Engagement {
        id: row.id.clone(),
        request_id: row.request_id.clone(),
        ambassador_id: row.ambassador_id.clone(),
        school_urn: row.school_urn.clone(),
        activity_date: row.activity_date.clone(),
        status: row.status.clone(),
        score: row.score,
        matching_run_id: row.run_id.clone(),
        feedback: row.feedback.clone(),
        students_reached: u32::try_from(row.students_reached).unwrap_or(0),
        created_at: crate::rfc3339(row.created_at),
        updated_at: crate::rfc3339(row.updated_at),
    }
}
