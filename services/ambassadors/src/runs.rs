//! A matching run: every open request at once, under the matching lock, so two runs on
//! two replicas never book the same capacity twice. The run reads, matches and writes its
//! proposed engagements (and their `MatchProposed` events) in one transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use careers_eventbus::{RelayWaker, begin_write, enqueue};
use careers_proto::careers::ambassadors::{events::v1::MatchProposed, v1 as api};
use chrono::{NaiveDate, Utc};
use sea_orm::DatabaseConnection;

use crate::{domain, error::AmbassadorsError, matching, micros, sealing::AttributesKey, store};

/// Runs matching run `run_id` (already recorded as running) to the end, recording it done
/// or, if it fails, failed.
pub async fn execute(
    db: &DatabaseConnection,
    waker: &RelayWaker,
    key: &AttributesKey,
    run_id: &str,
    today: NaiveDate,
    options: matching::Options,
) -> Result<(), AmbassadorsError> {
    match match_and_propose(db, key, run_id, today, options).await {
        Ok(()) => {
            waker.wake();
            Ok(())
        }
        Err(error) => {
            tracing::error!(%error, run_id, "matching run failed");
            store::finish_run(
                db,
                &store::RunRow {
                    id: run_id.to_owned(),
                    status: "failed".into(),
                    started_at: 0,
                    finished_at: Some(micros(Utc::now())),
                    total_score: 0,
                    optimal_score: 0,
                    unmatched: "[]".into(),
                    error: Some(error.to_string()),
                },
            )
            .await?;
            Err(error)
        }
    }
}

