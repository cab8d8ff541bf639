//! One pipeline for every way a submission arrives (the gRPC stream; JSON and CSV through
//! the gateway). Rows are assessed as they arrive and, unless it is a dry run, staged in
//! short transactions that nothing reads yet (see [`store::staging`]), so memory stays
//! flat however long the file. One final transaction records the submission with its
//! answer and enqueues `FiguresPublished` per SOC code, which makes it all visible at once;
//! anything that fails before leaves nothing behind.

use std::{
    collections::{BTreeSet, HashSet},
    time::{Duration, Instant},
};

use careers_eventbus::{RelayWaker, enqueue};
use careers_platform::identity::Identity;
use careers_proto::careers::lmi::{
    events::v1::{FiguresPublished, PublishedFigure},
    v1::{DeltaFigure, ReportEntry, Submission, SubmissionCounts, SubmissionDelta},
};
use chrono::{DateTime, Utc};
use prost::Message;
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::{
    LmiError, SubmissionSettings, ValidationSettings,
    domain::{self, Assessor, Outcome as RowOutcome, Policy, Row},
    store::{figures, sscs, staging, submissions},
};

/// The longest submission key accepted.
const MAX_KEY_LENGTH: usize = 200;
/// Kept rows staged per transaction: large enough for batched inserts to run at speed,
/// small enough that memory stays flat.
const STAGE_ROWS: usize = 5_000;

/// The outcome: the answer, and whether it is the replay of an earlier one.
#[derive(Debug)]
pub struct Outcome {
    pub submission: Submission,
    pub replayed: bool,
}

/// A submission once its header is checked: answered already, or ready for rows.
#[derive(Debug)]
pub enum Opened<'a> {
    Replayed(Outcome),
    Receiving(Box<Intake<'a>>),
}

/// Everything a submission needs from the service.
#[derive(Debug, Clone, Copy)]
pub struct Pipeline<'a> {
    pub db: &'a DatabaseConnection,
    pub waker: &'a RelayWaker,
    pub validation: &'a ValidationSettings,
    pub settings: &'a SubmissionSettings,
}

/// A row kept for storing, until its stage transaction.
#[derive(Debug)]
struct Pending {
    figure_id: String,
    row: Row,
    row_index: u64,
    status: &'static str,
    held: Option<(&'static str, String)>,
    delta: &'static str,
    previous_value: Option<f64>,
}

/// A submission being received.
#[derive(Debug)]
pub struct Intake<'a> {
    pipeline: Pipeline<'a>,
    ssc: String,
    key: String,
    dry_run: bool,
    id: String,
    recorded_at: DateTime<Utc>,
    assessor: Assessor,
    /// What is published for the SOC codes met so far, loaded as each first appears.
    published: figures::PublishedNow,
    loaded: HashSet<String>,
    counts: SubmissionCounts,
    report: Vec<ReportEntry>,
    /// The delta's figures are listed only for a dry run; a stored submission keeps them
    /// in its figures.
    delta: SubmissionDelta,
    pending: Vec<Pending>,
    staged: Option<Instant>,
    /// SOC codes with figures to publish: one event each. At most the catalogue's codes.
    to_publish: BTreeSet<String>,
}

/// Checks the caller and the header of a submission for `caller`.
pub async fn open<'a>(
    pipeline: Pipeline<'a>,
    caller: &Identity,
    key: &str,
    dry_run: bool,
) -> Result<Opened<'a>, LmiError> {
    if !caller.has_role("ssc_publisher") {
        return Err(LmiError::RoleRequired("ssc_publisher"));
    }
    let db = pipeline.db;
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
        return Ok(Opened::Replayed(Outcome {
            submission: decode(&answer)?,
            replayed: true,
        }));
    }
    let policy = Policy {
        quarantine_change: pipeline.validation.quarantine_change,
        min_sample_size: pipeline.validation.min_sample_size,
        change_rule: entry.change_rule,
    };
    let known = submissions::known_codes(db).await?;
    Ok(Opened::Receiving(Box::new(Intake {
        pipeline,
        assessor: Assessor::new(known, &ssc, footprint, policy),
        ssc,
        key: key.to_owned(),
        dry_run,
        id: uuid::Uuid::now_v7().to_string(),
        recorded_at: Utc::now(),
        published: figures::PublishedNow::default(),
        loaded: HashSet::new(),
        counts: SubmissionCounts::default(),
        report: Vec::new(),
        delta: SubmissionDelta::default(),
        pending: Vec::new(),
        staged: None,
        to_publish: BTreeSet::new(),
    })))
}

