//! One pipeline for every way a submission arrives (gRPC stream today; JSON and CSV
//! through the gateway): check the caller, validate each row, record the submission
//! with its answer and accepted figures, and publish `FiguresPublished` per SOC code,
//! all in one transaction.

use std::collections::{BTreeMap, BTreeSet};

use careers_eventbus::{RelayWaker, enqueue};
use careers_platform::identity::Identity;
use careers_proto::careers::lmi::{
    events::v1::{FiguresPublished, PublishedFigure},
    v1::{DeltaFigure, ReportEntry, Submission, SubmissionCounts, SubmissionDelta},
};
use chrono::{DateTime, Utc};
use prost::Message;
use sea_orm::DatabaseConnection;

use crate::{
    LmiError, ValidationSettings,
    domain::{self, Assessor, Outcome as RowOutcome, Policy, Row},
    store::{figures, sscs, submissions},
};

/// The longest submission key accepted.
const MAX_KEY_LENGTH: usize = 200;

/// The outcome: the answer, and whether it is the replay of an earlier one.
#[derive(Debug)]
pub struct Outcome {
    pub submission: Submission,
    pub replayed: bool,
}

/// Runs a submission for `caller`.
pub async fn submit(
    db: &DatabaseConnection,
    waker: &RelayWaker,
    caller: &Identity,
    key: &str,
    dry_run: bool,
    rows: Vec<Row>,
    validation: &ValidationSettings,
) -> Result<Outcome, LmiError> {
    if !caller.has_role("ssc_publisher") {
        return Err(LmiError::RoleRequired("ssc_publisher"));
    }
    let ssc = caller.ssc.clone().ok_or(LmiError::SscClaimMissing)?;
    let entry = sscs::get(db, &ssc)
        .await?
        .ok_or_else(|| LmiError::UnknownSsc(ssc.clone()))?;
    let footprint = domain::Footprint::parse(&entry.footprint)
        .map_err(|reason| LmiError::Corrupt(format!("footprint of SSC {ssc}: {reason}")))?;
    if key.trim().is_empty() || key.len() > MAX_KEY_LENGTH {
        return Err(LmiError::InvalidKey);
    }
    if !dry_run && let Some(answer) = submissions::answer_by_key(db, &ssc, key).await? {
        return Ok(Outcome {
            submission: decode(&answer)?,
            replayed: true,
        });
    }

    let known = submissions::known_codes(db).await?;
    let codes: BTreeSet<&str> = rows
        .iter()
        .map(|row| row.soc_code.as_str())
        .filter(|code| known.contains(*code))
        .collect();
    let published = figures::published_now(db, &codes).await?;
    let policy = Policy {
        quarantine_change: validation.quarantine_change,
        min_sample_size: validation.min_sample_size,
        change_rule: entry.change_rule,
    };
    let mut assessor = Assessor::new(&known, &ssc, &footprint, &policy, &published.series);
    let mut report = Vec::new();
    let mut kept = Vec::new();
    let mut counts = SubmissionCounts {
        rows: rows.len() as u64,
        ..SubmissionCounts::default()
    };
    let mut delta = SubmissionDelta::default();
    for (index, row) in rows.iter().enumerate() {
        let index = index as u64 + 1;
        let (outcome, findings) = assessor.assess(index, row);
        match outcome {
            RowOutcome::Accepted => {
                counts.accepted += 1;
                note_delta(&mut delta, &published, index, row);
            }
            RowOutcome::Quarantined => counts.quarantined += 1,
            RowOutcome::Rejected => counts.rejected += 1,
            RowOutcome::Suppressed => counts.suppressed += 1,
        }
        let held = findings
            .first()
            .filter(|_| outcome == RowOutcome::Quarantined)
            .map(|finding| (finding.rule, finding.message.clone()));
        if outcome != RowOutcome::Rejected {
            kept.push((index, row, outcome, held));
        }
        report.extend(findings.into_iter().map(|finding| ReportEntry {
            row: finding.row,
            line: finding.line,
            field: finding.field.to_owned(),
            rule: finding.rule.to_owned(),
            severity: finding.severity.to_owned(),
            message: finding.message,
        }));
    }
    let mut submission = Submission {
        id: String::new(),
        submission_key: key.to_owned(),
        ssc: ssc.clone(),
        counts: Some(counts),
        report,
        delta: Some(delta),
    };
    if dry_run {
        return Ok(Outcome {
            submission,
            replayed: false,
        });
    }

    submission.id = uuid::Uuid::now_v7().to_string();
    let now = Utc::now();
    let txn = careers_eventbus::begin_write(db).await?;
    submissions::insert_submission(
        &txn,
        &submission.id,
        &ssc,
        key,
        now,
        submission.encode_to_vec(),
    )
    .await?;
    let ids: Vec<String> = kept
        .iter()
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let stored: Vec<figures::NewFigure<'_>> = kept
        .iter()
        .zip(&ids)
        .map(
            |((index, row, outcome, held), figure_id)| figures::NewFigure {
                figure_id,
                submission_id: &submission.id,
                row,
                row_index: *index,
                status: outcome.status(),
                held: held
                    .as_ref()
                    .map(|(rule, message)| (*rule, message.as_str())),
                recorded_at: now,
            },
        )
        .collect();
    figures::insert_many(&txn, &stored).await?;
    let mut by_soc: BTreeMap<&str, Vec<PublishedFigure>> = BTreeMap::new();
    for ((_, row, outcome, _), figure_id) in kept.iter().zip(ids) {
        if *outcome == RowOutcome::Quarantined {
            continue;
        }
        by_soc
            .entry(row.soc_code.as_str())
            .or_default()
            .push(published_figure(
                figure_id,
                row,
                now,
                *outcome == RowOutcome::Suppressed,
            ));
    }
    for (soc_code, figures) in by_soc {
        let event = FiguresPublished {
            soc_code: soc_code.to_owned(),
            submission_id: submission.id.clone(),
            ssc: ssc.clone(),
            figures,
        };
        // Figures merge one by one by their own rule; the key version is not used for
        // additive events and stays 0.
        enqueue(&txn, soc_code, 0, &event).await?;
    }
    match txn.commit().await {
        Ok(()) => {}
        // A concurrent submission with the same key won the unique index: answer with its.
        Err(error) => {
            if let Some(answer) = submissions::answer_by_key(db, &ssc, key).await? {
                return Ok(Outcome {
                    submission: decode(&answer)?,
                    replayed: true,
                });
            }
            return Err(error.into());
        }
    }
    waker.wake();
    tracing::info!(ssc = %ssc, submission = %submission.id, rows = rows.len(), accepted = submission.counts.map_or(0, |c| c.accepted), "submission recorded");
    Ok(Outcome {
        submission,
        replayed: false,
    })
}

