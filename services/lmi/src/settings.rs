//! lmi's own settings sections, beside the platform's.

use careers_eventbus::settings::EventSettings;

/// Settings of the lmi service beyond the platform's sections.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct LmiSettings {
    #[serde(default)]
    pub nats: careers_eventbus::settings::NatsSettings,
    #[serde(default)]
    pub outbox: careers_eventbus::settings::OutboxSettings,
    #[serde(default)]
    pub inbox: careers_eventbus::settings::InboxSettings,
    #[serde(default)]
    pub validation: ValidationSettings,
    #[serde(default)]
    pub submissions: SubmissionSettings,
}

impl LmiSettings {
    /// The event bus's sections.
    pub fn events(&self) -> EventSettings {
        EventSettings {
            nats: self.nats.clone(),
            outbox: self.outbox.clone(),
            inbox: self.inbox.clone(),
        }
    }
}

/// `[validation]`: the rules that hold or suppress rows rather than reject them.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct ValidationSettings {
    /// A change beyond this fraction of the series' last published value is held for
    /// QA review (0.25 = 25%).
    pub quarantine_change: f64,
    /// A row whose `sample_size` is under this is published as suppressed.
    pub min_sample_size: u64,
}

impl Default for ValidationSettings {
    fn default() -> Self {
        Self {
            quarantine_change: 0.25,
            min_sample_size: 10,
        }
    }
}

/// `[submissions]`: how submissions stream in.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct SubmissionSettings {
    /// An upload that stages nothing for this long is taken as dead: the sweep deletes
    /// what it staged, and finishing it fails with `staging_expired`.
    #[serde(with = "humantime_serde")]
    pub staging_timeout: std::time::Duration,
}

impl Default for SubmissionSettings {
    fn default() -> Self {
        Self {
            staging_timeout: std::time::Duration::from_secs(600),
        }
    }
}
