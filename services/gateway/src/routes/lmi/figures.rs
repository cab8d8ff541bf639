//! Published figures and the QA review queue.
//!
//! - `GET /v1/lmi/figures?soc_code=&region=&measure=&breakdown=&period_from=&period_to=&as_of=&view=&cursor=&limit=`:
//!   any authenticated role; published figures only.
//! - `GET /v1/lmi/review`, `POST /v1/lmi/review/{row_id}/approve|reject`: `qa_reviewer`.

use axum::{
    Json,
    extract::{Path, Query, rejection::QueryRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use careers_proto::careers::lmi::v1::{
    ApproveFigureRequest, FigureView, ListFiguresRequest, ListReviewRequest, PublishedFigure,
    RejectFigureRequest, ReportEntry,
};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::routes::call::Caller;
use crate::{
    problem::Problem,
    routes::call::{PageQuery, page, query},
};

fn instant(timestamp: Option<prost_types::Timestamp>) -> Option<String> {
    timestamp
        .as_ref()
        .and_then(careers_proto::time::instant)
        .map(|time| time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// A published figure as JSON; a suppressed one has `"value": null`.
pub(crate) fn figure_json(figure: PublishedFigure) -> Value {
    let value = (!figure.suppressed).then_some(figure.value);
    json!({
        "figure_id": figure.figure_id, "submission_id": figure.submission_id,
        "ssc": figure.ssc, "soc_code": figure.soc_code, "region": figure.region,
        "measure": figure.measure, "breakdown": figure.breakdown, "period": figure.period,
        "value": value, "unit": figure.unit, "source": figure.source,
        "horizon": (!figure.horizon.is_empty()).then_some(figure.horizon),
        "sample_size": figure.sample_size,
        "quality": (!figure.quality.is_empty()).then_some(figure.quality),
        "received_at": instant(figure.received_at),
        "suppressed": figure.suppressed,
    })
}

/// `GET /v1/lmi/review` (`qa_reviewer`): held figures, oldest first, each with the
/// finding that held it; `row_id` is what approve and reject take.
pub(crate) async fn review(
    caller: Caller,
    parameters: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let parameters = query(parameters)?;
    let request = caller.request(ListReviewRequest {
        limit: parameters.limit,
        cursor: parameters.cursor,
    })?;
    let answer = caller.lmi().list_review(request).await?.into_inner();
    let items = answer
        .items
        .into_iter()
        .map(|held| {
            let mut item = held.figure.map(figure_json).unwrap_or_default();
            item["row_id"] = item["figure_id"].clone();
            item["findings"] = held.findings.into_iter().map(report_entry_json).collect();
            item
        })
        .collect();
    Ok(page(items, answer.next_cursor))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    #[serde(default)]
    reason: String,
}

/// `POST /v1/lmi/review/{row_id}/approve|reject` (`qa_reviewer`), body `{"reason"}`
/// (required to reject).
pub(crate) async fn decide(
    caller: Caller,
    Path((row_id, decision)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let body: DecisionBody = if body.is_empty() {
        DecisionBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not a decision {{\"reason\"}}: {error}"),
            )
        })?
    };
    let mut client = caller.lmi();
    let (figure_id, reason) = (row_id, body.reason);
    let answer = match decision.as_str() {
        "approve" => client
            .approve_figure(caller.request(ApproveFigureRequest { figure_id, reason })?)
            .await
            .map(|response| response.into_inner().reviewed),
        "reject" => client
            .reject_figure(caller.request(RejectFigureRequest { figure_id, reason })?)
            .await
            .map(|response| response.into_inner().reviewed),
        _ => {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route: use approve or reject",
            ));
        }
    };
    let reviewed = answer?.unwrap_or_default();
    let mut body = reviewed.figure.map(figure_json).unwrap_or_default();
    body["row_id"] = body["figure_id"].clone();
    body["status"] = reviewed.status.into();
    body["reason"] = reviewed.reason.into();
    body["reviewed_by"] = reviewed.reviewed_by.into();
    body["reviewed_at"] = instant(reviewed.reviewed_at).into();
    Ok(Json(body).into_response())
}

/// One report entry as JSON.
pub(crate) fn report_entry_json(entry: ReportEntry) -> Value {
    json!({
        "row": entry.row, "line": entry.line, "field": entry.field, "rule": entry.rule,
        "severity": entry.severity, "message": entry.message,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FiguresQuery {
    #[serde(default)]
    soc_code: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    measure: String,
    #[serde(default)]
    breakdown: String,
    #[serde(default)]
    period_from: String,
    #[serde(default)]
    period_to: String,
    #[serde(default)]
    as_of: String,
    #[serde(default)]
    view: String,
    #[serde(default)]
    cursor: String,
    #[serde(default)]
    limit: u32,
}

/// `as_of`: an RFC 3339 instant, or a date meaning the end of that day (UTC).
fn parse_as_of(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Some(instant.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let end = date.and_hms_nano_opt(23, 59, 59, 999_999_999)?;
    Some(end.and_utc())
}

pub(crate) async fn figures(
    caller: Caller,
    parameters: Result<Query<FiguresQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let parameters = query(parameters)?;
    let mut errors = Vec::new();
    let as_of = match parameters.as_of.as_str() {
        "" => None,
        text => {
            let parsed = parse_as_of(text);
            if parsed.is_none() {
                errors.push((
                    "as_of".to_owned(),
                    format!("{text:?} is not an RFC 3339 instant or a YYYY-MM-DD date"),
                ));
            }
            parsed
        }
    };
    let view = match parameters.view.as_str() {
        "" | "latest" => FigureView::Latest,
        "history" => FigureView::History,
        other => {
            errors.push((
                "view".to_owned(),
                format!("{other:?} is not latest or history"),
            ));
            FigureView::Unspecified
        }
    };
    if !errors.is_empty() {
        return Err(Problem::invalid_fields(errors));
    }
    let request = caller.request(ListFiguresRequest {
        soc_code: parameters.soc_code,
        region: parameters.region,
        measure: parameters.measure,
        breakdown: parameters.breakdown,
        period_from: parameters.period_from,
        period_to: parameters.period_to,
        as_of: as_of.map(|at| prost_types::Timestamp {
            seconds: at.timestamp(),
            nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
        }),
        view: view.into(),
        limit: parameters.limit,
        cursor: parameters.cursor,
    })?;
    let answer = caller.lmi().list_figures(request).await?.into_inner();
    let items = answer.items.into_iter().map(figure_json).collect();
    Ok(page(items, answer.next_cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_takes_an_instant_or_a_date_meaning_the_end_of_that_day() {
        assert_eq!(
            parse_as_of("2026-11-23T10:00:00+01:00")
                .unwrap()
                .to_rfc3339(),
            "2026-11-23T09:00:00+00:00"
        );
        assert_eq!(
            parse_as_of("2026-11-23")
                .unwrap()
                .to_rfc3339_opts(SecondsFormat::Nanos, true),
            "2026-11-23T23:59:59.999999999Z"
        );
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-11-23T25:00:00Z",
            "23/11/2026",
        ] {
            assert!(parse_as_of(bad).is_none(), "{bad}");
        }
    }
}
