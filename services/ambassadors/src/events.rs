//! ambassadors' event handlers: the catalogue's unit groups from `OccupationUpserted`, so
//! a registration's SOC code is checked and its sector and STEM discipline known;
//! casenotes' referrals as activity requests; erased clients forgotten; which
//! occupations are in shortage, from lmi's `skills_shortage` figures.

use std::sync::Arc;

use careers_eventbus::{
    ConsumerSpec, Envelope, Event, Handler, HandlerError, catalogue,
    known_occupations::OccupationStore,
};
use careers_proto::careers::{
    casenotes::events::v1::{ClientErased, ReferralRequested},
    lmi::events::v1::FiguresPublished,
    occupations::events::v1::OccupationUpserted,
};
use chrono::Utc;
use sea_orm::{DatabaseTransaction, DbErr};

use crate::{domain, geo::Places, micros, store};

/// The durable consumer that keeps ambassadors' projection of the catalogue.
pub fn occupations_consumer() -> ConsumerSpec {
    careers_eventbus::known_occupations::consumer("ambassadors")
}

/// Applies occupation snapshots, newer versions only.
pub type KnownOccupations = careers_eventbus::known_occupations::KnownOccupations<Catalogue>;

/// ambassadors keeps each unit group's sector (sub-major group) and STEM discipline.
#[derive(Debug, Clone, Default)]
pub struct Catalogue;

impl OccupationStore for Catalogue {
    async fn apply(
        &self,
        txn: &DatabaseTransaction,
        snapshot: &OccupationUpserted,
        version: i64,
    ) -> Result<(), DbErr> {
        store::apply_occupation(
            txn,
            &snapshot.soc_code,
            version,
            &snapshot.sub_major_group,
            &snapshot.stem_discipline,
        )
        .await
    }

    async fn clear(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        store::clear_occupations(txn).await
    }
}

/// The durable consumer that turns casenotes' referrals into activity requests.
pub fn referrals_consumer() -> ConsumerSpec {
    ConsumerSpec {
        durable: "ambassadors_referrals".into(),
        stream: catalogue::CASENOTES,
        subjects: vec![ReferralRequested::SUBJECT.into()],
    }
}

/// A referral for a STEM Ambassador encounter becomes an open request for one
/// ambassador, located by the client's school or else by their postcode district.
#[derive(Debug, Clone)]
pub struct Referrals {
    pub places: Arc<Places>,
}

impl Handler for Referrals {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let referral: ReferralRequested = event.decode().map_err(|error| {
            HandlerError::Rejected(format!("undecodable ReferralRequested: {error}"))
        })?;
        if referral.referral_id.is_empty() || referral.client_id.is_empty() {
            return Err(HandlerError::Rejected(
                "a referral without its ids".to_owned(),
            ));
        }
        if store::request_of_referral(txn, &referral.referral_id).await? {
            return Ok(());
        }
        let now = Utc::now();
        let row = domain::referred_request(&referral, &self.places, now.date_naive())
            .map_err(HandlerError::Rejected)?;
        store::insert_request(
            txn,
            &store::RequestRow {
                id: uuid::Uuid::now_v7().to_string(),
                created_at: micros(now),
                ..row
            },
        )
        .await?;
        Ok(())
    }

    async fn reset(&self, _txn: &DatabaseTransaction) -> Result<(), DbErr> {
        // Requests are the register's own records, not a projection: a replay only adds
        // the referrals not yet seen.
        Ok(())
    }
}

/// The durable consumer that forgets erased clients.
pub fn erasures_consumer() -> ConsumerSpec {
    ConsumerSpec {
        durable: "ambassadors_erasures".into(),
        stream: catalogue::CASENOTES,
        subjects: vec![ClientErased::SUBJECT.into()],
    }
}

/// Removes every link to an erased client.
#[derive(Debug, Clone, Default)]
pub struct Erasures;

impl Handler for Erasures {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let erased: ClientErased = event.decode().map_err(|error| {
            HandlerError::Rejected(format!("undecodable ClientErased: {error}"))
        })?;
        if erased.client_id.is_empty() {
            return Err(HandlerError::Rejected(
                "ClientErased without a client_id".to_owned(),
            ));
        }
        store::forget_client(txn, &erased.client_id).await?;
        Ok(())
    }

    async fn reset(&self, _txn: &DatabaseTransaction) -> Result<(), DbErr> {
        Ok(())
    }
}

/// The durable consumer that keeps which occupations are in shortage.
pub fn shortages_consumer() -> ConsumerSpec {
    ConsumerSpec {
        durable: "ambassadors_lmi".into(),
        stream: catalogue::LMI,
        subjects: vec![FiguresPublished::SUBJECT.into()],
    }
}

/// The measure whose latest value (1 or 0) says an occupation is in shortage.
const SHORTAGE_MEASURE: &str = "skills_shortage";

/// Merges `skills_shortage` figures (all breakdowns but `all` and suppressed ones are
/// ignored) into the latest flag per (SOC code, region).
#[derive(Debug, Clone, Default)]
pub struct Shortages;

impl Handler for Shortages {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let batch: FiguresPublished = event.decode().map_err(|error| {
            HandlerError::Rejected(format!("undecodable FiguresPublished: {error}"))
        })?;
        for figure in batch.figures {
            if figure.measure != SHORTAGE_MEASURE
                || figure.suppressed
                || !(figure.breakdown.is_empty() || figure.breakdown == "all")
            {
                continue;
            }
            let recorded_at = figure
                .recorded_at
                .as_ref()
                .and_then(careers_proto::time::instant)
                .ok_or_else(|| {
                    HandlerError::Rejected(format!(
                        "figure {} has no recorded_at",
                        figure.figure_id
                    ))
                })?;
            let (period_end, period) = careers_proto::period::order_key(&figure.period);
            store::merge_shortage(
                txn,
                &store::ShortageFlag {
                    soc_code: figure.soc_code.clone(),
                    region: figure.region.clone(),
                    period_end,
                    period: period.to_owned(),
                    recorded_at: micros(recorded_at),
                    figure_id: figure.figure_id.clone(),
                    in_shortage: figure.value >= 0.5,
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        store::clear_shortages(txn).await
    }
}
