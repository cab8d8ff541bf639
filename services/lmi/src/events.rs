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
        if !is_soc_code(&snapshot.soc_code) {
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

/// `^[1-9][0-9]{3}$`: a SOC 2020 unit group code.
pub fn is_soc_code(code: &str) -> bool {
    code.len() == 4 && code.bytes().all(|byte| byte.is_ascii_digit()) && !code.starts_with('0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soc_codes_are_four_digits_not_starting_with_zero() {
        assert!(is_soc_code("2134"));
        assert!(!is_soc_code("0134"));
        assert!(!is_soc_code("213"));
        assert!(!is_soc_code("21345"));
        assert!(!is_soc_code("21a4"));
    }
}
