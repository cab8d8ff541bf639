//! The OccupationsService API: decode, call the store, encode.

use careers_platform::{
    cursor::{Cursors, PAGE, PageLimits},
    identity::caller,
};
use careers_proto::careers::occupations::v1::{
    AlternativeTitle, CrosswalkCode, Crosswalks, EntryRoute, FieldChange, Figure,
    GetOccupationRequest, GetOccupationResponse, ListOccupationHistoryRequest,
    ListOccupationHistoryResponse, ListOccupationsRequest, ListOccupationsResponse,
    ListRelatedOccupationsRequest, ListRelatedOccupationsResponse, LmiSummary, Occupation,
    OccupationChange, RelatedOccupation, Relation, SearchFacets, SearchHit, SearchMatch,
    SearchOccupationsRequest, SearchOccupationsResponse, Stem, SubUnitGroup,
    SuggestOccupationsRequest, SuggestOccupationsResponse, Suggestion, UpdateOccupationRequest,
    UpdateOccupationResponse, occupations_service_server::OccupationsService,
};
use careers_proto::time::timestamp;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::{
    OccupationsError, classify, edit,
    search::{Filters, Outlook, SearchIndex},
    store::{
        figures, history, occupations,
        reference::{self, Reference},
    },
    summary,
};

/// Where the catalogue text comes from; shown with every occupation.
pub const ATTRIBUTION: &str =
    "Source: Office for National Statistics licensed under the Open Government Licence v.3.0";

/// Suggestions come as the adviser types: a few, fast.
const SUGGESTIONS: PageLimits = PageLimits {
    default: 10,
    max: 20,
};

/// The filters of a listing or search, checked.
fn filters(
    major_group: &str,
    stem: Option<bool>,
    route: &str,
    min_median_pay: Option<f64>,
    outlook: &str,
) -> Result<Filters, OccupationsError> {
    if !route.is_empty() && !classify::ROUTE_KINDS.contains(&route) {
        return Err(OccupationsError::InvalidRoute(route.to_owned()));
    }
    if let Some(pay) = min_median_pay
        && !(pay.is_finite() && pay >= 0.0)
    {
        return Err(OccupationsError::InvalidPay(pay));
    }
    let outlook = match outlook {
        "" => None,
        text => Some(
            Outlook::parse(text)
                .ok_or_else(|| OccupationsError::InvalidOutlook(text.to_owned()))?,
        ),
    };
    Ok(Filters {
        major_group: (!major_group.is_empty()).then(|| major_group.to_owned()),
        stem,
        route: (!route.is_empty()).then(|| route.to_owned()),
        min_median_pay,
        outlook,
    })
}

/// The gRPC handlers over the store.
#[derive(Debug, Clone)]
pub struct Handlers {
    pub db: DatabaseConnection,
    pub cursors: Cursors,
    pub waker: careers_eventbus::RelayWaker,
    pub search: SearchIndex,
}

impl Handlers {
    /// An occupation with everything its page shows: figures and reference data.
    async fn whole(&self, row: occupations::Model) -> Result<Occupation, OccupationsError> {
        let held = figures::for_occupation(&self.db, &row.soc_code).await?;
        let reference = reference::for_occupation(&self.db, &row.soc_code).await?;
        Ok(to_proto(row, held, Some(reference)))
    }
}

fn check_soc_code(code: &str) -> Result<(), OccupationsError> {
    if careers_proto::soc::is_soc_code(code) {
        Ok(())
    } else {
        Err(OccupationsError::InvalidSocCode(code.to_owned()))
    }
}

/// How the crosswalk pairs were made, shown beside them.
pub const CROSSWALK_DERIVATION: &str = "Derived from the ONS SOC 2020 coding index (Volume 2, \
     version 12, 16 April 2025) by counting the job titles that carry each pair of codes; not \
     ONS's official LFS-weighted relationship tables.";

