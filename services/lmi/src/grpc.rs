//! The LmiService API: decode, call the pipeline, encode.

use careers_eventbus::RelayWaker;
use careers_platform::{
    cursor::{Cursors, PAGE},
    identity::caller,
};
use careers_proto::careers::lmi::v1::{
    ApproveFigureRequest, ApproveFigureResponse, CreateSscRequest, CreateSscResponse, DeltaFigure,
    FigureRow, FigureView, GetSscRequest, GetSscResponse, GetSubmissionRequest,
    GetSubmissionResponse, HeldFigure, ListFiguresRequest, ListFiguresResponse, ListReviewRequest,
    ListReviewResponse, ListSscsRequest, ListSscsResponse, PublishedFigure, RejectFigureRequest,
    RejectFigureResponse, ReportEntry, ReviewedFigure, SubmissionDelta, SubmitFiguresRequest,
    SubmitFiguresResponse, UpdateSscRequest, UpdateSscResponse, lmi_service_server::LmiService,
    submit_figures_request::Part,
};
use careers_proto::time::timestamp;
use chrono::{DateTime, Utc};
use prost::Message;
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use tonic::{Request, Response, Status, Streaming};

use crate::{
    LmiError,
    domain::{self, Row},
    registry,
    store::{figures, sscs, submissions},
    submit,
};

/// The most rows one submission may carry.
const MAX_ROWS: u64 = 1_000_000;

#[derive(Debug, Clone)]
pub struct Handlers {
    pub db: DatabaseConnection,
    pub waker: RelayWaker,
    pub cursors: Cursors,
    pub validation: crate::ValidationSettings,
    pub submissions: crate::SubmissionSettings,
}

/// What a figures cursor carries: where the page ended, and the instant the first page
/// was read at, so later pages show the same snapshot.
#[derive(Debug, Serialize, Deserialize)]
struct FiguresCursor {
    as_of: DateTime<Utc>,
    after: figures::Position,
}

/// What a cursor is bound to: the listing and every filter but the cursor itself.
fn figures_scope(request: &ListFiguresRequest) -> String {
    let as_of = request
        .as_of
        .map(|instant| format!("{}.{}", instant.seconds, instant.nanos));
    format!(
        "figures|{}|{}|{}|{}|{}|{}|{as_of:?}|{}",
        request.soc_code,
        request.region,
        request.measure,
        request.breakdown,
        request.period_from,
        request.period_to,
        request.view,
    )
}