/// The event form of a stored figure; a suppressed one never carries its number.
pub fn published_figure(
    figure_id: String,
    row: &Row,
    recorded_at: DateTime<Utc>,
    suppressed: bool,
) -> PublishedFigure {
    PublishedFigure {
        figure_id,
        soc_code: row.soc_code.clone(),
        region: row.region.clone(),
        measure: row.measure.clone(),
        breakdown: row.breakdown.clone(),
        period: row.period.clone(),
        value: if suppressed { 0.0 } else { row.value },
        unit: row.unit.clone(),
        source: row.source.clone(),
        horizon: row.horizon.clone(),
        recorded_at: Some(prost_types::Timestamp {
            seconds: recorded_at.timestamp(),
            nanos: i32::try_from(recorded_at.timestamp_subsec_nanos()).unwrap_or(0),
        }),
        suppressed,
    }
}

/// Adds an accepted row to the delta against what is published now.
fn note_delta(
    delta: &mut SubmissionDelta,
    published: &figures::PublishedNow,
    index: u64,
    row: &Row,
) {
    let key = (
        (
            row.soc_code.clone(),
            row.region.clone(),
            row.measure.clone(),
            row.breakdown.clone(),
        ),
        row.period.clone(),
    );
    let old = published.figures.get(&key).copied();
    if old == Some(row.value) {
        delta.unchanged += 1;
        return;
    }
    let figure = DeltaFigure {
        row: index,
        soc_code: row.soc_code.clone(),
        region: row.region.clone(),
        measure: row.measure.clone(),
        breakdown: row.breakdown.clone(),
        period: row.period.clone(),
        new_value: row.value,
        old_value: old,
    };
    if old.is_some() {
        delta.changed.push(figure);
    } else {
        delta.added.push(figure);
    }
}

fn decode(answer: &[u8]) -> Result<Submission, LmiError> {
    Submission::decode(answer).map_err(|error| LmiError::Corrupt(error.to_string()))
}