fn to_proto(
    row: occupations::Model,
    figures: Vec<figures::Model>,
    reference: Option<Reference>,
) -> Occupation {
    let content = row.content();
    let crosswalks = reference.as_ref().map(|reference| {
        let scheme = |scheme: &str| {
            reference
                .crosswalks
                .iter()
                .filter(|pair| pair.scheme == scheme)
                .map(|pair| CrosswalkCode {
                    code: pair.code.clone(),
                    title: pair.title.clone(),
                    index_entries: pair.index_entries,
                    share: pair.share,
                })
                .collect()
        };
        Crosswalks {
            soc2010: scheme("soc2010"),
            isco08: scheme("isco08"),
            derivation: CROSSWALK_DERIVATION.to_owned(),
        }
    });
    let reference = reference.unwrap_or_default();
    let (employment, sectors) = (summary::employment(&figures), summary::sectors(&figures));
    let outlook = summary::outlook(&figures);
    let entry = classify::entry_routes(&content.entry_routes_text);
    let stem = classify::stem(&content.soc_code);
    Occupation {
        employment,
        outlook,
        sectors,
        entry_routes: entry
            .routes
            .into_iter()
            .map(|route| EntryRoute {
                r#type: route.kind.to_owned(),
                level: route.level,
                text: route.text,
            })
            .collect(),
        open_to_career_changers: entry.open_to_career_changers,
        alternative_titles: reference
            .titles
            .into_iter()
            .map(|title| AlternativeTitle {
                title: title.title,
                qualifier: title.qualifier,
                sub_unit_group: title.sub_unit_group,
            })
            .collect(),
        sub_unit_groups: reference
            .sub_unit_groups
            .into_iter()
            .map(|group| SubUnitGroup {
                code: group.code,
                title: group.title,
                index_entries: group.index_entries,
            })
            .collect(),
        crosswalks,
        stem: Some(Stem {
            is_stem: stem.is_stem,
            discipline: stem.discipline.to_owned(),
            rule: stem.rule.to_owned(),
        }),
        soc_code: content.soc_code,
        title: content.title,
        major_group: content.major_group,
        sub_major_group: content.sub_major_group,
        minor_group: content.minor_group,
        description: content.description,
        tasks: content.tasks,
        entry_routes_text: content.entry_routes_text,
        related_job_titles: content.related_job_titles,
        lmi: Some(LmiSummary {
            figures: figures
                .into_iter()
                .map(|figure| Figure {
                    measure: figure.measure,
                    region: figure.region,
                    breakdown: figure.breakdown,
                    period: figure.period,
                    value: figure.value,
                    unit: figure.unit,
                    source: figure.source,
                    received_at: Some(timestamp(figure.recorded_at)),
                    suppressed: figure.suppressed,
                    horizon: figure.horizon,
                })
                .collect(),
        }),
        version: u64::try_from(row.version).unwrap_or_default(),
        attribution: ATTRIBUTION.to_owned(),
    }
}

#[tonic::async_trait]
impl OccupationsService for Handlers {
    async fn list_related_occupations(
        &self,
        request: Request<ListRelatedOccupationsRequest>,
    ) -> Result<Response<ListRelatedOccupationsResponse>, Status> {
        let soc_code = request.into_inner().soc_code;
        check_soc_code(&soc_code)?;
        let row = occupations::find(&self.db, &soc_code)
            .await
            .map_err(OccupationsError::from)?
            .ok_or_else(|| OccupationsError::NotFound(soc_code.clone()))?;
        let (titles, _) = reference::searchable(&self.db, Some(&soc_code))
            .await
            .map_err(OccupationsError::from)?;
        let content = row.content();
        let titles: Vec<String> = titles
            .into_iter()
            .map(|title| title.title)
            .chain(content.related_job_titles)
            .collect();
        let index = self.search.clone();
        let related =
            tokio::task::spawn_blocking(move || index.related(&soc_code, &titles, &content.tasks))
                .await
                .map_err(|error| OccupationsError::Search(error.to_string()))?
                .map_err(OccupationsError::from)?;
        Ok(Response::new(ListRelatedOccupationsResponse {
            items: related
                .into_iter()
                .map(|item| RelatedOccupation {
                    soc_code: item.soc_code,
                    title: item.title,
                    relations: item
                        .relations
                        .into_iter()
                        .map(|(kind, reason)| Relation {
                            r#type: kind.to_owned(),
                            reason,
                        })
                        .collect(),
                })
                .collect(),
        }))
    }

