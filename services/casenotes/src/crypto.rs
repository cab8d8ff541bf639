//! Envelope encryption of a client's personal data.
//!
//! Every personal field and note text is sealed with AES-256-GCM under the client's own
//! data key, with its table, row and column as associated data, so a ciphertext copied
//! into another cell does not open. Data keys are stored only wrapped by a key-encryption
//! key (KEK) held outside the database, and only in the key store: destroying a client's
//! wrapped data key leaves every copy of its ciphertext, backups included, unreadable.
//! KEKs rotate by re-wrapping: the newest wraps, any held one unwraps.

use aes_gcm::{
    Aes256Gcm, Key, Nonce,
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
};
use base64::Engine;

/// Bytes of the random nonce stored before each ciphertext.
const NONCE_BYTES: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("key-encryption key {id:?}: {problem}")]
    BadKek { id: String, problem: String },
    #[error("no key-encryption key {0:?} is held to unwrap this data key")]
    UnknownKek(String),
    #[error("a sealed value did not open: another key, another cell, or altered")]
    Open,
    #[error("a value could not be sealed")]
    Seal,
}

/// Where a sealed value lives, bound into it as associated data.
#[derive(Debug, Clone, Copy)]
pub struct Cell<'a> {
    pub table: &'a str,
    pub row: &'a str,
    pub column: &'a str,
}

impl Cell<'_> {
    /// Length-prefixed, so no two cells give the same bytes.
    fn associated_data(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for part in [self.table, self.row, self.column] {
            bytes.extend(u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            bytes.extend(part.as_bytes());
        }
        bytes
    }
}

fn seal(key: &Key<Aes256Gcm>, cell: Cell<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let sealed = Aes256Gcm::new(key)
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: &cell.associated_data(),
            },
        )
        .map_err(|_| CryptoError::Seal)?;
    let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend(sealed);
    Ok(out)
}

fn open(key: &Key<Aes256Gcm>, cell: Cell<'_>, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_BYTES {
        return Err(CryptoError::Open);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
    let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| CryptoError::Open)?;
    Aes256Gcm::new(key)
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad: &cell.associated_data(),
            },
        )
        .map_err(|_| CryptoError::Open)
}

/// One client's data key. Never stored unwrapped; never printed.
pub struct DataKey(Key<Aes256Gcm>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A fresh random key, for a new client.
    pub fn generate() -> Self {
        Self(Aes256Gcm::generate_key(&mut OsRng))
    }

    pub fn seal(&self, cell: Cell<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal(&self.0, cell, plaintext)
    }

    pub fn open(&self, cell: Cell<'_>, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open(&self.0, cell, sealed)
    }
}