impl Intake<'_> {
    /// Rows received so far.
    pub fn rows(&self) -> u64 {
        self.counts.rows
    }

    /// Assesses the next rows and stages what is kept.
    pub async fn push(&mut self, rows: Vec<Row>) -> Result<(), LmiError> {
        let fresh: BTreeSet<&str> = rows
            .iter()
            .map(|row| row.soc_code.as_str())
            .filter(|code| self.assessor.known.contains(*code) && !self.loaded.contains(*code))
            .collect();
        if !fresh.is_empty() {
            let more = figures::published_now(self.pipeline.db, &fresh).await?;
            self.published.series.extend(more.series);
            self.published.figures.extend(more.figures);
            self.loaded.extend(fresh.into_iter().map(str::to_owned));
        }
        for row in rows {
            self.counts.rows += 1;
            self.assess(self.counts.rows, row);
        }
        let idle_limit = self.pipeline.settings.staging_timeout / 4;
        let overdue = self
            .staged
            .is_some_and(|at| at.elapsed() > idle_limit.min(Duration::from_secs(60)));
        if self.pending.len() >= STAGE_ROWS || (overdue && !self.pending.is_empty()) {
            self.stage().await?;
        }
        Ok(())
    }

    fn assess(&mut self, index: u64, row: Row) {
        let (outcome, findings) = self.assessor.assess(index, &row, &self.published.series);
        let (mut delta, mut previous_value) = ("", None);
        match outcome {
            RowOutcome::Accepted => {
                self.counts.accepted += 1;
                (delta, previous_value) = self.note_delta(index, &row);
            }
            RowOutcome::Quarantined => self.counts.quarantined += 1,
            RowOutcome::Rejected => self.counts.rejected += 1,
            RowOutcome::Suppressed => self.counts.suppressed += 1,
        }
        let held = findings
            .first()
            .filter(|_| outcome == RowOutcome::Quarantined)
            .map(|finding| (finding.rule, finding.message.clone()));
        self.report
            .extend(findings.into_iter().map(|finding| ReportEntry {
                row: finding.row,
                line: finding.line,
                field: finding.field.to_owned(),
                rule: finding.rule.to_owned(),
                severity: finding.severity.to_owned(),
                message: finding.message,
            }));
        if matches!(outcome, RowOutcome::Accepted | RowOutcome::Suppressed)
            && !self.to_publish.contains(&row.soc_code)
        {
            self.to_publish.insert(row.soc_code.clone());
        }
        if outcome != RowOutcome::Rejected && !self.dry_run {
            self.pending.push(Pending {
                figure_id: uuid::Uuid::now_v7().to_string(),
                row,
                row_index: index,
                status: outcome.status(),
                held,
                delta,
                previous_value,
            });
        }
    }

    /// Counts an accepted row in the delta against what is published now; its kind and
    /// the value it replaces.
    fn note_delta(&mut self, index: u64, row: &Row) -> (&'static str, Option<f64>) {
        let key = (
            (
                row.soc_code.clone(),
                row.region.clone(),
                row.measure.clone(),
                row.breakdown.clone(),
            ),
            row.period.clone(),
        );
        let old = self.published.figures.get(&key).copied();
        if old == Some(row.value) {
            self.delta.unchanged += 1;
            return ("unchanged", old);
        }
        let kind = if old.is_some() { "changed" } else { "added" };
        if self.dry_run {
            let figure = delta_figure(index, row, row.value, old);
            match old {
                Some(_) => self.delta.changed.push(figure),
                None => self.delta.added.push(figure),
            }
        }
        (kind, old)
    }

    /// Writes the pending rows in one short transaction.
    async fn stage(&mut self) -> Result<(), LmiError> {
        let stored: Vec<figures::NewFigure<'_>> = self
            .pending
            .iter()
            .map(|pending| figures::NewFigure {
                figure_id: &pending.figure_id,
                submission_id: &self.id,
                row: &pending.row,
                row_index: pending.row_index,
                status: pending.status,
                held: pending
                    .held
                    .as_ref()
                    .map(|(rule, message)| (*rule, message.as_str())),
                recorded_at: self.recorded_at,
                delta: pending.delta,
                previous_value: pending.previous_value,
            })
            .collect();
        let first = self.staged.is_none();
        let alive = staging::stage(
            self.pipeline.db,
            &self.id,
            (&self.ssc, &self.key),
            first,
            &stored,
        )
        .await?;
        if !alive {
            return Err(LmiError::StagingExpired);
        }
        self.pending.clear();
        self.staged = Some(Instant::now());
        Ok(())
    }

    /// Records the submission and publishes its figures; a dry run only answers.
    pub async fn finish(mut self) -> Result<Outcome, LmiError> {
        let mut submission = Submission {
            id: String::new(),
            submission_key: self.key.clone(),
            ssc: self.ssc.clone(),
            counts: Some(self.counts),
            report: std::mem::take(&mut self.report),
            delta: None,
        };
        if self.dry_run {
            submission.delta = Some(std::mem::take(&mut self.delta));
            return Ok(Outcome {
                submission,
                replayed: false,
            });
        }
        submission.id = self.id.clone();
        let staged = if self.pending.is_empty() {
            Ok(())
        } else {
            self.stage().await
        };
        let recorded = match staged {
            Ok(()) => self.record(&submission).await,
            Err(error) => Err(error),
        };
        if let Err(error) = recorded {
            self.abandon().await;
            // A concurrent submission with the same key won the unique index: answer with its.
            let db = self.pipeline.db;
            if let Some(answer) = submissions::answer_by_key(db, &self.ssc, &self.key).await? {
                return Ok(Outcome {
                    submission: decode(&answer)?,
                    replayed: true,
                });
            }
            return Err(error);
        }
        self.pipeline.waker.wake();
        tracing::info!(ssc = %self.ssc, submission = %self.id, rows = self.counts.rows, accepted = self.counts.accepted, "submission recorded");
        Ok(Outcome {
            submission,
            replayed: false,
        })
    }

    /// The final transaction: the submission with its answer, its staging ended, and one
    /// `FiguresPublished` per SOC code built from its figures read back.
    async fn record(&self, submission: &Submission) -> Result<(), LmiError> {
        let txn = careers_eventbus::begin_write(self.pipeline.db).await?;
        if self.staged.is_some() && !staging::finish(&txn, &self.id).await? {
            return Err(LmiError::StagingExpired);
        }
        submissions::insert_submission(
            &txn,
            &self.id,
            &self.ssc,
            &self.key,
            self.recorded_at,
            submission.encode_to_vec(),
        )
        .await?;
        if self.staged.is_some() {
            self.enqueue_events(&txn).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    async fn enqueue_events(&self, txn: &impl ConnectionTrait) -> Result<(), LmiError> {
        for soc_code in &self.to_publish {
            let figures = figures::submission_figures(txn, &self.id, soc_code)
                .await?
                .into_iter()
                .map(|stored| {
                    published_figure(
                        stored.figure_id,
                        &stored.row,
                        self.recorded_at,
                        stored.suppressed,
                    )
                })
                .collect();
            let event = FiguresPublished {
                soc_code: soc_code.clone(),
                submission_id: self.id.clone(),
                ssc: self.ssc.clone(),
                figures,
            };
            // Figures merge one by one by their own rule; the key version is not used
            // for additive events and stays 0.
            enqueue(txn, soc_code, 0, &event).await?;
        }
        Ok(())
    }

    /// Deletes what was staged, logging a failure: the sweep removes it later anyway.
    pub async fn abandon(&self) {
        if self.staged.is_none() {
            return;
        }
        if let Err(error) = staging::abandon(self.pipeline.db, &self.id).await {
            tracing::warn!(submission = %self.id, %error, "staged figures left for the sweep");
        }
    }
}

/// Removes, every so often until `stop`, what crashed or abandoned uploads staged.
pub async fn sweep_staging(
    db: DatabaseConnection,
    settings: SubmissionSettings,
    stop: tokio_util::sync::CancellationToken,
) {
    let every =
        (settings.staging_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        let before = Utc::now()
            - chrono::Duration::from_std(settings.staging_timeout).unwrap_or(chrono::Duration::MAX);
        match staging::sweep(&db, before).await {
            Ok((0, _)) => {}
            Ok((uploads, figures)) => {
                tracing::warn!(
                    uploads,
                    figures,
                    "removed staged figures of abandoned uploads"
                );
            }
            Err(error) => tracing::warn!(%error, "staging sweep failed; next try soon"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// A delta entry for row `index`.
fn delta_figure(index: u64, row: &Row, new_value: f64, old_value: Option<f64>) -> DeltaFigure {
    DeltaFigure {
        row: index,
        soc_code: row.soc_code.clone(),
        region: row.region.clone(),
        measure: row.measure.clone(),
        breakdown: row.breakdown.clone(),
        period: row.period.clone(),
        new_value,
        old_value,
    }
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
        recorded_at: Some(careers_proto::time::timestamp(recorded_at)),
        suppressed,
    }
}

fn decode(answer: &[u8]) -> Result<Submission, LmiError> {
    Submission::decode(answer).map_err(|error| LmiError::Corrupt(error.to_string()))
}
