//! The projection of the occupations catalogue that lmi, casenotes and ambassadors each
//! keep: every unit group's latest `OccupationUpserted`, newer versions only. Decoding,
//! the checks and the consumer are the same for all three; what a service keeps of a
//! snapshot is its own [`OccupationStore`].

use std::future::Future;

use careers_proto::careers::occupations::events::v1::OccupationUpserted;
use sea_orm::{DatabaseTransaction, DbErr};

use crate::{ConsumerSpec, Envelope, Event, Handler, HandlerError, catalogue::OCCUPATIONS};

/// Where a service keeps its projection of the catalogue.
pub trait OccupationStore: Send + Sync + 'static {
    /// Keeps `snapshot` unless a version newer than `version` is held. The snapshot's SOC
    /// code is well formed and `version` in range by then.
    fn apply<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        snapshot: &'a OccupationUpserted,
        version: i64,
    ) -> impl Future<Output = Result<(), DbErr>> + Send + 'a;

    /// Forgets every unit group, so a replay rebuilds the projection.
    fn clear<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
    ) -> impl Future<Output = Result<(), DbErr>> + Send + 'a;
}

/// The handler that keeps a service's projection of the catalogue in `S`.
#[derive(Debug, Clone, Default)]
pub struct KnownOccupations<S>(pub S);

/// The durable consumer of `service`'s projection: `<service>_occupations`.
pub fn consumer(service: &str) -> ConsumerSpec {
    ConsumerSpec {
        durable: format!("{service}_occupations"),
        stream: OCCUPATIONS,
        subjects: vec![OccupationUpserted::SUBJECT.into()],
    }
}

impl<S: OccupationStore> Handler for KnownOccupations<S> {
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
        self.0.apply(txn, &snapshot, version).await?;
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        self.0.clear(txn).await
    }
}
