//! The ambassadors service's own settings.

use std::path::PathBuf;

use careers_eventbus::settings::{EventSettings, InboxSettings, NatsSettings, OutboxSettings};
use serde::Deserialize;

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
}

impl Default for MatchingSettings {
    fn default() -> Self {
        Self {
            diversity_budget: default_diversity_budget(),
        }
    }
}

fn default_diversity_budget() -> f64 {
    0.05
}
