//! lmi's event handlers: the projection of known SOC codes from `OccupationUpserted`.

use careers_eventbus::{ConsumerSpec, known_occupations::OccupationStore};
use careers_proto::careers::occupations::events::v1::OccupationUpserted;
use sea_orm::{DatabaseTransaction, DbErr};

use crate::store::known_occupations;

/// The durable consumer that keeps `known_occupations`.
pub fn known_occupations_consumer() -> ConsumerSpec {
    careers_eventbus::known_occupations::consumer("lmi")
}

/// Applies occupation snapshots to `known_occupations`, newer versions only.
pub type KnownOccupations = careers_eventbus::known_occupations::KnownOccupations<Catalogue>;

/// lmi keeps each unit group's code, version and title.
#[derive(Debug, Clone, Default)]
pub struct Catalogue;

impl OccupationStore for Catalogue {
    async fn apply(
        &self,
        txn: &DatabaseTransaction,
        snapshot: &OccupationUpserted,
        version: i64,
    ) -> Result<(), DbErr> {
        known_occupations::apply_snapshot(txn, &snapshot.soc_code, version, &snapshot.title).await
    }

    async fn clear(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        known_occupations::clear(txn).await
    }
}
