//! Places: postcode district centroids (ONS NSPL) and schools (DfE GIAS), from the
//! real files in `seeds/ambassadors/`, and great-circle distance between them.

use std::{collections::HashMap, path::Path};

use serde::Deserialize;

/// Attribution the postcode centroids and the schools list require wherever they are used.
pub const ATTRIBUTION: &str = "Contains OS data © Crown copyright and database right 2025; \
Contains Royal Mail data © Royal Mail copyright and database right 2025; Source: Office for \
National Statistics licensed under the OGL v3.0. School data: Department for Education, Get \
Information About Schools, licensed under the OGL v3.0.";

/// The postcode district centroids file, under the seeds directory.
pub const CENTROIDS_FILE: &str = "ambassadors/uk_postcode_district_centroids.csv";
/// The open schools file, under the seeds directory.
pub const SCHOOLS_FILE: &str = "ambassadors/schools_england_open.csv";

/// Mean Earth radius (IUGG), in kilometres.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// A point in WGS84 degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub latitude: f64,
    pub longitude: f64,
}

impl Point {
    /// Great-circle (haversine) distance in kilometres.
    pub fn distance_km(self, other: Point) -> f64 {
        let (lat1, lat2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let half_dlat = (lat2 - lat1) / 2.0;
        let half_dlon = (other.longitude - self.longitude).to_radians() / 2.0;
        let a = half_dlat.sin().powi(2) + lat1.cos() * lat2.cos() * half_dlon.sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
    }
}

/// A postcode district's centroid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct District {
    pub centroid: Point,
    /// Retired districts still appear in NSPL (AB1 to AB4, for example): accepted, flagged.
    pub terminated: bool,
}

/// A school or college from the DfE list.
#[derive(Debug, Clone, PartialEq)]
pub struct School {
    pub urn: String,
    pub name: String,
    pub phase: String,
    pub outcode: String,
    /// None for the rows DfE gives no geocodable postcode.
    pub location: Option<Point>,
}

/// Why a places file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PlacesError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: csv::Error,
    },
}

/// Every postcode district and school, by outcode and by URN.
#[derive(Debug, Default)]
pub struct Places {
    districts: HashMap<String, District>,
    schools: HashMap<String, School>,
}

#[derive(Deserialize)]
struct CentroidRow {
    outcode: String,
    latitude: f64,
    longitude: f64,
    postcodes_total: u64,
}

#[derive(Deserialize)]
struct SchoolRow {
    urn: String,
    name: String,
    phase_of_education: String,
    outcode: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

impl Places {
    /// Reads both files from the seeds directory.
    pub fn load(seeds: &Path) -> Result<Self, PlacesError> {
        let mut places = Self::default();
        for row in read::<CentroidRow>(&seeds.join(CENTROIDS_FILE))? {
            // NSPL keeps terminated postcodes and the file does not say which districts
            // are live: flagged are the known retired outcodes and any with no postcodes.
            let terminated = row.postcodes_total == 0 || RETIRED.contains(&row.outcode.as_str());
            places.districts.insert(
                row.outcode.to_ascii_uppercase(),
                District {
                    centroid: Point {
                        latitude: row.latitude,
                        longitude: row.longitude,
                    },
                    terminated,
                },
            );
        }
        for row in read::<SchoolRow>(&seeds.join(SCHOOLS_FILE))? {
            let location = match (row.latitude, row.longitude) {
                (Some(latitude), Some(longitude)) => Some(Point {
                    latitude,
                    longitude,
                }),
                _ => None,
            };
            places.schools.insert(
                row.urn.clone(),
                School {
                    urn: row.urn,
                    name: row.name,
                    phase: row.phase_of_education,
                    outcode: row.outcode.to_ascii_uppercase(),
                    location,
                },
            );
        }
        Ok(places)
    }

    /// The district of an outcode such as `SW1A`, case-insensitive.
    pub fn district(&self, outcode: &str) -> Option<District> {
        self.districts
            .get(outcode.trim().to_ascii_uppercase().as_str())
            .copied()
    }

    /// The school with this URN.
    pub fn school(&self, urn: &str) -> Option<&School> {
        self.schools.get(urn)
    }

    /// Every school, in URN order.
    pub fn schools(&self) -> Vec<&School> {
        let mut schools: Vec<&School> = self.schools.values().collect();
        schools.sort_by(|a, b| a.urn.cmp(&b.urn));
        schools
    }
}

/// Outcodes Royal Mail retired when Aberdeen was recoded (AB1 to AB5) and Newport's NPT;
/// NSPL still carries their old postcodes.
const RETIRED: [&str; 6] = ["AB1", "AB2", "AB3", "AB4", "AB5", "NPT"];

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, PlacesError> {
    let error = |source| PlacesError::Read {
        path: path.display().to_string(),
        source,
    };
    csv::Reader::from_path(path)
        .map_err(error)?
        .deserialize()
        .collect::<Result<Vec<T>, _>>()
        .map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../seeds")
    }

    #[test]
    fn distance_between_two_known_places() {
        // London (Charing Cross) to Manchester (Piccadilly): about 262 km great circle.
        let london = Point {
            latitude: 51.5080,
            longitude: -0.1247,
        };
        let manchester = Point {
            latitude: 53.4774,
            longitude: -2.2309,
        };
        let km = london.distance_km(manchester);
        assert!((km - 262.0).abs() < 3.0, "{km}");
        assert!(london.distance_km(london) < 1e-9);
    }

    #[test]
    fn reads_the_real_files() -> Result<(), PlacesError> {
        let places = Places::load(&seeds())?;
        let Some(aberdeen) = places.district("ab10") else {
            panic!("AB10 missing");
        };
        assert!((aberdeen.centroid.latitude - 57.13488).abs() < 1e-5);
        assert!(!aberdeen.terminated);
        assert!(
            places
                .district("AB1")
                .is_some_and(|district| district.terminated)
        );
        let aldgate = places.school("100000");
        assert_eq!(
            aldgate.map(|school| school.name.as_str()),
            Some("The Aldgate School")
        );
        assert!(aldgate.and_then(|school| school.location).is_some());
        let unlocated = places
            .schools()
            .iter()
            .filter(|school| school.location.is_none())
            .count();
        assert!(unlocated > 0 && unlocated < 300, "{unlocated}");
        Ok(())
    }
}
