//! The ambassadors service's own settings.

use std::path::PathBuf;

use careers_eventbus::settings::{EventSettings, InboxSettings, NatsSettings, OutboxSettings};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::sealing::{AttributesKey, SealingError};

/// Settings of the ambassadors service beyond the platform's sections.
#[derive(Debug, Clone, Deserialize)]
pub struct AmbassadorsSettings {
    #[serde(default)]
    pub nats: NatsSettings,
    #[serde(default)]
    pub outbox: OutboxSettings,
    #[serde(default)]
    pub inbox: InboxSettings,
    pub places: PlacesSettings,
    #[serde(default)]
    pub matching: MatchingSettings,
    pub crypto: CryptoSettings,
}

/// `[crypto]`: the key sealing role-model attributes, base64 of 32 bytes, from a secret
/// file (`key_path`) or the environment (`key`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CryptoSettings {
    #[serde(default)]
    pub key_path: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<SecretString>,
}

impl CryptoSettings {
    /// The key, from the variable if set, else the file.
    pub fn attributes_key(&self) -> Result<AttributesKey, SealingError> {
        match (&self.key, &self.key_path) {
            (Some(key), _) => AttributesKey::from_base64(key.expose_secret()),
            (None, Some(path)) => AttributesKey::from_file(path),
            (None, None) => Err(SealingError::BadKey(
                "set crypto.key_path or crypto.key".to_owned(),
            )),
        }
    }
}

impl AmbassadorsSettings {
    /// The event bus's sections.
    pub fn events(&self) -> EventSettings {
        EventSettings {
            nats: self.nats.clone(),
            outbox: self.outbox.clone(),
            inbox: self.inbox.clone(),
        }
    }
}

/// `[places]`: where the postcode district centroids and the DfE schools list are (the
/// repository's `seeds/` directory, or its copy in the image).
#[derive(Debug, Clone, Deserialize)]
pub struct PlacesSettings {
    pub dir: PathBuf,
}

/// `[matching]`.
#[derive(Debug, Clone, Deserialize)]
pub struct MatchingSettings {
    /// Share of the optimal total the diversity pass may give up.
    #[serde(default = "default_diversity_budget")]
    pub diversity_budget: f64,
    /// A run still "running" this long after it started was abandoned by a process that
    /// stopped; it is marked failed when a replica starts or a run is asked for.
    #[serde(default = "default_run_timeout", with = "humantime_serde")]
    pub run_timeout: std::time::Duration,
}

impl Default for MatchingSettings {
    fn default() -> Self {
        Self {
            diversity_budget: default_diversity_budget(),
            run_timeout: default_run_timeout(),
        }
    }
}

fn default_run_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(600)
}

fn default_diversity_budget() -> f64 {
    0.05
}