/// The filter, page position and size a request asks for, every bad field named.
fn figures_query(
    request: &ListFiguresRequest,
    cursors: &Cursors,
) -> Result<(figures::Filter, Option<figures::Position>, u32), LmiError> {
    let mut problems = Vec::new();
    let optional = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    let mut check = |field: &'static str, text: &str, ok: bool, expected: &str| {
        if !text.is_empty() && !ok {
            problems.push((field, format!("{text:?} is not {expected}")));
        }
    };
    check(
        "soc_code",
        &request.soc_code,
        careers_proto::soc::is_soc_code(&request.soc_code),
        "a SOC 2020 unit group code (four digits)",
    );
    check(
        "region",
        &request.region,
        domain::is_region(&request.region),
        "a template region (for example K02000001 for the UK)",
    );
    check(
        "measure",
        &request.measure,
        domain::measure_rule(&request.measure).is_some(),
        "a template measure",
    );
    check(
        "breakdown",
        &request.breakdown,
        domain::is_breakdown(&request.breakdown),
        "a template breakdown",
    );
    let from = careers_proto::period::months(&request.period_from);
    check(
        "period_from",
        &request.period_from,
        from.is_some(),
        "YYYY, YYYY-Qn or YYYY-MM",
    );
    let to = careers_proto::period::months(&request.period_to);
    check(
        "period_to",
        &request.period_to,
        to.is_some(),
        "YYYY, YYYY-Qn or YYYY-MM",
    );
    let view = FigureView::try_from(request.view).unwrap_or(FigureView::Unspecified);
    if request.view != 0 && view == FigureView::Unspecified {
        problems.push(("view", format!("{} is not a figure view", request.view)));
    }
    let limit = PAGE.size(request.limit).unwrap_or_else(|error| {
        problems.push(("limit", error.to_string()));
        PAGE.max
    });
    let as_of = match &request.as_of {
        None => None,
        Some(timestamp) => {
            let instant = careers_proto::time::instant(timestamp);
            if instant.is_none() {
                problems.push(("as_of", "is not a valid instant".to_owned()));
            }
            instant
        }
    };
    if !problems.is_empty() {
        return Err(LmiError::InvalidQuery(problems));
    }
    let scope = figures_scope(request);
    let (as_of, after) = if request.cursor.is_empty() {
        (as_of.unwrap_or_else(Utc::now), None)
    } else {
        let cursor: FiguresCursor = cursors
            .decode(&scope, &request.cursor)
            .map_err(|_| LmiError::BadCursor)?;
        (cursor.as_of, Some(cursor.after))
    };
    let filter = figures::Filter {
        soc_code: optional(&request.soc_code),
        region: optional(&request.region),
        measure: optional(&request.measure),
        breakdown: optional(&request.breakdown),
        first_month: from.map(|months| months.first),
        last_month: to.map(|months| months.last),
        as_of,
        history: view == FigureView::History,
    };
    Ok((filter, after, limit))
}

fn to_published(record: figures::Record) -> PublishedFigure {
    let suppressed = record.status == "suppressed";
    PublishedFigure {
        received_at: Some(timestamp(record.recorded_at)),
        figure_id: record.figure_id,
        submission_id: record.submission_id,
        ssc: record.ssc,
        soc_code: record.soc_code,
        region: record.region,
        measure: record.measure,
        breakdown: record.breakdown,
        period: record.period,
        // A suppressed figure is never shown as a number.
        value: if suppressed { 0.0 } else { record.value },
        unit: record.unit,
        source: record.source,
        horizon: record.horizon,
        sample_size: record.sample_size.and_then(|size| u64::try_from(size).ok()),
        quality: record.quality,
        suppressed,
    }
}

fn to_reviewed((record, at): (figures::Record, DateTime<Utc>)) -> ReviewedFigure {
    ReviewedFigure {
        status: record.status.clone(),
        reason: record.review_reason.clone(),
        reviewed_by: record.reviewed_by.clone(),
        reviewed_at: Some(timestamp(at)),
        figure: Some(to_published(record)),
    }
}

/// The figure as the review queue shows it, with the finding that held it.
fn to_held(record: figures::Record) -> HeldFigure {
    let finding = ReportEntry {
        row: u64::try_from(record.row_index).unwrap_or_default(),
        line: u64::try_from(record.line).unwrap_or_default(),
        field: "value".to_owned(),
        rule: record.held_rule.clone(),
        severity: "warning".to_owned(),
        message: record.held_message.clone(),
    };
    HeldFigure {
        figure: Some(to_published(record)),
        findings: vec![finding],
    }
}

fn require_operator(identity: &careers_platform::identity::Identity) -> Result<(), LmiError> {
    if identity.has_role("operator") {
        Ok(())
    } else {
        Err(LmiError::RoleRequired("operator"))
    }
}

/// A page size: 0 means the default; over the maximum is refused.
fn page_limit(limit: u32) -> Result<u32, LmiError> {
    PAGE.size(limit)
        .map_err(|error| LmiError::InvalidQuery(vec![("limit", error.to_string())]))
}

