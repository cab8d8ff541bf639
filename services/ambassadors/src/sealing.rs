//! Role-model attributes are sealed at rest with AES-256-GCM under a key held outside the
//! database (a secret file or variable), with the ambassador's id bound in as associated
//! data, so a sealed value copied onto another ambassador does not open.

use aes_gcm::{
    Aes256Gcm, Key, Nonce,
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
};
use base64::Engine;

const NONCE_BYTES: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SealingError {
    #[error("the attributes key is not base64 of 32 bytes: {0}")]
    BadKey(String),
    #[error("cannot read the attributes key at {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("a sealed value did not open: another key, another ambassador, or altered")]
    Open,
    #[error("a value could not be sealed")]
    Seal,
}

/// The attributes key. Never printed.
#[derive(Clone)]
pub struct AttributesKey(Key<Aes256Gcm>);

impl std::fmt::Debug for AttributesKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("AttributesKey(..)")
    }
}

fn associated_data(ambassador_id: &str) -> Vec<u8> {
    format!("ambassadors.role_model:{ambassador_id}").into_bytes()
}

impl AttributesKey {
    pub fn from_base64(text: &str) -> Result<Self, SealingError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|error| SealingError::BadKey(error.to_string()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|bytes: Vec<u8>| SealingError::BadKey(format!("{} bytes", bytes.len())))?;
        Ok(Self(Key::<Aes256Gcm>::from(bytes)))
    }

    pub fn from_file(path: &std::path::Path) -> Result<Self, SealingError> {
        let text = std::fs::read_to_string(path).map_err(|source| SealingError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_base64(&text)
    }

    /// A fresh random key, base64, for development and tests.
    pub fn generate() -> String {
        base64::engine::general_purpose::STANDARD.encode(Aes256Gcm::generate_key(&mut OsRng))
    }

    pub fn seal(&self, ambassador_id: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealingError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = Aes256Gcm::new(&self.0)
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &associated_data(ambassador_id),
                },
            )
            .map_err(|_| SealingError::Seal)?;
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend(sealed);
        Ok(out)
    }

    pub fn open(&self, ambassador_id: &str, sealed: &[u8]) -> Result<Vec<u8>, SealingError> {
        if sealed.len() < NONCE_BYTES {
            return Err(SealingError::Open);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SealingError::Open)?;
        Aes256Gcm::new(&self.0)
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &associated_data(ambassador_id),
                },
            )
            .map_err(|_| SealingError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_for_its_ambassador_and_key() -> Result<(), SealingError> {
        let key = AttributesKey::from_base64(&AttributesKey::generate())?;
        let other = AttributesKey::from_base64(&AttributesKey::generate())?;
        let sealed = key.seal("a-1", b"{\"gender\":\"female\"}")?;
        assert!(!sealed.windows(6).any(|window| window == b"female"));
        assert_eq!(key.open("a-1", &sealed)?, b"{\"gender\":\"female\"}");
        assert!(key.open("a-2", &sealed).is_err());
        assert!(other.open("a-1", &sealed).is_err());
        assert!(AttributesKey::from_base64("c2hvcnQ=").is_err());
        Ok(())
    }
}
