//! `GET /v1/occupations/{soc}/profile`: the occupation, its latest LMI and pay trend, and
//! how many ambassadors in it are available near a postcode district, composed from three
//! services at once. The occupation is the anchor (its failure is the answer's); with lmi
//! or ambassadors down, the rest is returned and that part listed in `unavailable`.

use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
    response::{IntoResponse, Response},
};
use careers_proto::careers::{
    ambassadors::v1::{
        CountAvailableAmbassadorsRequest, ambassadors_service_client::AmbassadorsServiceClient,
    },
    lmi::v1::{FigureView, ListFiguresRequest, PublishedFigure},
    occupations::v1::GetOccupationRequest,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tonic::Code;

use super::occupation::occupation_json;
use crate::routes::call::Caller;
use crate::{
    problem::Problem,
    routes::{
        call::{ApiState, query},
        lmi::figure_json,
    },
};

/// The trend: median annual pay, UK-wide, all workers, period by period.
const TREND_MEASURE: &str = "median_annual_pay";
const TREND_REGION: &str = "K02000001";
const TREND_BREAKDOWN: &str = "all";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProfileQuery {
    #[serde(default)]
    postcode_district: String,
}

/// An upstream that is down or too slow: its part is left out, not the whole answer.
fn is_outage(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
    )
}

pub(crate) async fn profile(
    caller: Caller,
    State(state): State<ApiState>,
    Path(soc): Path<String>,
    parameters: Result<Query<ProfileQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let parameters = query(parameters)?;
    let figures = |region: &str, measure: &str, breakdown: &str, view: FigureView| {
        caller.request(ListFiguresRequest {
            soc_code: soc.clone(),
            region: region.to_owned(),
            measure: measure.to_owned(),
            breakdown: breakdown.to_owned(),
            view: view.into(),
            limit: 100,
            ..ListFiguresRequest::default()
        })
    };
    let occupation_request = caller.request(GetOccupationRequest {
        soc_code: soc.clone(),
    })?;
    let latest_request = figures("", "", "", FigureView::Latest)?;
    let trend_request = figures(
        TREND_REGION,
        TREND_MEASURE,
        TREND_BREAKDOWN,
        FigureView::History,
    )?;
    let ambassadors_request = caller.request(CountAvailableAmbassadorsRequest {
        soc_code: soc.clone(),
        postcode_district: parameters.postcode_district.clone(),
    })?;
    let mut occupations = caller.occupations();
    let (mut lmi_latest, mut lmi_trend) = (caller.lmi(), caller.lmi());
    let mut ambassadors = AmbassadorsServiceClient::new(state.ambassadors.clone());
    let (occupation, latest, trend, ambassadors) = tokio::join!(
        occupations.get_occupation(occupation_request),
        lmi_latest.list_figures(latest_request),
        lmi_trend.list_figures(trend_request),
        ambassadors.count_available_ambassadors(ambassadors_request),
    );
    let occupation = occupation?.into_inner().occupation.ok_or_else(|| {
        Problem::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    })?;
    let mut unavailable = Vec::new();
    let lmi = match (latest, trend) {
        (Ok(latest), Ok(trend)) => json!({
            "latest": latest.into_inner().items.into_iter().map(figure_json).collect::<Vec<_>>(),
            "trend": trend_of(trend.into_inner().items),
        }),
        (Err(status), _) | (_, Err(status)) if is_outage(&status) => {
            tracing::warn!(%status, "profile without lmi");
            unavailable.push("lmi");
            Value::Null
        }
        (Err(status), _) | (_, Err(status)) => return Err(status.into()),
    };
    let ambassadors = match ambassadors {
        Ok(count) => {
            let count = count.into_inner();
            json!({
                "available_nearby": count.available_nearby,
                "postcode_district": (!count.postcode_district.is_empty())
                    .then_some(count.postcode_district),
            })
        }
        Err(status) if is_outage(&status) => {
            tracing::warn!(%status, "profile without ambassadors");
            unavailable.push("ambassadors");
            Value::Null
        }
        Err(status) => return Err(status.into()),
    };
    Ok(Json(json!({
        "occupation": occupation_json(occupation),
        "lmi": lmi,
        "ambassadors": ambassadors,
        "unavailable": unavailable,
    }))
    .into_response())
}

/// One figure per period, the latest revision of it, oldest period first.
fn trend_of(history: Vec<PublishedFigure>) -> Vec<Value> {
    let mut by_period: std::collections::BTreeMap<String, PublishedFigure> =
        std::collections::BTreeMap::new();
    for figure in history {
        let newer = by_period.get(&figure.period).is_none_or(|held| {
            let at = |figure: &PublishedFigure| {
                figure
                    .received_at
                    .map(|time| (time.seconds, time.nanos))
                    .unwrap_or_default()
            };
            (at(&figure), &figure.figure_id) > (at(held), &held.figure_id)
        });
        if newer {
            by_period.insert(figure.period.clone(), figure);
        }
    }
    by_period.into_values().map(figure_json).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(id: &str, period: &str, value: f64, received: i64) -> PublishedFigure {
        PublishedFigure {
            figure_id: id.into(),
            period: period.into(),
            value,
            received_at: Some(prost_types::Timestamp {
                seconds: received,
                nanos: 0,
            }),
            ..PublishedFigure::default()
        }
    }

    #[test]
    fn the_trend_keeps_each_periods_latest_revision_in_period_order() {
        let trend = trend_of(vec![
            figure("b", "2024", 41_000.0, 10),
            figure("a", "2023", 39_000.0, 5),
            figure("c", "2024", 42_000.0, 20),
            figure("d", "2024", 40_000.0, 15),
        ]);
        let values: Vec<(String, f64)> = trend
            .iter()
            .map(|item| {
                (
                    item["period"].as_str().unwrap_or_default().to_owned(),
                    item["value"].as_f64().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            values,
            vec![("2023".to_owned(), 39_000.0), ("2024".to_owned(), 42_000.0)]
        );
    }
}
