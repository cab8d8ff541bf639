//! How stored rows become the API's messages and the matcher's inputs.

use super::*;

pub(super) fn list(text: &str) -> Result<Vec<String>, AmbassadorsError> {
    serde_json::from_str(text).map_err(|error| AmbassadorsError::Corrupt(error.to_string()))
}

/// The API's view of a stored ambassador.
pub fn ambassador_message(
    row: &AmbassadorRow,
    occupation: Option<(String, String)>,
    today: NaiveDate,
) -> Result<api::Ambassador, AmbassadorsError> {
    let availability: api::Availability = if row.erased {
        api::Availability::default()
    } else {
        serde_json::from_str(&row.availability)
            .map_err(|error| AmbassadorsError::Corrupt(error.to_string()))?
    };
    let expired = NaiveDate::parse_from_str(&row.dbs_expires_on, "%Y-%m-%d")
        .map(|expires| expires <= today)
        .unwrap_or(true);
    let (sector, stem_discipline) = occupation.unwrap_or_default();
    Ok(api::Ambassador {
        id: row.id.clone(),
        name: row.name.clone(),
        employer: row.employer.clone(),
        soc_code: row.soc_code.clone(),
        sector,
        stem_discipline,
        subjects: list(&row.subjects)?,
        expertise: list(&row.expertise)?,
        postcode_district: row.postcode_district.clone(),
        postcode_district_terminated: row.district_terminated,
        travel_radius_km: row.travel_radius_km,
        availability: Some(availability),
        monthly_capacity: u32::try_from(row.monthly_capacity).unwrap_or(0),
        dbs_checked_on: row.dbs_checked_on.clone(),
        dbs_expires_on: row.dbs_expires_on.clone(),
        dbs_status: if expired { "expired" } else { "valid" }.to_owned(),
        training: list(&row.training)?,
        created_at: crate::rfc3339(row.created_at),
        synthetic: row.synthetic,
        erased: row.erased,
        attribution: crate::geo::ATTRIBUTION.to_owned(),
        role_model: None,
        version: row.version,
    })
}

/// The API's view of a stored request.
pub fn request_message(row: &RequestRow) -> Result<api::ActivityRequest, AmbassadorsError> {
    Ok(api::ActivityRequest {
        id: row.id.clone(),
        school_urn: row.school_urn.clone(),
        school_name: row.school_name.clone(),
        activity_type: row.activity_type.clone(),
        subjects: list(&row.subjects)?,
        year_group: u32::try_from(row.year_group).unwrap_or(0),
        audience_size: u32::try_from(row.audience_size).unwrap_or(0),
        window: Some(api::DateRange {
            from: row.window_from.clone(),
            to: row.window_to.clone(),
        }),
        ambassadors_wanted: u32::try_from(row.ambassadors_wanted).unwrap_or(0),
        preferred_sector: row.preferred_sector.clone(),
        wants_diversity: row.wants_diversity,
        status: row.status.clone(),
        created_at: crate::rfc3339(row.created_at),
        referral_id: row.referral_id.clone().unwrap_or_default(),
        attribution: crate::geo::ATTRIBUTION.to_owned(),
    })
}

pub(super) fn parse_date(text: &str) -> Result<NaiveDate, AmbassadorsError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| AmbassadorsError::Corrupt(format!("{text:?} is not a date")))
}

/// Where `CountAvailableAmbassadors` counts around: `None` for everywhere; a malformed
/// SOC code or an unknown district is refused.
pub fn availability_query(
    places: &Places,
    message: &api::CountAvailableAmbassadorsRequest,
) -> Result<Option<Point>, AmbassadorsError> {
    if !careers_proto::soc::is_soc_code(&message.soc_code) {
        return Err(AmbassadorsError::Invalid(vec![(
            "soc_code",
            "must match ^[1-9][0-9]{3}$".to_owned(),
        )]));
    }
    if message.postcode_district.trim().is_empty() {
        return Ok(None);
    }
    places
        .district(&message.postcode_district)
        .map(|district| Some(district.centroid))
        .ok_or_else(|| AmbassadorsError::Rejected {
            code: "unknown_postcode_district",
            field: "postcode_district",
            message: format!(
                "{:?} is not a UK postcode district (the outward code, such as M1 or SW1A)",
                message.postcode_district
            ),
        })
}

