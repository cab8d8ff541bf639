//! One pipeline for every way a submission arrives (gRPC stream today; JSON and CSV
//! through the gateway): check the caller, validate each row, record the submission
//! with its answer and accepted figures, and publish `FiguresPublished` per SOC code,
//! all in one transaction.

use std::collections::BTreeMap;

use careers_eventbus::{RelayWaker, enqueue};
use careers_platform::identity::Identity;
use careers_proto::careers::lmi::{
    events::v1::{FiguresPublished, PublishedFigure},
    v1::{ReportEntry, Submission, SubmissionCounts},
};
use chrono::Utc;
use prost::Message;
use sea_orm::DatabaseConnection;

use crate::{
    LmiError,
    domain::{self, Row},
    store::{figures, submissions},
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
) -> Result<Outcome, LmiError> {
    if !caller.has_role("ssc_publisher") {
        return Err(LmiError::RoleRequired("ssc_publisher"));
    }
    let ssc = caller.ssc.clone().ok_or(LmiError::SscClaimMissing)?;
    let footprint = submissions::ssc_footprint(db, &ssc)
        .await?
        .ok_or_else(|| LmiError::UnknownSsc(ssc.clone()))?;
    let footprint = domain::Footprint::parse(&footprint)
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
    let mut report = Vec::new();
    let mut accepted = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let findings = domain::check_row(index as u64 + 1, row, &known, &ssc, &footprint);
        if findings.is_empty() {
            accepted.push(row);
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
    let counts = SubmissionCounts {
        rows: rows.len() as u64,
        accepted: accepted.len() as u64,
        quarantined: 0,
        rejected: (rows.len() - accepted.len()) as u64,
        suppressed: 0,
    };
    let mut submission = Submission {
        id: String::new(),
        submission_key: key.to_owned(),
        ssc: ssc.clone(),
        counts: Some(counts),
        report,
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
    let mut by_soc: BTreeMap<&str, Vec<PublishedFigure>> = BTreeMap::new();
    for row in accepted {
        let figure_id = uuid::Uuid::now_v7().to_string();
        figures::insert(&txn, &figure_id, &submission.id, row, now).await?;
        by_soc
            .entry(row.soc_code.as_str())
            .or_default()
            .push(PublishedFigure {
                figure_id,
                soc_code: row.soc_code.clone(),
                region: row.region.clone(),
                measure: row.measure.clone(),
                breakdown: row.breakdown.clone(),
                period: row.period.clone(),
                value: row.value,
                unit: row.unit.clone(),
                source: row.source.clone(),
                horizon: row.horizon.clone(),
                recorded_at: Some(prost_types::Timestamp {
                    seconds: now.timestamp(),
                    nanos: i32::try_from(now.timestamp_subsec_nanos()).unwrap_or(0),
                }),
                suppressed: false,
            });
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

fn decode(answer: &[u8]) -> Result<Submission, LmiError> {
    Submission::decode(answer).map_err(|error| LmiError::Corrupt(error.to_string()))
}
