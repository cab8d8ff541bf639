//! `POST /v1/lmi/submissions` (`ssc_publisher`): JSON `{"submission_key","rows"}` or
//! `text/csv` with `?submission_key=`; `?dry_run=true` records nothing. And the recorded
//! answer again: `GET /v1/lmi/submissions/{id}` and its `/delta`.

use std::collections::HashMap;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use careers_proto::careers::lmi::v1::{
    DeltaFigure, FigureRow, FigureRows, GetSubmissionRequest, Submission, SubmissionDelta,
    SubmissionEnd, SubmissionHeader, SubmitFiguresRequest, SubmitFiguresResponse,
    lmi_service_client::LmiServiceClient, submit_figures_request::Part,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::figures::report_entry_json;
use crate::routes::call::Caller;
use crate::{
    problem::{Problem, bad_request},
    routes::call::Channel,
};

/// The largest gRPC message to or from lmi: a submission's answer with its report.
const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;
/// The template's CSV columns; optional ones may be absent, unknown ones are an error.
const CSV_REQUIRED: [&str; 7] = [
    "soc_code", "region", "period", "measure", "value", "unit", "source",
];
const CSV_OPTIONAL: [&str; 4] = ["breakdown", "horizon", "sample_size", "quality"];

/// A JSON submission; unknown fields are refused so a typo is not silently dropped.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSubmission {
    submission_key: String,
    rows: Vec<JsonRow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRow {
    soc_code: String,
    region: String,
    period: String,
    measure: String,
    value: f64,
    unit: String,
    source: String,
    #[serde(default)]
    breakdown: Option<String>,
    #[serde(default)]
    horizon: Option<String>,
    #[serde(default)]
    sample_size: Option<u64>,
    #[serde(default)]
    quality: Option<String>,
}

impl From<JsonRow> for FigureRow {
    fn from(row: JsonRow) -> Self {
        FigureRow {
            soc_code: row.soc_code,
            region: row.region,
            period: row.period,
            measure: row.measure,
            value: row.value,
            unit: row.unit,
            source: row.source,
            breakdown: row.breakdown.unwrap_or_default(),
            horizon: row.horizon.unwrap_or_default(),
            sample_size: row.sample_size,
            quality: row.quality.unwrap_or_default(),
            line: 0,
        }
    }
}

/// Rows per gRPC message when a CSV is streamed to lmi.
const CSV_CHUNK: usize = 1_000;

/// Reads the template CSV as it arrives, handing rows to `sink` in chunks; the header is
/// checked before any row. `sink` answers false when nobody listens any more. Returns
/// the number of rows read.
fn parse_csv(
    body: impl std::io::Read,
    mut sink: impl FnMut(Vec<FigureRow>) -> bool,
) -> Result<u64, Problem> {
    let mut reader = csv::ReaderBuilder::new().from_reader(body);
    let header: Vec<String> = reader
        .headers()
        .map_err(|error| bad_request("malformed_csv", format!("unreadable CSV header: {error}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    for column in &header {
        if !CSV_REQUIRED.contains(&column.as_str()) && !CSV_OPTIONAL.contains(&column.as_str()) {
            return Err(bad_request(
                "malformed_csv",
                format!("unknown column {column:?} in the CSV header"),
            ));
        }
    }
    if let Some(missing) = CSV_REQUIRED
        .iter()
        .find(|column| !header.iter().any(|name| name == *column))
    {
        return Err(bad_request(
            "malformed_csv",
            format!("the CSV header lacks the required column {missing:?}"),
        ));
    }
    let mut rows = Vec::with_capacity(CSV_CHUNK);
    let mut read = 0_u64;
    for record in reader.records() {
        let record = record.map_err(|error| {
            bad_request("malformed_csv", format!("unreadable CSV record: {error}"))
        })?;
        let line = record.position().map_or(0, |position| position.line());
        let field: HashMap<&str, &str> = header
            .iter()
            .map(String::as_str)
            .zip(record.iter())
            .collect();
        let text = |name: &str| {
            field
                .get(name)
                .map(|value| (*value).to_owned())
                .unwrap_or_default()
        };
        // An unparseable number is reported by lmi as out of range for its field,
        // rather than refusing the whole file.
        let value = text("value").trim().parse::<f64>().unwrap_or(f64::NAN);
        let sample_size = match text("sample_size").trim() {
            "" => None,
            size => Some(size.parse::<u64>().map_err(|_| {
                bad_request(
                    "malformed_csv",
                    format!("line {line}: sample_size {size:?} is not a whole number"),
                )
            })?),
        };
        rows.push(FigureRow {
            soc_code: text("soc_code"),
            region: text("region"),
            period: text("period"),
            measure: text("measure"),
            value,
            unit: text("unit"),
            source: text("source"),
            breakdown: text("breakdown"),
            horizon: text("horizon"),
            sample_size,
            quality: text("quality"),
            line,
        });
        read += 1;
        if rows.len() == CSV_CHUNK && !sink(std::mem::take(&mut rows)) {
            return Ok(read);
        }
    }
    if !rows.is_empty() {
        sink(rows);
    }
    Ok(read)
}

/// The body, or 413 once it passes `limit` bytes.
async fn read_capped(body: axum::body::Body, limit: usize) -> Result<Bytes, Problem> {
    use futures::StreamExt;
    // Past the cap the rest is read and dropped (up to four times the cap), so a client
    // still sending gets its 413 instead of a connection reset mid-write.
    let drain_limit = limit.saturating_mul(4);
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut total = 0_usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| {
            bad_request(
                "malformed_body",
                format!("the body could not be read: {error}"),
            )
        })?;
        total = total.saturating_add(chunk.len());
        if total <= limit {
            kept.extend_from_slice(&chunk);
        } else if total > drain_limit {
            break;
        }
    }
    if total > limit {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("a JSON submission is at most {limit} bytes; send CSV for more"),
        ));
    }
    Ok(kept.into())
}

