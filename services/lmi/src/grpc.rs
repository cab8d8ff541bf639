//! The LmiService API: decode, call the pipeline, encode.

use careers_eventbus::RelayWaker;
use careers_platform::identity::caller;
use careers_proto::careers::lmi::v1::{
    FigureRow, GetSubmissionRequest, GetSubmissionResponse, SubmitFiguresRequest,
    SubmitFiguresResponse, lmi_service_server::LmiService, submit_figures_request::Part,
};
use prost::Message;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status, Streaming};

use crate::{LmiError, domain::Row, store::submissions, submit};

/// The most rows one submission may carry.
const MAX_ROWS: usize = 1_000_000;

#[derive(Debug, Clone)]
pub struct Handlers {
    pub db: DatabaseConnection,
    pub waker: RelayWaker,
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
        let mut rows = Vec::new();
        while let Some(message) = stream.message().await? {
            match message.part {
                Some(Part::Rows(chunk)) => rows.extend(chunk.rows.into_iter().map(to_row)),
                _ => return Err(LmiError::HeaderFirst.into()),
            }
            if rows.len() > MAX_ROWS {
                return Err(LmiError::TooManyRows(MAX_ROWS).into());
            }
        }
        let outcome = submit::submit(
            &self.db,
            &self.waker,
            &identity,
            &header.submission_key,
            header.dry_run,
            rows,
        )
        .await?;
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
        let id = request.into_inner().id;
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
        let submission = careers_proto::careers::lmi::v1::Submission::decode(answer.as_slice())
            .map_err(|error| LmiError::Corrupt(error.to_string()))?;
        Ok(Response::new(GetSubmissionResponse {
            submission: Some(submission),
        }))
    }
}
