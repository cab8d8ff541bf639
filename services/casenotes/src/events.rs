//! casenotes' event handlers: Gatsby encounters from ambassadors' `EngagementCompleted`,
//! and the catalogue's SOC codes from `OccupationUpserted` (action plans name them).

use careers_eventbus::{
    ConsumerSpec, Envelope, Event, Handler, HandlerError, catalogue,
    known_occupations::OccupationStore,
};
use careers_proto::careers::{
    ambassadors::events::v1::EngagementCompleted, occupations::events::v1::OccupationUpserted,
};
use chrono::NaiveDate;
use sea_orm::{DatabaseTransaction, DbErr};

use crate::{domain, store};

/// The durable consumer that records completed engagements.
pub fn engagements_consumer() -> ConsumerSpec {
    ConsumerSpec {
        durable: "casenotes_engagements".into(),
        stream: catalogue::AMBASSADORS,
        subjects: vec![EngagementCompleted::SUBJECT.into()],
    }
}

/// Counts a completed engagement as an encounter for its school and, when it came from a
/// referral, for the client (unless erased since).
#[derive(Debug, Clone, Default)]
pub struct Engagements;

impl Handler for Engagements {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let completed: EngagementCompleted = event.decode().map_err(|error| {
            HandlerError::Rejected(format!("undecodable EngagementCompleted: {error}"))
        })?;
        let date =
            NaiveDate::parse_from_str(&completed.activity_date, "%Y-%m-%d").map_err(|_| {
                HandlerError::Rejected(format!(
                    "activity_date {:?} is not a date",
                    completed.activity_date
                ))
            })?;
        if completed.engagement_id.is_empty() {
            return Err(HandlerError::Rejected("engagement_id is empty".to_owned()));
        }
        let benchmark = domain::benchmark_of_activity(&completed.activity_type);
        let mut subjects = Vec::new();
        if !completed.school_urn.is_empty() {
            subjects.push(format!("school:{}", completed.school_urn));
        }
        let client_id = if completed.client_id.is_empty() && !completed.referral_id.is_empty() {
            store::referral_client(txn, &completed.referral_id).await?
        } else {
            Some(completed.client_id.clone()).filter(|id| !id.is_empty())
        };
        if let Some(client_id) = client_id
            && store::client_anywhere(txn, &client_id).await?.is_some()
        {
            subjects.push(format!("client:{client_id}"));
        }
        for subject in subjects {
            store::insert_encounter(
                txn,
                &store::EncounterRow {
                    subject,
                    benchmark,
                    date: date.to_string(),
                    source: "engagement".into(),
                    source_id: completed.engagement_id.clone(),
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        store::clear_engagement_encounters(txn).await
    }
}

/// The durable consumer that keeps casenotes' projection of the catalogue.
pub fn occupations_consumer() -> ConsumerSpec {
    careers_eventbus::known_occupations::consumer("casenotes")
}

/// Applies occupation snapshots, newer versions only.
pub type KnownOccupations = careers_eventbus::known_occupations::KnownOccupations<Catalogue>;

/// casenotes keeps each unit group's code and version.
#[derive(Debug, Clone, Default)]
pub struct Catalogue;

impl OccupationStore for Catalogue {
    async fn apply(
        &self,
        txn: &DatabaseTransaction,
        snapshot: &OccupationUpserted,
        version: i64,
    ) -> Result<(), DbErr> {
        store::apply_occupation(txn, &snapshot.soc_code, version).await
    }

    async fn clear(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        store::clear_occupations(txn).await
    }
}
