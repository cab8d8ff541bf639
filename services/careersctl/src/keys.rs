//! Development key pairs under `data/dev-keys/`, made by whichever of `make run` and
//! `careersctl token` runs first, kept afterwards.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use careers_platform::identity::{Identity, IdentitySigner};

/// The bearer tokens' issuer and audience in development.
pub const DEV_ISSUER: &str = "careers-dev";
pub const DEV_AUDIENCE: &str = "careers";

/// `<dir>/<stem>.pem` (private, 0600) and `<dir>/<stem>.jwks.json`, made if missing.
pub fn ensure(dir: &Path, stem: &str, kid: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let pem = dir.join(format!("{stem}.pem"));
    let jwks = dir.join(format!("{stem}.jwks.json"));
    if !pem.exists() || !jwks.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let (private, public) = careers_platform::identity::generate_key_pair(kid)?;
        write_private(&pem, &private)?;
        std::fs::write(&jwks, public).with_context(|| format!("writing {}", jwks.display()))?;
    }
    Ok((pem, jwks))
}

/// `<dir>/<stem>.pem` (private, 0600) and `<dir>/<stem>.jwks.json`, new; fails rather than
/// overwrite a key someone may depend on.
pub fn generate(dir: &Path, stem: &str, kid: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    for existing in [
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.jwks.json")),
    ] {
        anyhow::ensure!(
            !existing.exists(),
            "{} exists; choose another --name or --dir",
            existing.display()
        );
    }
    ensure(dir, stem, kid)
}

/// `<dir>/casenotes-kek` and `<dir>/casenotes-audit.key` (both 0600), made if missing.
pub fn ensure_casenotes_secrets(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let kek = dir.join("casenotes-kek");
    let audit = dir.join("casenotes-audit.key");
    if !kek.exists() || !audit.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let (kek_line, audit_key) = careers_casenotes::settings::generate_dev_secrets("dev-kek-1");
        write_private(&kek, &format!("{kek_line}\n"))?;
        write_private(&audit, &format!("{audit_key}\n"))?;
    }
    Ok((kek, audit))
}

/// Ambassadors' development key sealing role-model attributes, created once.
pub fn ensure_ambassadors_key(dir: &Path) -> anyhow::Result<PathBuf> {
    let key = dir.join("ambassadors-attributes.key");
    if !key.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let generated = careers_ambassadors::sealing::AttributesKey::generate();
        write_private(&key, &format!("{generated}\n"))?;
    }
    Ok(key)
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

/// A development bearer token for `identity`, signed with the key at `pem`.
pub fn sign(pem: &Path, identity: &Identity, ttl: Duration) -> anyhow::Result<String> {
    let signer = IdentitySigner::from_pem(&std::fs::read(pem)?, "dev-bearer-1")?;
    Ok(signer.sign_for(identity, DEV_ISSUER, DEV_AUDIENCE, ttl)?)
}

/// A 12-hour development bearer token for one role.
pub fn dev_token(
    pem: &Path,
    role: &str,
    org: Option<&str>,
    ssc: Option<&str>,
) -> anyhow::Result<String> {
    let identity = Identity {
        sub: format!("dev-{role}"),
        roles: vec![role.to_owned()],
        org: org.map(str::to_owned),
        ssc: ssc.map(str::to_owned),
    };
    sign(pem, &identity, Duration::from_secs(12 * 3600))
}
