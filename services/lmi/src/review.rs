//! QA decisions on held figures: approve (publish, in the decision's transaction) or
//! reject, once.

use careers_eventbus::{RelayWaker, enqueue};
use careers_platform::identity::Identity;
use careers_proto::careers::lmi::events::v1::FiguresPublished;
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;

use crate::{LmiError, domain::Row, store::figures, submit::published_figure};

/// Approves (publishing it, in the same transaction) or rejects a held figure; answers
/// the figure as decided, and when.
pub async fn decide(
    db: &DatabaseConnection,
    waker: &RelayWaker,
    reviewer: &Identity,
    figure_id: &str,
    reason: &str,
    approve: bool,
) -> Result<(figures::Record, DateTime<Utc>), LmiError> {
    let status = if approve { "published" } else { "rejected" };
    let now = Utc::now();
    let txn = careers_eventbus::begin_write(db).await?;
    let decided =
        figures::decide(&txn, figure_id, status, reason.trim(), &reviewer.sub, now).await?;
    let record = figures::by_id(&txn, figure_id)
        .await?
        .ok_or_else(|| LmiError::FigureNotFound(figure_id.to_owned()))?;
    if !decided {
        // Held figures only: one never held is not in the queue at all.
        if record.reviewed_by.is_empty() {
            return Err(LmiError::FigureNotFound(figure_id.to_owned()));
        }
        return Err(LmiError::AlreadyDecided(
            figure_id.to_owned(),
            record.status,
        ));
    }
    if approve {
        let row = Row {
            soc_code: record.soc_code.clone(),
            region: record.region.clone(),
            period: record.period.clone(),
            measure: record.measure.clone(),
            value: record.value,
            unit: record.unit.clone(),
            source: record.source.clone(),
            breakdown: record.breakdown.clone(),
            horizon: record.horizon.clone(),
            ..Row::default()
        };
        // Its original recorded_at: a newer figure accepted meanwhile still wins the merge.
        let figure = published_figure(record.figure_id.clone(), &row, record.recorded_at, false);
        let event = FiguresPublished {
            soc_code: record.soc_code.clone(),
            submission_id: record.submission_id.clone(),
            ssc: record.ssc.clone(),
            figures: vec![figure],
        };
        enqueue(&txn, &record.soc_code, 0, &event).await?;
    }
    txn.commit().await?;
    waker.wake();
    tracing::info!(figure = %record.figure_id, status, reviewer = %reviewer.sub, "review decision recorded");
    Ok((record, now))
}