/// The delta of a recorded submission, from its figures.
async fn stored_delta(db: &DatabaseConnection, id: &str) -> Result<SubmissionDelta, LmiError> {
    let (changes, unchanged) = figures::delta(db, id).await?;
    let mut delta = SubmissionDelta {
        unchanged,
        ..SubmissionDelta::default()
    };
    for change in changes {
        let figure = DeltaFigure {
            row: u64::try_from(change.row_index).unwrap_or(0),
            soc_code: change.soc_code,
            region: change.region,
            measure: change.measure,
            breakdown: change.breakdown,
            period: change.period,
            new_value: change.value,
            old_value: change.previous_value,
        };
        if change.delta == "changed" {
            delta.changed.push(figure);
        } else {
            delta.added.push(figure);
        }
    }
    Ok(delta)
}

/// Feeds the rest of the stream into `intake`, chunk by chunk.
async fn receive(
    intake: &mut submit::Intake<'_>,
    stream: &mut Streaming<SubmitFiguresRequest>,
    sealed: bool,
) -> Result<(), Status> {
    let mut ended = None;
    while let Some(message) = stream.message().await? {
        match message.part {
            Some(Part::Rows(chunk)) if ended.is_none() => {
                if intake.rows() + chunk.rows.len() as u64 > MAX_ROWS {
                    return Err(LmiError::TooManyRows(MAX_ROWS).into());
                }
                intake
                    .push(chunk.rows.into_iter().map(to_row).collect())
                    .await?;
            }
            Some(Part::End(end)) if ended.is_none() => ended = Some(end.rows),
            Some(Part::Header(_)) => return Err(LmiError::HeaderFirst.into()),
            _ => return Err(LmiError::AfterEnd.into()),
        }
    }
    match ended {
        Some(rows) if rows != intake.rows() => Err(LmiError::Unsealed {
            sent: Some(rows),
            received: intake.rows(),
        }
        .into()),
        None if sealed => Err(LmiError::Unsealed {
            sent: None,
            received: intake.rows(),
        }
        .into()),
        _ => Ok(()),
    }
}

fn require_reviewer(identity: &careers_platform::identity::Identity) -> Result<(), LmiError> {
    if identity.has_role("qa_reviewer") {
        Ok(())
    } else {
        Err(LmiError::RoleRequired("qa_reviewer"))
    }
}

fn to_row(row: FigureRow) -> Row {
    Row {
        soc_code: row.soc_code,
        region: row.region,
        period: row.period,
        measure: row.measure,
        value: row.value,
        unit: row.unit,
        source: row.source,
        breakdown: if row.breakdown.is_empty() {
            "all".to_owned()
        } else {
            row.breakdown
        },
        horizon: row.horizon,
        sample_size: row.sample_size,
        quality: row.quality,
        line: row.line,
    }
}

#[tonic::async_trait]
impl LmiService for Handlers {
    async fn submit_figures(
        &self,
        request: Request<Streaming<SubmitFiguresRequest>>,
    ) -> Result<Response<SubmitFiguresResponse>, Status> {
        let identity = caller(&request)?.clone();
        let mut stream = request.into_inner();
        let header = match stream.message().await?.and_then(|message| message.part) {
            Some(Part::Header(header)) => header,
            _ => return Err(LmiError::HeaderFirst.into()),
        };
        let pipeline = submit::Pipeline {
            db: &self.db,
            waker: &self.waker,
            validation: &self.validation,
            settings: &self.submissions,
        };
        let mut intake = match submit::open(
            pipeline,
            &identity,
            &header.submission_key,
            header.dry_run,
        )
        .await?
        {
            submit::Opened::Replayed(outcome) => {
                // The rows are not needed: the first answer stands.
                return Ok(Response::new(SubmitFiguresResponse {
                    submission: Some(outcome.submission),
                    replayed: true,
                }));
            }
            submit::Opened::Receiving(intake) => intake,
        };
        if let Err(error) = receive(&mut intake, &mut stream, header.sealed).await {
            intake.abandon().await;
            return Err(error);
        }
        let outcome = intake.finish().await?;
        Ok(Response::new(SubmitFiguresResponse {
            submission: Some(outcome.submission),
            replayed: outcome.replayed,
        }))
    }