    async fn search_occupations(
        &self,
        request: Request<SearchOccupationsRequest>,
    ) -> Result<Response<SearchOccupationsResponse>, Status> {
        let request = request.into_inner();
        let limit = PAGE.size(request.limit).map_err(OccupationsError::from)?;
        let checked = filters(
            &request.major_group,
            request.stem,
            &request.route,
            request.min_median_pay,
            &request.outlook,
        )?;
        // The cursor is the offset into this query's hits, good for this query only.
        let scope = format!("search|{}|{checked:?}", request.query.trim());
        let offset: usize = if request.cursor.is_empty() {
            0
        } else {
            self.cursors
                .decode(&scope, &request.cursor)
                .ok()
                .and_then(|offset: String| offset.parse().ok())
                .ok_or(OccupationsError::BadCursor)?
        };
        let index = self.search.clone();
        let results = tokio::task::spawn_blocking(move || {
            index.search(&request.query, &checked, offset, limit as usize)
        })
        .await
        .map_err(|error| OccupationsError::Search(error.to_string()))?
        .map_err(OccupationsError::from)?;
        let next = offset + results.hits.len();
        let next_cursor = if next < results.total {
            self.cursors.encode(&scope, &next.to_string())
        } else {
            String::new()
        };
        let counts = |counts: std::collections::BTreeMap<String, u32>| counts.into_iter().collect();
        Ok(Response::new(SearchOccupationsResponse {
            items: results
                .hits
                .into_iter()
                .map(|hit| SearchHit {
                    soc_code: hit.soc_code,
                    title: hit.title,
                    matched: Some(SearchMatch {
                        field: hit.field.to_owned(),
                        text: hit.text,
                    }),
                    score: f64::from(hit.score),
                })
                .collect(),
            facets: Some(SearchFacets {
                major_group: counts(results.facets.major_group),
                stem: counts(results.facets.stem),
                route: counts(results.facets.route),
            }),
            next_cursor,
            total: u32::try_from(results.total).unwrap_or(u32::MAX),
            corrected_query: results.corrected.unwrap_or_default(),
        }))
    }

    async fn suggest_occupations(
        &self,
        request: Request<SuggestOccupationsRequest>,
    ) -> Result<Response<SuggestOccupationsResponse>, Status> {
        let request = request.into_inner();
        let limit = SUGGESTIONS
            .size(request.limit)
            .map_err(OccupationsError::from)?;
        let index = self.search.clone();
        let found =
            tokio::task::spawn_blocking(move || index.suggest(&request.query, limit as usize))
                .await
                .map_err(|error| OccupationsError::Search(error.to_string()))?
                .map_err(OccupationsError::from)?;
        Ok(Response::new(SuggestOccupationsResponse {
            items: found
                .into_iter()
                .map(|suggestion| Suggestion {
                    soc_code: suggestion.soc_code,
                    title: suggestion.title,
                    label: suggestion.label,
                })
                .collect(),
        }))
    }

    async fn get_occupation(
        &self,
        request: Request<GetOccupationRequest>,
    ) -> Result<Response<GetOccupationResponse>, Status> {
        let soc_code = request.into_inner().soc_code;
        check_soc_code(&soc_code)?;
        let row = occupations::find(&self.db, &soc_code)
            .await
            .map_err(OccupationsError::from)?
            .ok_or_else(|| OccupationsError::NotFound(soc_code.clone()))?;
        Ok(Response::new(GetOccupationResponse {
            occupation: Some(self.whole(row).await?),
        }))
    }