/// A key-encryption key: 32 random bytes, base64, from a secret file or the environment.
pub struct Kek {
    id: String,
    key: Key<Aes256Gcm>,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Kek {
    pub fn from_base64(id: &str, text: &str) -> Result<Self, CryptoError> {
        let bad = |problem: String| CryptoError::BadKek {
            id: id.to_owned(),
            problem,
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|error| bad(format!("not base64: {error}")))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|bytes: Vec<u8>| bad(format!("{} bytes, not 32", bytes.len())))?;
        Ok(Self {
            id: id.to_owned(),
            key: Key::<Aes256Gcm>::from(bytes),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The cell a client's wrapped data key is bound to: its client and this KEK.
    fn cell<'a>(&'a self, client_id: &'a str) -> Cell<'a> {
        Cell {
            table: "data_keys",
            row: client_id,
            column: &self.id,
        }
    }

    pub fn wrap(&self, client_id: &str, key: &DataKey) -> Result<Vec<u8>, CryptoError> {
        seal(&self.key, self.cell(client_id), &key.0[..])
    }

    pub fn unwrap(&self, client_id: &str, wrapped: &[u8]) -> Result<DataKey, CryptoError> {
        let bytes: [u8; 32] = open(&self.key, self.cell(client_id), wrapped)?
            .try_into()
            .map_err(|_| CryptoError::Open)?;
        Ok(DataKey(Key::<Aes256Gcm>::from(bytes)))
    }
}

/// The KEKs held: the current one wraps new data keys, every one unwraps.
#[derive(Debug)]
pub struct Keyring {
    current: Kek,
    previous: Vec<Kek>,
}

impl Keyring {
    pub fn new(current: Kek, previous: Vec<Kek>) -> Self {
        Self { current, previous }
    }

    /// (KEK id, wrapped key) for storing beside the client id.
    pub fn wrap(&self, client_id: &str, key: &DataKey) -> Result<(String, Vec<u8>), CryptoError> {
        Ok((self.current.id.clone(), self.current.wrap(client_id, key)?))
    }

    pub fn unwrap(
        &self,
        client_id: &str,
        kek_id: &str,
        wrapped: &[u8],
    ) -> Result<DataKey, CryptoError> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|kek| kek.id == kek_id)
            .ok_or_else(|| CryptoError::UnknownKek(kek_id.to_owned()))?
            .unwrap(client_id, wrapped)
    }

    /// The data key wrapped by the current KEK, for rotation; `None` when it already is.
    pub fn rewrap(
        &self,
        client_id: &str,
        kek_id: &str,
        wrapped: &[u8],
    ) -> Result<Option<(String, Vec<u8>)>, CryptoError> {
        if kek_id == self.current.id {
            return Ok(None);
        }
        let key = self.unwrap(client_id, kek_id, wrapped)?;
        self.wrap(client_id, &key).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTE: Cell<'static> = Cell {
        table: "notes",
        row: "note-1",
        column: "text",
    };

    fn kek(id: &str, byte: u8) -> Kek {
        Kek::from_base64(
            id,
            &base64::engine::general_purpose::STANDARD.encode([byte; 32]),
        )
        .unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_in_its_cell_unaltered() {
        let key = DataKey::generate();
        let sealed = key.seal(NOTE, b"Wants to be a vet").unwrap();
        assert!(!sealed.windows(3).any(|window| window == b"vet"));
        assert_eq!(key.open(NOTE, &sealed).unwrap(), b"Wants to be a vet");
        // Same text twice: different ciphertexts (random nonces).
        assert_ne!(sealed, key.seal(NOTE, b"Wants to be a vet").unwrap());
        let other_row = Cell {
            row: "note-2",
            ..NOTE
        };
        assert!(
            key.open(other_row, &sealed).is_err(),
            "moved to another row"
        );
        assert!(
            DataKey::generate().open(NOTE, &sealed).is_err(),
            "another key"
        );
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(key.open(NOTE, &altered).is_err(), "altered");
        assert!(key.open(NOTE, &sealed[..5]).is_err(), "truncated");
    }

    #[test]
    fn data_keys_unwrap_only_for_their_client_and_rotate_by_rewrapping() {
        let (old, new) = (kek("kek-2025", 1), kek("kek-2026", 2));
        let key = DataKey::generate();
        let sealed = key.seal(NOTE, b"text").unwrap();
        let before = Keyring::new(old, Vec::new());
        let (kek_id, wrapped) = before.wrap("client-1", &key).unwrap();
        assert_eq!(kek_id, "kek-2025");
        assert!(before.unwrap("client-2", &kek_id, &wrapped).is_err());

        let after = Keyring::new(new, vec![kek("kek-2025", 1)]);
        let (kek_id, wrapped) = after
            .rewrap("client-1", &kek_id, &wrapped)
            .unwrap()
            .unwrap();
        assert_eq!(kek_id, "kek-2026");
        assert!(
            after
                .rewrap("client-1", &kek_id, &wrapped)
                .unwrap()
                .is_none()
        );
        let unwrapped = after.unwrap("client-1", &kek_id, &wrapped).unwrap();
        assert_eq!(unwrapped.open(NOTE, &sealed).unwrap(), b"text");
        // Without the KEK that wrapped it, a data key is gone.
        let retired = Keyring::new(kek("kek-2027", 3), Vec::new());
        assert!(matches!(
            retired.unwrap("client-1", &kek_id, &wrapped),
            Err(CryptoError::UnknownKek(_))
        ));
    }

    #[test]
    fn a_kek_must_be_32_bytes_of_base64() {
        assert!(Kek::from_base64("k", "not base64!").is_err());
        assert!(Kek::from_base64("k", "AAAA").is_err());
        let error = Kek::from_base64("k", "AAAA").unwrap_err().to_string();
        assert!(error.contains("3 bytes, not 32"), "{error}");
        assert!(!format!("{:?}", kek("k", 9)).contains("9, 9"));
    }
}