    async fn get_submission(
        &self,
        request: Request<GetSubmissionRequest>,
    ) -> Result<Response<GetSubmissionResponse>, Status> {
        let identity = caller(&request)?.clone();
        let GetSubmissionRequest { id, include_delta } = request.into_inner();
        let (ssc, answer) = submissions::answer_by_id(&self.db, &id)
            .await
            .map_err(LmiError::from)?
            .ok_or_else(|| LmiError::SubmissionNotFound(id.clone()))?;
        // Another SSC's submission is not found, exactly like an unknown id.
        let allowed = identity.has_role("qa_reviewer")
            || (identity.has_role("ssc_publisher")
                && identity.ssc.as_deref() == Some(ssc.as_str()));
        if !allowed {
            return Err(LmiError::SubmissionNotFound(id).into());
        }
        let mut submission = careers_proto::careers::lmi::v1::Submission::decode(answer.as_slice())
            .map_err(|error| LmiError::Corrupt(error.to_string()))?;
        // Answers stored before figures kept their delta carry it inline.
        if !include_delta {
            submission.delta = None;
        } else if submission.delta.is_none() {
            submission.delta = Some(stored_delta(&self.db, &id).await?);
        }
        Ok(Response::new(GetSubmissionResponse {
            submission: Some(submission),
        }))
    }

    async fn list_figures(
        &self,
        request: Request<ListFiguresRequest>,
    ) -> Result<Response<ListFiguresResponse>, Status> {
        // Published figures are open to every caller the interceptor let through.
        let request = request.into_inner();
        let (filter, after, limit) = figures_query(&request, &self.cursors)?;
        let mut records = figures::page(&self.db, &filter, after.as_ref(), u64::from(limit) + 1)
            .await
            .map_err(LmiError::from)?;
        let more = records.len() > limit as usize;
        records.truncate(limit as usize);
        let next_cursor = match records.last() {
            Some(last) if more => {
                let cursor = FiguresCursor {
                    as_of: filter.as_of,
                    after: last.position(),
                };
                self.cursors.encode(&figures_scope(&request), &cursor)
            }
            _ => String::new(),
        };
        Ok(Response::new(ListFiguresResponse {
            items: records.into_iter().map(to_published).collect(),
            next_cursor,
        }))
    }

    async fn list_review(
        &self,
        request: Request<ListReviewRequest>,
    ) -> Result<Response<ListReviewResponse>, Status> {
        require_reviewer(caller(&request)?)?;
        let request = request.into_inner();
        let limit = page_limit(request.limit)?;
        const SCOPE: &str = "review";
        let after: Option<(String, String)> = if request.cursor.is_empty() {
            None
        } else {
            Some(
                self.cursors
                    .decode(SCOPE, &request.cursor)
                    .map_err(|_| LmiError::BadCursor)?,
            )
        };
        let mut records = figures::held_page(&self.db, after.as_ref(), u64::from(limit) + 1)
            .await
            .map_err(LmiError::from)?;
        let more = records.len() > limit as usize;
        records.truncate(limit as usize);
        let next_cursor = match records.last() {
            Some(last) if more => self.cursors.encode(
                SCOPE,
                &(
                    figures::instant_text(last.recorded_at),
                    last.figure_id.clone(),
                ),
            ),
            _ => String::new(),
        };
        Ok(Response::new(ListReviewResponse {
            items: records.into_iter().map(to_held).collect(),
            next_cursor,
        }))
    }

    async fn approve_figure(
        &self,
        request: Request<ApproveFigureRequest>,
    ) -> Result<Response<ApproveFigureResponse>, Status> {
        let reviewer = caller(&request)?.clone();
        require_reviewer(&reviewer)?;
        let decision = request.into_inner();
        let reviewed = crate::review::decide(
            &self.db,
            &self.waker,
            &reviewer,
            &decision.figure_id,
            &decision.reason,
            true,
        )
        .await?;
        Ok(Response::new(ApproveFigureResponse {
            reviewed: Some(to_reviewed(reviewed)),
        }))
    }

