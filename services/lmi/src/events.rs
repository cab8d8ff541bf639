//! lmi's event handlers: the projection of known SOC codes from `OccupationUpserted`.

use careers_eventbus::{ConsumerSpec, Envelope, Event, Handler, HandlerError, catalogue};
use careers_proto::careers::occupations::events::v1::OccupationUpserted;
use sea_orm::{DatabaseTransaction, DbErr};

use crate::store::known_occupations;

/// The durable consumer that keeps `known_occupations`.
pub fn known_occupations_consumer() -> ConsumerSpec {
    ConsumerSpec {
        durable: "lmi_occupations".into(),
        stream: catalogue::OCCUPATIONS,
        subjects: vec![OccupationUpserted::SUBJECT.into()],
    }
}

/// Applies occupation snapshots to `known_occupations`, newer versions only.
#[derive(Debug, Clone, Default)]
pub struct KnownOccupations;

impl Handler for KnownOccupations {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let snapshot: OccupationUpserted = event.decode().map_err(|error| {
            HandlerError::Rejected(format!("undecodable OccupationUpserted: {error}"))
        })?;
        if !careers_proto::soc::is_soc_code(&snapshot.soc_code) {
            return Err(HandlerError::Rejected(format!(
                "malformed SOC code {:?}",
                snapshot.soc_code
            )));
        }
        let version = i64::try_from(snapshot.version).map_err(|_| {
            HandlerError::Rejected(format!("version {} out of range", snapshot.version))
        })?;
        known_occupations::apply_snapshot(txn, &snapshot.soc_code, version, &snapshot.title)
            .await?;
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        known_occupations::clear(txn).await
    }
}