async fn match_and_propose(
    db: &DatabaseConnection,
    key: &AttributesKey,
    run_id: &str,
    today: NaiveDate,
    options: matching::Options,
) -> Result<(), AmbassadorsError> {
    let txn = begin_write(db).await?;
    store::lock_matching(&txn).await?;

    let occupations: HashMap<String, BTreeSet<String>> = store::occupations(&txn)
        .await?
        .into_iter()
        .map(|(soc_code, sub_major_group, discipline)| {
            let sectors = [sub_major_group, discipline]
                .into_iter()
                .filter(|sector| !sector.is_empty())
                .collect();
            (soc_code, sectors)
        })
        .collect();
    let mut booked: HashMap<String, BTreeMap<matching::Month, u32>> = HashMap::new();
    let mut filled: HashMap<String, u32> = HashMap::new();
    for engagement in store::holding_engagements(&txn).await? {
        if let Ok(date) = NaiveDate::parse_from_str(&engagement.activity_date, "%Y-%m-%d") {
            *booked
                .entry(engagement.ambassador_id.clone())
                .or_default()
                .entry(matching::month_of(date))
                .or_default() += 1;
        }
        *filled.entry(engagement.request_id).or_default() += 1;
    }
    let encounters: HashMap<String, i64> =
        store::school_encounters(&txn, &domain::academic_year_start(today).to_string())
            .await?
            .into_iter()
            .collect();

    // The matcher reads the role models (for the diversity pass): each read audited.
    let mut attributes: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (id, sealed) in store::role_models(&txn).await? {
        let model: api::RoleModel = serde_json::from_slice(&key.open(&id, &sealed)?)
            .map_err(|error| AmbassadorsError::Corrupt(error.to_string()))?;
        attributes.insert(id, domain::attributes(&model));
    }
    let readers: Vec<String> = attributes.keys().cloned().collect();
    store::record_attribute_reads(
        &txn,
        &readers,
        &format!("matching_run:{run_id}"),
        "matching",
        micros(Utc::now()),
    )
    .await?;
    let shortages: BTreeSet<String> = store::shortage_codes(&txn).await?.into_iter().collect();
    let ambassadors = store::active_ambassadors(&txn)
        .await?
        .iter()
        .map(|row| {
            domain::ambassador_for_matching(
                row,
                occupations.get(&row.soc_code).cloned().unwrap_or_default(),
                booked.remove(&row.id).unwrap_or_default(),
                attributes.remove(&row.id).unwrap_or_default(),
                shortages.contains(&row.soc_code),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut requests = Vec::new();
    let mut schools: HashMap<uuid::Uuid, String> = HashMap::new();
    for row in store::open_requests(&txn, &today.to_string()).await? {
        let wanted = u32::try_from(row.ambassadors_wanted).unwrap_or(0);
        let slots = wanted.saturating_sub(filled.get(&row.id).copied().unwrap_or(0));
        if slots > 0 {
            let held = encounters.get(&row.school_urn).copied().unwrap_or(0);
            let request = domain::request_for_matching(
                &row,
                slots,
                u32::try_from(held).unwrap_or(u32::MAX),
                today,
            )?;
            schools.insert(request.id, row.school_urn.clone());
            requests.push(request);
        }
    }
    let slots_open: HashMap<uuid::Uuid, u32> = requests
        .iter()
        .map(|request| (request.id, request.slots))
        .collect();

    // Seconds of CPU for a large register: off the async workers.
    let outcome =
        tokio::task::spawn_blocking(move || matching::optimal(ambassadors, requests, options))
            .await
            .map_err(|error| AmbassadorsError::Corrupt(format!("the matcher stopped: {error}")))?;

    let now = micros(Utc::now());
    let mut proposed: HashMap<uuid::Uuid, u32> = HashMap::new();
    for found in &outcome.matches {
        let engagement_id = uuid::Uuid::now_v7().to_string();
        let terms = serde_json::to_string(&found.terms)
            .map_err(|error| AmbassadorsError::Corrupt(error.to_string()))?;
        store::insert_engagement(
            &txn,
            &store::EngagementRow {
                id: engagement_id.clone(),
                run_id: run_id.to_owned(),
                request_id: found.request_id.to_string(),
                ambassador_id: found.ambassador_id.to_string(),
                school_urn: schools.get(&found.request_id).cloned().unwrap_or_default(),
                activity_date: found.activity_date.to_string(),
                status: "proposed".into(),
                score: found.score,
                terms,
                feedback: String::new(),
                students_reached: 0,
                created_at: now,
                updated_at: now,
            },
        )
        .await?;
        enqueue(
            &txn,
            &engagement_id,
            1,
            &MatchProposed {
                engagement_id: engagement_id.clone(),
                request_id: found.request_id.to_string(),
                ambassador_id: found.ambassador_id.to_string(),
                matching_run_id: run_id.to_owned(),
            },
        )
        .await?;
        *proposed.entry(found.request_id).or_default() += 1;
    }
    for (request_id, count) in proposed {
        if slots_open
            .get(&request_id)
            .is_some_and(|open| count >= *open)
        {
            store::set_request_status(&txn, &request_id.to_string(), "matched").await?;
        }
    }
    let unmatched: Vec<api::RunUnmatched> = outcome
        .unmatched
        .iter()
        .map(|unmatched| api::RunUnmatched {
            request_id: unmatched.request_id.to_string(),
            blocked_by: unmatched
                .blocked_by
                .iter()
                .map(|rule| rule.code().to_owned())
                .collect(),
            open_slots: unmatched.open_slots,
        })
        .collect();
    store::finish_run(
        &txn,
        &store::RunRow {
            id: run_id.to_owned(),
            status: "done".into(),
            started_at: 0,
            finished_at: Some(micros(Utc::now())),
            total_score: outcome.total_score,
            optimal_score: outcome.optimal_score,
            unmatched: serde_json::to_string(&unmatched)
                .map_err(|error| AmbassadorsError::Corrupt(error.to_string()))?,
            error: None,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// A run as the API shows it: matches once done, from its engagements.
pub async fn run_message(
    db: &impl sea_orm::ConnectionTrait,
    run_id: &str,
) -> Result<api::GetMatchingRunResponse, AmbassadorsError> {
    let run = store::run(db, run_id)
        .await?
        .ok_or(AmbassadorsError::NotFound("matching run"))?;
    let matches = store::run_engagements(db, run_id)
        .await?
        .into_iter()
        .map(|engagement| {
            let terms: api::ScoreTerms = serde_json::from_str(&engagement.terms)
                .map_err(|error| AmbassadorsError::Corrupt(error.to_string()))?;
            Ok(api::RunMatch {
                request_id: engagement.request_id,
                ambassador_id: engagement.ambassador_id,
                score: engagement.score,
                terms: Some(terms),
                activity_date: engagement.activity_date,
                engagement_id: engagement.id,
            })
        })
        .collect::<Result<Vec<_>, AmbassadorsError>>()?;
    let unmatched: Vec<api::RunUnmatched> = serde_json::from_str(&run.unmatched)
        .map_err(|error| AmbassadorsError::Corrupt(error.to_string()))?;
    Ok(api::GetMatchingRunResponse {
        id: run.id,
        status: run.status,
        matches,
        unmatched,
        total_score: run.total_score,
        optimal_score: run.optimal_score,
        started_at: crate::rfc3339(run.started_at),
        finished_at: run.finished_at.map(crate::rfc3339).unwrap_or_default(),
    })
}