    async fn reject_figure(
        &self,
        request: Request<RejectFigureRequest>,
    ) -> Result<Response<RejectFigureResponse>, Status> {
        let reviewer = caller(&request)?.clone();
        require_reviewer(&reviewer)?;
        let decision = request.into_inner();
        if decision.reason.trim().is_empty() {
            return Err(LmiError::ReasonRequired.into());
        }
        let reviewed = crate::review::decide(
            &self.db,
            &self.waker,
            &reviewer,
            &decision.figure_id,
            &decision.reason,
            false,
        )
        .await?;
        Ok(Response::new(RejectFigureResponse {
            reviewed: Some(to_reviewed(reviewed)),
        }))
    }

    async fn list_sscs(
        &self,
        request: Request<ListSscsRequest>,
    ) -> Result<Response<ListSscsResponse>, Status> {
        require_operator(caller(&request)?)?;
        let request = request.into_inner();
        let limit = page_limit(request.limit)?;
        const SCOPE: &str = "sscs";
        let after: Option<String> = if request.cursor.is_empty() {
            None
        } else {
            Some(
                self.cursors
                    .decode(SCOPE, &request.cursor)
                    .map_err(|_| LmiError::BadCursor)?,
            )
        };
        let mut entries = sscs::page(&self.db, after.as_deref(), u64::from(limit) + 1)
            .await
            .map_err(LmiError::from)?;
        let more = entries.len() > limit as usize;
        entries.truncate(limit as usize);
        let next_cursor = match entries.last() {
            Some(last) if more => self.cursors.encode(SCOPE, &last.id),
            _ => String::new(),
        };
        Ok(Response::new(ListSscsResponse {
            items: entries.into_iter().map(registry::message_of).collect(),
            next_cursor,
        }))
    }

    async fn get_ssc(
        &self,
        request: Request<GetSscRequest>,
    ) -> Result<Response<GetSscResponse>, Status> {
        require_operator(caller(&request)?)?;
        let id = request.into_inner().id;
        let entry = sscs::get(&self.db, &id)
            .await
            .map_err(LmiError::from)?
            .ok_or(LmiError::SscNotFound(id))?;
        Ok(Response::new(GetSscResponse {
            ssc: Some(registry::message_of(entry)),
        }))
    }

    async fn create_ssc(
        &self,
        request: Request<CreateSscRequest>,
    ) -> Result<Response<CreateSscResponse>, Status> {
        let operator = caller(&request)?.clone();
        require_operator(&operator)?;
        let entry = registry::entry_of(request.into_inner().ssc)?;
        if !sscs::insert(&self.db, &entry)
            .await
            .map_err(LmiError::from)?
        {
            return Err(LmiError::SscExists(entry.id).into());
        }
        tracing::info!(ssc = %entry.id, operator = %operator.sub, "SSC registered");
        Ok(Response::new(CreateSscResponse {
            ssc: Some(registry::message_of(entry)),
        }))
    }

    async fn update_ssc(
        &self,
        request: Request<UpdateSscRequest>,
    ) -> Result<Response<UpdateSscResponse>, Status> {
        let operator = caller(&request)?.clone();
        require_operator(&operator)?;
        let entry = registry::entry_of(request.into_inner().ssc)?;
        if !sscs::update(&self.db, &entry)
            .await
            .map_err(LmiError::from)?
        {
            return Err(LmiError::SscNotFound(entry.id).into());
        }
        tracing::info!(ssc = %entry.id, operator = %operator.sub, "SSC updated");
        Ok(Response::new(UpdateSscResponse {
            ssc: Some(registry::message_of(entry)),
        }))
    }
}