/// Whether an ambassador counts as available from `today` and, given a place, would
/// travel there: a DBS check valid today, capacity, and an availability range not over.
pub fn available_for(
    row: &AmbassadorRow,
    place: Option<Point>,
    today: NaiveDate,
) -> Result<bool, AmbassadorsError> {
    if row.erased || row.monthly_capacity < 1 || parse_date(&row.dbs_expires_on)? < today {
        return Ok(false);
    }
    let availability: api::Availability = serde_json::from_str(&row.availability)
        .map_err(|error| AmbassadorsError::Corrupt(error.to_string()))?;
    let mut ahead = false;
    for range in &availability.ranges {
        ahead |= parse_date(&range.to)? >= today;
    }
    let home = Point {
        latitude: row.latitude,
        longitude: row.longitude,
    };
    Ok(ahead && place.is_none_or(|place| home.distance_km(place) <= row.travel_radius_km))
}

/// The matcher's view of a stored ambassador, with what it already holds per month.
pub fn ambassador_for_matching(
    row: &AmbassadorRow,
    sectors: BTreeSet<String>,
    booked: BTreeMap<matching::Month, u32>,
    attributes: BTreeSet<String>,
    in_shortage: bool,
) -> Result<matching::Ambassador, AmbassadorsError> {
    let availability: api::Availability = serde_json::from_str(&row.availability)
        .map_err(|error| AmbassadorsError::Corrupt(error.to_string()))?;
    let weekdays = availability
        .weekdays
        .iter()
        .filter_map(|day| WEEKDAYS.iter().position(|name| name == day))
        .fold(0_u8, |bits, index| bits | (1 << index));
    let ranges = availability
        .ranges
        .iter()
        .map(|range| Ok((parse_date(&range.from)?, parse_date(&range.to)?)))
        .collect::<Result<Vec<_>, AmbassadorsError>>()?;
    Ok(matching::Ambassador {
        id: uuid_of(&row.id)?,
        location: Point {
            latitude: row.latitude,
            longitude: row.longitude,
        },
        travel_radius_km: row.travel_radius_km,
        dbs_expires_on: Some(parse_date(&row.dbs_expires_on)?),
        availability: matching::Availability { weekdays, ranges },
        monthly_capacity: u32::try_from(row.monthly_capacity).unwrap_or(0),
        booked,
        subjects: list(&row.subjects)?.into_iter().collect(),
        sectors,
        in_shortage,
        attributes,
    })
}

/// The matcher's view of a stored request with `slots` still open.
pub fn request_for_matching(
    row: &RequestRow,
    slots: u32,
    school_encounters: u32,
    today: NaiveDate,
) -> Result<matching::Request, AmbassadorsError> {
    Ok(matching::Request {
        id: uuid_of(&row.id)?,
        location: Point {
            latitude: row.latitude,
            longitude: row.longitude,
        },
        window: (
            parse_date(&row.window_from)?.max(today),
            parse_date(&row.window_to)?,
        ),
        slots,
        subjects: list(&row.subjects)?.into_iter().collect(),
        sector: Some(row.preferred_sector.clone()).filter(|sector| !sector.is_empty()),
        school_encounters,
        wants_diversity: row.wants_diversity,
    })
}

/// Parses an id minted by this service.
pub fn uuid_of(id: &str) -> Result<uuid::Uuid, AmbassadorsError> {
    uuid::Uuid::parse_str(id)
        .map_err(|_| AmbassadorsError::Corrupt(format!("{id:?} is not a UUID")))
}

/// 1 September of the academic year `date` falls in.
pub fn academic_year_start(date: NaiveDate) -> NaiveDate {
    let year = if date.month() >= 9 {
        date.year()
    } else {
        date.year() - 1
    };
    NaiveDate::from_ymd_opt(year, 9, 1).unwrap_or(date)
}
