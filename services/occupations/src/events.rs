//! The events occupations publishes and consumes.

use careers_eventbus::{ConsumerSpec, Envelope, Event, Handler, HandlerError, catalogue};
use careers_proto::careers::{
    lmi::events::v1::FiguresPublished, occupations::events::v1::OccupationUpserted,
};
use sea_orm::{DatabaseTransaction, DbErr};

use crate::store::{figures, occupations};

/// The snapshot published after every change of a unit group.
pub fn upserted(row: &occupations::Model) -> OccupationUpserted {
    let stem = crate::classify::stem(&row.soc_code);
    OccupationUpserted {
        soc_code: row.soc_code.clone(),
        version: u64::try_from(row.version).unwrap_or_default(),
        title: row.title.clone(),
        major_group: row.major_group.clone(),
        sub_major_group: row.sub_major_group.clone(),
        minor_group: row.minor_group.clone(),
        is_stem: stem.is_stem,
        stem_discipline: stem.discipline.to_owned(),
    }
}

/// The durable consumer that keeps each occupation's LMI summary.
pub fn lmi_figures_consumer() -> ConsumerSpec {
    ConsumerSpec {
        durable: "occupations_lmi".into(),
        stream: catalogue::LMI,
        subjects: vec![FiguresPublished::SUBJECT.into()],
    }
}

/// Merges published figures into `lmi_figures`, figure by figure.
#[derive(Debug, Clone, Default)]
pub struct LmiFigures;

impl Handler for LmiFigures {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let batch: FiguresPublished = event.decode().map_err(|error| {
            HandlerError::Rejected(format!("undecodable FiguresPublished: {error}"))
        })?;
        let mut incoming = Vec::with_capacity(batch.figures.len());
        for figure in batch.figures {
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
            if figure.soc_code != batch.soc_code {
                return Err(HandlerError::Rejected(format!(
                    "figure {} is for {}, not the event's {}",
                    figure.figure_id, figure.soc_code, batch.soc_code
                )));
            }
            incoming.push(figures::Incoming {
                soc_code: figure.soc_code,
                measure: figure.measure,
                region: figure.region,
                breakdown: figure.breakdown,
                period: figure.period,
                value: figure.value,
                unit: figure.unit,
                source: figure.source,
                recorded_at,
                figure_id: figure.figure_id,
                suppressed: figure.suppressed,
                horizon: figure.horizon,
            });
        }
        figures::merge_many(txn, incoming).await?;
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        figures::clear(txn).await
    }
}
