//! The casenotes service's own settings, and the secrets they point at.

use std::{path::PathBuf, time::Duration};

use careers_eventbus::settings::{EventSettings, InboxSettings, NatsSettings, OutboxSettings};
use careers_platform::settings::DatabaseSettings;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{
    audit::AuditKey,
    crypto::{Kek, Keyring},
};

/// Settings of the casenotes service beyond the platform's sections.
#[derive(Debug, Clone, Deserialize)]
pub struct CasenotesSettings {
    #[serde(default)]
    pub nats: NatsSettings,
    #[serde(default)]
    pub outbox: OutboxSettings,
    #[serde(default)]
    pub inbox: InboxSettings,
    pub crypto: CryptoSettings,
    pub audit: AuditSettings,
    /// The key store: a database of its own, backed up on a short rotation.
    pub keystore: DatabaseSettings,
    #[serde(default)]
    pub notes: NoteSettings,
    #[serde(default)]
    pub retention: RetentionSettings,
    /// Set only by code (the benchmark's unprotected baseline); never by configuration.
    #[serde(skip)]
    pub protection: crate::protection::Protection,
}

impl CasenotesSettings {
    /// The event bus's sections.
    pub fn events(&self) -> EventSettings {
        EventSettings {
            nats: self.nats.clone(),
            outbox: self.outbox.clone(),
            inbox: self.inbox.clone(),
        }
    }
}

/// `[crypto]`: the key-encryption keys, from a secret file or the environment.
///
/// Either form holds one KEK per line (or comma-separated) as `id:base64-of-32-bytes`;
/// the first wraps new data keys, every one unwraps, so a rotation adds a new first line,
/// runs `rewrap`, then drops the old line.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CryptoSettings {
    #[serde(default)]
    pub kek_path: Option<PathBuf>,
    #[serde(default)]
    pub keks: Option<SecretString>,
}

/// `[audit]`: the audit chain's HMAC key (base64, 32 bytes or more), from a secret file
/// or the environment.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditSettings {
    #[serde(default)]
    pub key_path: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<SecretString>,
}

/// `[notes]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct NoteSettings {
    /// The longest note text, in UTF-8 bytes.
    pub max_bytes: usize,
}

impl Default for NoteSettings {
    fn default() -> Self {
        Self { max_bytes: 20_000 }
    }
}

/// `[retention]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RetentionSettings {
    /// A client with no interaction for this many years is erased.
    pub inactive_years: u32,
    /// How often the sweeper looks.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            inactive_years: 6,
            sweep_interval: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{0}: set it to a secret file's path, or its value in the environment")]
    Missing(&'static str),
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

fn secret_text(
    name: &'static str,
    path: Option<&PathBuf>,
    inline: Option<&SecretString>,
) -> Result<String, SecretError> {
    match (path, inline) {
        (_, Some(value)) => Ok(value.expose_secret().to_owned()),
        (Some(path), None) => std::fs::read_to_string(path).map_err(|source| SecretError::Read {
            path: path.display().to_string(),
            source,
        }),
        (None, None) => Err(SecretError::Missing(name)),
    }
}

impl CryptoSettings {
    /// The keyring the settings name.
    pub fn keyring(&self) -> Result<Keyring, SecretError> {
        let text = secret_text(
            "crypto.kek_path",
            self.kek_path.as_ref(),
            self.keks.as_ref(),
        )?;
        let mut keks = text
            .split(['\n', ','])
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (id, key) = line.split_once(':').ok_or_else(|| {
                    SecretError::Invalid("a KEK is written `id:base64-key`".to_owned())
                })?;
                Kek::from_base64(id.trim(), key)
                    .map_err(|error| SecretError::Invalid(error.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?
            .into_iter();
        let current = keks
            .next()
            .ok_or_else(|| SecretError::Invalid("no key-encryption key is given".to_owned()))?;
        Ok(Keyring::new(current, keks.collect()))
    }
}

impl AuditSettings {
    /// The audit key the settings name.
    pub fn key(&self) -> Result<AuditKey, SecretError> {
        use base64::Engine;
        let text = secret_text("audit.key_path", self.key_path.as_ref(), self.key.as_ref())?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|error| {
                SecretError::Invalid(format!("the audit key is not base64: {error}"))
            })?;
        AuditKey::new(bytes).map_err(|error| SecretError::Invalid(error.to_string()))
    }
}

/// A fresh secret in the forms above, for development and tests: (KEK line, audit key).
pub fn generate_dev_secrets(kek_id: &str) -> (String, String) {
    use aes_gcm::aead::{OsRng, rand_core::RngCore};
    use base64::Engine;
    let mut kek = [0u8; 32];
    let mut audit = [0u8; 32];
    OsRng.fill_bytes(&mut kek);
    OsRng.fill_bytes(&mut audit);
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    (format!("{kek_id}:{}", encode(&kek)), encode(&audit))
}