    async fn list_occupations(
        &self,
        request: Request<ListOccupationsRequest>,
    ) -> Result<Response<ListOccupationsResponse>, Status> {
        let request = request.into_inner();
        let limit = PAGE.size(request.limit).map_err(OccupationsError::from)?;
        let checked = filters(
            &request.major_group,
            request.stem,
            &request.route,
            request.min_median_pay,
            &request.outlook,
        )?;
        // A cursor is good only for the listing (and filters) that issued it.
        let scope = format!("occupations|{checked:?}");
        let mut after: Option<String> = if request.cursor.is_empty() {
            None
        } else {
            Some(
                self.cursors
                    .decode(&scope, &request.cursor)
                    .map_err(|_| OccupationsError::BadCursor)?,
            )
        };
        let major_group = (!request.major_group.is_empty()).then_some(request.major_group.as_str());
        // STEM and routes are derived on read, so those filters apply to the rows read;
        // the catalogue is a few hundred rows, read a page at a time until one is full.
        let wanted = |occupation: &Occupation| {
            request.stem.is_none_or(|stem| {
                occupation.stem.as_ref().is_some_and(|flag| flag.is_stem) == stem
            }) && (request.route.is_empty()
                || occupation
                    .entry_routes
                    .iter()
                    .any(|route| route.r#type == request.route))
                && self.search.passes_figures(&occupation.soc_code, &checked)
        };
        let mut items: Vec<Occupation> = Vec::new();
        let mut more = false;
        loop {
            let rows = occupations::page(
                &self.db,
                after.as_deref(),
                major_group,
                u64::from(PAGE.max) + 1,
            )
            .await
            .map_err(OccupationsError::from)?;
            let exhausted = rows.len() <= PAGE.max as usize;
            after = rows.last().map(|row| row.soc_code.clone());
            for row in rows {
                let occupation = to_proto(row, Vec::new(), None);
                if !wanted(&occupation) {
                    continue;
                }
                if items.len() == limit as usize {
                    more = true;
                    break;
                }
                items.push(occupation);
            }
            if more || exhausted {
                break;
            }
        }
        let next_cursor = match items.last() {
            Some(last) if more => self.cursors.encode(&scope, &last.soc_code),
            _ => String::new(),
        };
        Ok(Response::new(ListOccupationsResponse {
            items,
            next_cursor,
        }))
    }

    async fn update_occupation(
        &self,
        request: Request<UpdateOccupationRequest>,
    ) -> Result<Response<UpdateOccupationResponse>, Status> {
        let identity = caller(&request)?.clone();
        if !identity.has_role("catalogue_editor") {
            return Err(OccupationsError::RoleRequired("catalogue_editor").into());
        }
        let UpdateOccupationRequest {
            occupation,
            update_mask,
            expected_version,
        } = request.into_inner();
        let from = occupation.unwrap_or_default();
        check_soc_code(&from.soc_code)?;
        if expected_version == 0 {
            return Err(OccupationsError::IfMatchRequired.into());
        }
        let paths = update_mask.map(|mask| mask.paths).unwrap_or_default();
        let soc_code = from.soc_code.clone();
        let txn = careers_eventbus::begin_write(&self.db)
            .await
            .map_err(OccupationsError::from)?;
        let row = occupations::find(&txn, &soc_code)
            .await
            .map_err(OccupationsError::from)?
            .ok_or_else(|| OccupationsError::NotFound(soc_code.clone()))?;
        if u64::try_from(row.version).ok() != Some(expected_version) {
            return Err(OccupationsError::VersionConflict {
                soc_code,
                current: row.version,
                expected: expected_version,
            }
            .into());
        }
        let mut content = row.content();
        let changes = edit::apply(&mut content, &paths, &from)?;
        let row = if changes.is_empty() {
            row
        } else {
            let stored = occupations::upsert(&txn, &content)
                .await
                .map_err(OccupationsError::from)?
                .unwrap_or(row);
            history::insert(
                &txn,
                &soc_code,
                &history::Change {
                    version: stored.version,
                    changed_by: identity.sub.clone(),
                    changed_at: stored.updated_at,
                    fields: changes,
                },
            )
            .await
            .map_err(OccupationsError::from)?;
            careers_eventbus::enqueue(
                &txn,
                &soc_code,
                stored.version,
                &crate::events::upserted(&stored),
            )
            .await
            .map_err(OccupationsError::from)?;
            stored
        };
        txn.commit().await.map_err(OccupationsError::from)?;
        self.waker.wake();
        Ok(Response::new(UpdateOccupationResponse {
            occupation: Some(self.whole(row).await?),
        }))
    }

    async fn list_occupation_history(
        &self,
        request: Request<ListOccupationHistoryRequest>,
    ) -> Result<Response<ListOccupationHistoryResponse>, Status> {
        let soc_code = request.into_inner().soc_code;
        check_soc_code(&soc_code)?;
        if occupations::find(&self.db, &soc_code)
            .await
            .map_err(OccupationsError::from)?
            .is_none()
        {
            return Err(OccupationsError::NotFound(soc_code).into());
        }
        let changes = history::list(&self.db, &soc_code)
            .await
            .map_err(OccupationsError::from)?
            .into_iter()
            .map(|change| OccupationChange {
                version: u64::try_from(change.version).unwrap_or_default(),
                changed_by: change.changed_by,
                changed_at: Some(timestamp(change.changed_at)),
                fields: change
                    .fields
                    .into_iter()
                    .map(|field| FieldChange {
                        field: field.field,
                        old_value_json: field.old.to_string(),
                        new_value_json: field.new.to_string(),
                    })
                    .collect(),
            })
            .collect();
        Ok(Response::new(ListOccupationHistoryResponse { changes }))
    }
}
