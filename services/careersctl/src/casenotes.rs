//! Case-notes operations that need its secrets, run against its stores directly:
//! `careersctl audit verify` and `careersctl keys rewrap`.

use anyhow::Context;
use careers_casenotes::{
    audit_log::{self, AuditLogError},
    keystore,
    settings::{AuditSettings, CryptoSettings},
};
use careers_platform::{settings::DatabaseSettings, store};
use sea_orm::ConnectionTrait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// `[casenotes]`: where its stores and secrets are (the development ones by default).
#[derive(Debug, Default, Deserialize)]
pub struct CasenotesSettings {
    #[serde(default)]
    pub database: Option<SecretString>,
    #[serde(default)]
    pub keystore: Option<SecretString>,
    #[serde(default)]
    pub audit: AuditSettings,
    #[serde(default)]
    pub crypto: CryptoSettings,
}

fn url<'a>(value: Option<&'a SecretString>, key: &str) -> anyhow::Result<&'a str> {
    value.map(ExposeSecret::expose_secret).with_context(|| {
        format!(
            "set casenotes.{key} (CAREERS_CAREERSCTL__CASENOTES__{})",
            key.to_ascii_uppercase()
        )
    })
}

/// One organisation's chain: how many entries held, or what broke it.
#[derive(Debug, serde::Serialize)]
pub struct ChainCheck {
    pub org: String,
    pub entries: Option<u64>,
    pub broken: Option<String>,
}

/// Verifies every organisation's chain (or one).
pub async fn verify(
    settings: &CasenotesSettings,
    org: Option<&str>,
) -> anyhow::Result<Vec<ChainCheck>> {
    let key = settings.audit.key()?;
    let db = store::connect(&DatabaseSettings::for_url(url(
        settings.database.as_ref(),
        "database",
    )?))
    .await?;
    let orgs: Vec<String> = match org {
        Some(org) => vec![org.to_owned()],
        None => db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT org FROM audit_heads ORDER BY org",
            ))
            .await?
            .iter()
            .map(|row| row.try_get_by_index::<String>(0))
            .collect::<Result<_, _>>()?,
    };
    let mut checks = Vec::new();
    for org in orgs {
        let (entries, broken) = match audit_log::verify(&db, &key, &org).await {
            Ok(held) => (Some(held as u64), None),
            Err(error @ (AuditLogError::Broken(_) | AuditLogError::TailMissing { .. })) => {
                (None, Some(error.to_string()))
            }
            Err(error) => return Err(error.into()),
        };
        checks.push(ChainCheck {
            org,
            entries,
            broken,
        });
    }
    Ok(checks)
}

/// Re-wraps every data key under the first KEK of `crypto`; answers how many changed.
pub async fn rewrap(settings: &CasenotesSettings) -> anyhow::Result<usize> {
    let keyring = settings.crypto.keyring()?;
    let keys = store::connect(&DatabaseSettings::for_url(url(
        settings.keystore.as_ref(),
        "keystore",
    )?))
    .await?;
    Ok(keystore::rewrap_all(&keys, &keyring).await?)
}
