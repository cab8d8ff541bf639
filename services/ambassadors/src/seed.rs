//! The seeds: a synthetic register (labelled synthetic) of 2,000 ambassadors with real
//! SOC codes at real postcode districts, and 200 open requests from real schools, made
//! by [`crate::synthetic`] with seed 42. Idempotent: a register that already holds the
//! synthetic ambassadors is left as it is.

use std::{collections::BTreeSet, path::Path};

use careers_eventbus::begin_write;
use careers_proto::careers::ambassadors::v1 as api;
use chrono::{Datelike, Days, Months, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use serde::Deserialize;

use crate::{
    domain::ACTIVITY_TYPES,
    geo::{self, Places},
    micros, store,
    synthetic::{self, Occupation},
};

/// Ambassadors and requests in the seeded set.
pub const AMBASSADORS: usize = 2_000;
pub const REQUESTS: usize = 200;

/// The catalogue's structure file, for the real unit group codes.
const STRUCTURE_FILE: &str = "occupations/soc2020_structure.csv";

/// Minor groups the synthetic ambassadors' occupations are drawn from: the science,
/// engineering and technology professionals, technicians and trades STEM Ambassadors
/// mostly come from (not a classification; the catalogue's projection gives that).
const DRAWN_FROM: [&str; 13] = [
    "211", "212", "213", "215", "216", "311", "312", "313", "521", "522", "523", "524", "525",
];

#[derive(Deserialize)]
struct StructureRow {
    code: String,
    level: String,
}

fn failure(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// Loads the synthetic register once; returns a one-line summary.
pub async fn seed(db: &DatabaseConnection, dir: &Path) -> Result<String, String> {
    let places = Places::load(dir).map_err(failure)?;
    let path = dir.join(STRUCTURE_FILE);
    let occupations: Vec<Occupation> = csv::Reader::from_path(&path)
        .map_err(|error| format!("{}: {error}", path.display()))?
        .deserialize::<StructureRow>()
        .filter_map(Result::ok)
        .filter(|row| {
            row.level == "unit" && DRAWN_FROM.iter().any(|minor| row.code.starts_with(minor))
        })
        .filter(|row| row.code != "2115")
        .map(|row| Occupation {
            soc_code: row.code,
            sectors: BTreeSet::new(),
        })
        .collect();
    let today = Utc::now().date_naive();
    let monday = today
        .checked_add_days(Days::new(u64::from(
            7 - today.weekday().num_days_from_monday(),
        )))
        .unwrap_or(today);
    let generated = synthetic::generate(&places, &occupations, AMBASSADORS, REQUESTS, 42, monday)
        .map_err(failure)?;
    let txn = begin_write(db).await.map_err(failure)?;
    let mut added = (0, 0);
    if store::ambassador(&txn, &generated.ambassadors[0].ambassador.id.to_string())
        .await
        .map_err(failure)?
        .is_none()
    {
        added = insert(&txn, &places, &generated, today)
            .await
            .map_err(failure)?;
    }
    txn.commit().await.map_err(failure)?;
    Ok(format!(
        "{} synthetic ambassadors and {} open requests from real schools added ({})",
        added.0,
        added.1,
        geo::ATTRIBUTION
    ))
}

async fn insert(
    txn: &impl sea_orm::ConnectionTrait,
    places: &Places,
    generated: &synthetic::Generated,
    today: chrono::NaiveDate,
) -> Result<(usize, usize), DbErr> {
    let now = micros(Utc::now());
    const WEEKDAYS: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    for (index, made) in generated.ambassadors.iter().enumerate() {
        let ambassador = &made.ambassador;
        let availability = api::Availability {
            weekdays: WEEKDAYS
                .iter()
                .enumerate()
                .filter(|(bit, _)| ambassador.availability.weekdays & (1 << bit) != 0)
                .map(|(_, day)| (*day).to_owned())
                .collect(),
            ranges: ambassador
                .availability
                .ranges
                .iter()
                .map(|(from, to)| api::DateRange {
                    from: from.to_string(),
                    to: to.to_string(),
                })
                .collect(),
        };
        let expires = ambassador.dbs_expires_on.unwrap_or(today);
        store::insert_ambassador(
            txn,
            &store::AmbassadorRow {
                id: ambassador.id.to_string(),
                name: format!("Synthetic Ambassador {:04}", index + 1),
                employer: "Synthetic employer (seed data)".to_owned(),
                soc_code: made.soc_code.clone(),
                subjects: serde_json::to_string(&ambassador.subjects).unwrap_or_default(),
                expertise: "[]".to_owned(),
                training: "[\"safeguarding\"]".to_owned(),
                postcode_district: made.postcode_district.clone(),
                latitude: ambassador.location.latitude,
                longitude: ambassador.location.longitude,
                district_terminated: places
                    .district(&made.postcode_district)
                    .is_some_and(|district| district.terminated),
                travel_radius_km: ambassador.travel_radius_km,
                availability: serde_json::to_string(&availability).unwrap_or_default(),
                monthly_capacity: i64::from(ambassador.monthly_capacity),
                dbs_checked_on: expires
                    .checked_sub_months(Months::new(36))
                    .unwrap_or(expires)
                    .to_string(),
                dbs_expires_on: expires.to_string(),
                synthetic: true,
                erased: false,
                created_at: now,
                version: 1,
            },
        )
        .await?;
    }
    for (index, made) in generated.requests.iter().enumerate() {
        let request = &made.request;
        let school_name = places
            .school(&made.urn)
            .map(|school| school.name.clone())
            .unwrap_or_default();
        store::insert_request(
            txn,
            &store::RequestRow {
                id: request.id.to_string(),
                school_urn: made.urn.clone(),
                school_name,
                latitude: request.location.latitude,
                longitude: request.location.longitude,
                activity_type: ACTIVITY_TYPES[index % ACTIVITY_TYPES.len()].to_owned(),
                subjects: serde_json::to_string(&request.subjects).unwrap_or_default(),
                year_group: 9,
                audience_size: 30,
                window_from: request.window.0.to_string(),
                window_to: request.window.1.to_string(),
                ambassadors_wanted: i64::from(request.slots),
                preferred_sector: request.sector.clone().unwrap_or_default(),
                wants_diversity: request.wants_diversity,
                status: "open".to_owned(),
                referral_id: None,
                client_id: None,
                created_at: now,
            },
        )
        .await?;
    }
    Ok((generated.ambassadors.len(), generated.requests.len()))
}