/// Streams a CSV body to lmi as it arrives, a chunk of rows per message, with no total
/// cap and never the whole file in memory. A record that cannot be read aborts the
/// call before lmi sees the end of the stream, so nothing is recorded.
async fn stream_csv(
    caller: &Caller,
    lmi: &mut LmiServiceClient<Channel>,
    header: SubmitFiguresRequest,
    body: axum::body::Body,
) -> Result<SubmitFiguresResponse, Problem> {
    use futures::StreamExt;
    use tokio_stream::wrappers::ReceiverStream;

    let (chunks, received) = tokio::sync::mpsc::channel::<SubmitFiguresRequest>(4);
    let bytes = body
        .into_data_stream()
        .map(|chunk| chunk.map_err(std::io::Error::other));
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(bytes));
    let mut parser = tokio::task::spawn_blocking(move || {
        let send = |part| chunks.blocking_send(SubmitFiguresRequest { part: Some(part) });
        let rows = parse_csv(reader, |rows| send(Part::Rows(FigureRows { rows })).is_ok())?;
        // Only a file read to its end is sealed: after a bad record the stream just ends,
        // and lmi records nothing however cleanly the transport closes it.
        let _ = send(Part::End(SubmissionEnd { rows }));
        Ok(rows)
    });
    let rows = ReceiverStream::new(received);
    let messages = futures::stream::once(async { header }).chain(rows);
    let mut request = caller.request(messages)?;
    request.set_timeout(caller.state.submission_timeout);
    let call = lmi.submit_figures(request);
    tokio::pin!(call);
    let mut parsed = false;
    loop {
        tokio::select! {
            answer = &mut call => {
                if answer.is_err() && !parsed {
                    // lmi refuses a stream the parser ended early; the parser's reason is
                    // the one the caller can act on, and it is ready by now.
                    let parsed = tokio::time::timeout(std::time::Duration::from_secs(1), &mut parser).await;
                    if let Ok(Ok(Err(problem))) = parsed {
                        return Err(problem);
                    }
                }
                return Ok(answer?.into_inner());
            }
            outcome = &mut parser, if !parsed => {
                parsed = true;
                match outcome {
                    Ok(Ok(_)) => {}
                    // Returning drops the call, which cancels it at lmi.
                    Ok(Err(problem)) => return Err(problem),
                    Err(error) => {
                        tracing::error!(%error, "the CSV reader failed");
                        return Err(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"));
                    }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SubmissionQuery {
    submission_key: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

pub(crate) async fn submission(
    caller: Caller,
    headers: HeaderMap,
    Query(query): Query<SubmissionQuery>,
    body: axum::body::Body,
) -> Result<Response, Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let mut lmi = caller
        .lmi()
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let header = |submission_key: String| SubmitFiguresRequest {
        part: Some(Part::Header(SubmissionHeader {
            submission_key,
            dry_run: query.dry_run,
            sealed: true,
        })),
    };
    let answer = match content_type.as_str() {
        "application/json" => {
            let body = read_capped(body, caller.state.max_json_bytes).await?;
            let parsed: JsonSubmission = serde_json::from_slice(&body).map_err(|error| {
                bad_request(
                    "malformed_json",
                    format!("the body is not a submission: {error}"),
                )
            })?;
            // In chunks like CSV: one message per 1,000 rows stays under gRPC's 4 MiB default.
            let rows: Vec<FigureRow> = parsed.rows.into_iter().map(FigureRow::from).collect();
            let messages: Vec<SubmitFiguresRequest> =
                std::iter::once(header(parsed.submission_key))
                    .chain(rows.chunks(CSV_CHUNK).map(|chunk| SubmitFiguresRequest {
                        part: Some(Part::Rows(FigureRows {
                            rows: chunk.to_vec(),
                        })),
                    }))
                    .chain(std::iter::once(SubmitFiguresRequest {
                        part: Some(Part::End(SubmissionEnd {
                            rows: rows.len() as u64,
                        })),
                    }))
                    .collect();
            let mut request = caller.request(tokio_stream::iter(messages))?;
            request.set_timeout(caller.state.submission_timeout);
            lmi.submit_figures(request).await?.into_inner()
        }
        "text/csv" => {
            let key = query.submission_key.clone().ok_or_else(|| {
                bad_request(
                    "validation_failed",
                    "a CSV submission needs ?submission_key=",
                )
            })?;
            stream_csv(&caller, &mut lmi, header(key), body).await?
        }
        other => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("send application/json or text/csv, not {other:?}"),
            ));
        }
    };
    let body = submission_json(answer.submission.unwrap_or_default(), query.dry_run);
    let status = if query.dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = (status, Json(body)).into_response();
    if answer.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

fn delta_json(delta: SubmissionDelta) -> Value {
    let figure = |figure: DeltaFigure| {
        let mut item = json!({
            "row": figure.row, "soc_code": figure.soc_code, "region": figure.region,
            "measure": figure.measure, "breakdown": figure.breakdown, "period": figure.period,
            "value": figure.new_value,
        });
        if let Some(old) = figure.old_value {
            item["old_value"] = old.into();
            item["new_value"] = figure.new_value.into();
        }
        item
    };
    json!({
        "added": delta.added.into_iter().map(figure).collect::<Vec<_>>(),
        "changed": delta.changed.into_iter().map(figure).collect::<Vec<_>>(),
        "unchanged": delta.unchanged,
    })
}

/// A submission's answer as CONTRACT.md shapes it; a dry run carries its delta.
fn submission_json(submission: Submission, with_delta: bool) -> Value {
    let counts = submission.counts.unwrap_or_default();
    let mut body = json!({
        "id": if submission.id.is_empty() { Value::Null } else { Value::String(submission.id) },
        "submission_key": submission.submission_key,
        "ssc": submission.ssc,
        "counts": {
            "rows": counts.rows, "accepted": counts.accepted, "quarantined": counts.quarantined,
            "rejected": counts.rejected, "suppressed": counts.suppressed,
        },
        "report": submission.report.into_iter().map(report_entry_json).collect::<Vec<_>>(),
    });
    if with_delta {
        body["delta"] = delta_json(submission.delta.unwrap_or_default());
    }
    body
}

async fn stored_submission(
    caller: &Caller,
    id: String,
    include_delta: bool,
) -> Result<Submission, Problem> {
    let request = caller.request(GetSubmissionRequest { id, include_delta })?;
    caller
        .lmi()
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .get_submission(request)
        .await?
        .into_inner()
        .submission
        .ok_or_else(|| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        })
}

/// `GET /v1/lmi/submissions/{id}`: the answer again; `Accept: text/csv` gives the report
/// as CSV, so an SSC can fix its rows and resend.
pub(crate) async fn submission_by_id(
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let submission = stored_submission(&caller, id, false).await?;
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/csv"));
    if !wants_csv {
        return Ok(Json(submission_json(submission, false)).into_response());
    }
    let mut writer = csv::Writer::from_writer(Vec::new());
    let internal = |_| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    };
    writer
        .write_record(["row", "line", "field", "rule", "severity", "message"])
        .map_err(internal)?;
    for entry in submission.report {
        writer
            .write_record([
                entry.row.to_string(),
                entry.line.to_string(),
                entry.field,
                entry.rule,
                entry.severity,
                entry.message,
            ])
            .map_err(internal)?;
    }
    let bytes = writer.into_inner().map_err(|_| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        )],
        bytes,
    )
        .into_response())
}

