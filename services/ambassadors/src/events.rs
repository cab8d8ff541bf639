//! ambassadors' event handlers: the catalogue's unit groups from `OccupationUpserted`, so
//! a registration's SOC code is checked and its sector and STEM discipline known.

use careers_eventbus::{ConsumerSpec, Envelope, Event, Handler, HandlerError, catalogue};
use careers_proto::careers::occupations::events::v1::OccupationUpserted;
use sea_orm::{DatabaseTransaction, DbErr};

use crate::store;

/// The durable consumer that keeps ambassadors' projection of the catalogue.
pub fn occupations_consumer() -> ConsumerSpec {
    ConsumerSpec {
        durable: "ambassadors_occupations".into(),
        stream: catalogue::OCCUPATIONS,
        subjects: vec![OccupationUpserted::SUBJECT.into()],
    }
}

/// Applies occupation snapshots, newer versions only.
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
        let code = &snapshot.soc_code;
        if !(code.len() == 4
            && code.bytes().all(|byte| byte.is_ascii_digit())
            && !code.starts_with('0'))
        {
            return Err(HandlerError::Rejected(format!(
                "malformed SOC code {code:?}"
            )));
        }
        let version = i64::try_from(snapshot.version).map_err(|_| {
            HandlerError::Rejected(format!("version {} out of range", snapshot.version))
        })?;
        store::apply_occupation(
            txn,
            code,
            version,
            &snapshot.sub_major_group,
            &snapshot.stem_discipline,
        )
        .await?;
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        store::clear_occupations(txn).await
    }
}