/// `GET /v1/lmi/submissions/{id}/delta`: what the submission changed against the figures
/// published when it was checked.
pub(crate) async fn submission_delta(
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let submission = stored_submission(&caller, id, true).await?;
    Ok(Json(delta_json(submission.delta.unwrap_or_default())).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(body: &[u8]) -> Result<Vec<FigureRow>, Problem> {
        let mut all = Vec::new();
        parse_csv(body, |rows| {
            all.extend(rows);
            true
        })?;
        Ok(all)
    }

    #[test]
    fn rows_arrive_in_chunks_and_a_bad_record_stops_the_stream_naming_it() {
        let header = "soc_code,region,period,measure,value,unit,source\n";
        let row = "2134,K02000001,2024,median_annual_pay,54669,GBP,ONS\n";
        let mut csv = header.to_owned();
        for _ in 0..2_500 {
            csv.push_str(row);
        }
        let mut chunks = Vec::new();
        let read = parse_csv(csv.as_bytes(), |rows| {
            chunks.push(rows.len());
            true
        })
        .unwrap();
        assert_eq!((read, chunks), (2_500, vec![1_000, 1_000, 500]));

        let mut broken = csv.into_bytes();
        broken.extend_from_slice(b"2134,K02000001,2024,median_annual_pay,\xff\xfe,GBP,ONS\n");
        let error = parse_all(&broken).unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(error.detail().contains("2502"), "{}", error.detail());
    }

    #[test]
    fn a_csv_with_the_template_header_parses_with_lines() {
        let csv = "soc_code,region,period,measure,value,unit,source,breakdown\n\
                   2134,K02000001,2024,median_annual_pay,54669,GBP,ONS ASHE 2024,full_time\n";
        let rows = parse_all(csv.as_bytes()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].soc_code.as_str(), rows[0].value, rows[0].line),
            ("2134", 54669.0, 2)
        );
    }

    #[test]
    fn a_csv_with_a_wrong_header_is_refused_naming_the_column() {
        let error = parse_all(b"soc,region\n2134,K02000001\n").unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(error.detail().contains("\"soc\""), "{}", error.detail());
        let error = parse_all(b"soc_code,region\n").unwrap_err();
        assert!(error.detail().contains("period"), "{}", error.detail());
    }
}
