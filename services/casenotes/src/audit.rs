//! The audit trail's chain, per organisation.
//!
//! Entry `n`'s MAC is HMAC-SHA256, under the audit key (a secret held outside the
//! database, like the key-encryption key), of entry `n − 1`'s MAC and entry `n`'s canonical
//! bytes; the first links to zeros. Sequence numbers run 1, 2, 3… without gaps. So an
//! edited entry, a deleted one, a reordering or a MAC recomputed without the key all fail
//! [`verify`], which names the first entry that does not hold. Entries carry ids and codes
//! only, never personal data: the trail outlives erasure.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What the first entry of an organisation links to.
pub const GENESIS: [u8; 32] = [0; 32];

/// One read or write of client data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub org: String,
    /// 1 for the organisation's first entry.
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// The adviser's subject.
    pub actor: String,
    /// For example `client.read`, `note.create`.
    pub action: String,
    pub client_id: Option<String>,
    /// Why, as the caller stated it (for example `guidance`).
    pub purpose: String,
}

impl AuditEntry {
    /// Every field, length-prefixed, so no two entries give the same bytes.
    fn canonical(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut field = |part: &[u8]| {
            bytes.extend(u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            bytes.extend(part);
        };
        field(self.org.as_bytes());
        field(&self.seq.to_be_bytes());
        field(&self.at.timestamp_micros().to_be_bytes());
        field(self.actor.as_bytes());
        field(self.action.as_bytes());
        field(self.client_id.as_deref().unwrap_or_default().as_bytes());
        field(&[u8::from(self.client_id.is_some())]);
        field(self.purpose.as_bytes());
        bytes
    }
}

/// The audit key: 32 or more random bytes.
pub struct AuditKey(Vec<u8>);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("AuditKey(..)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the audit key must be at least 32 bytes, not {0}")]
pub struct ShortAuditKey(usize);

impl AuditKey {
    pub fn new(bytes: Vec<u8>) -> Result<Self, ShortAuditKey> {
        if bytes.len() < 32 {
            return Err(ShortAuditKey(bytes.len()));
        }
        Ok(Self(bytes))
    }
}

/// The MAC of `entry` chained after `previous`.
pub fn link(key: &AuditKey, previous: &[u8; 32], entry: &AuditEntry) -> [u8; 32] {
    // HMAC accepts keys of any length; the constructor cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key.0) else {
        return [0; 32];
    };
    mac.update(previous);
    mac.update(&entry.canonical());
    mac.finalize().into_bytes().into()
}

/// The first entry that breaks the chain, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit entry {seq} of {org}: {problem}")]
pub struct Broken {
    pub org: String,
    pub seq: i64,
    pub problem: &'static str,
}

/// Checks one organisation's entries, in sequence order, with their stored MACs; answers
/// how many held.
pub fn verify(
    key: &AuditKey,
    org: &str,
    entries: &[(AuditEntry, [u8; 32])],
) -> Result<usize, Broken> {
    let mut previous = GENESIS;
    for (position, (entry, stored)) in entries.iter().enumerate() {
        let expected_seq = i64::try_from(position).unwrap_or(i64::MAX) + 1;
        let broken = |problem| Broken {
            org: org.to_owned(),
            seq: expected_seq,
            problem,
        };
        if entry.org != org {
            return Err(broken("belongs to another organisation"));
        }
        if entry.seq != expected_seq {
            return Err(broken("is missing: the sequence jumps past it"));
        }
        let computed = link(key, &previous, entry);
        // Constant time: the comparison leaks nothing about the right MAC.
        if !constant_time_eq(&computed, stored) {
            return Err(broken(
                "does not match its MAC: edited, or its MAC recomputed",
            ));
        }
        previous = *stored;
    }
    Ok(entries.len())
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |differ, (x, y)| differ | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> AuditKey {
        AuditKey::new(vec![byte; 32]).unwrap()
    }

    fn chain(key: &AuditKey, count: i64) -> Vec<(AuditEntry, [u8; 32])> {
        let mut previous = GENESIS;
        (1..=count)
            .map(|seq| {
                let entry = AuditEntry {
                    org: "org-1".into(),
                    seq,
                    at: DateTime::from_timestamp(1_700_000_000 + seq, 0).unwrap(),
                    actor: "adviser-7".into(),
                    action: "client.read".into(),
                    client_id: Some(format!("client-{seq}")),
                    purpose: "guidance".into(),
                };
                previous = link(key, &previous, &entry);
                (entry, previous)
            })
            .collect()
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let key = key(1);
        assert_eq!(verify(&key, "org-1", &chain(&key, 5)), Ok(5));
        assert_eq!(verify(&key, "org-1", &[]), Ok(0));
    }

    #[test]
    fn an_edited_entry_is_named() {
        let key = key(1);
        let mut entries = chain(&key, 5);
        entries[2].0.client_id = Some("client-99".into());
        let broken = verify(&key, "org-1", &entries).unwrap_err();
        assert_eq!(broken.seq, 3);
        assert!(broken.problem.contains("edited"));
    }

    #[test]
    fn a_deleted_entry_is_named() {
        let key = key(1);
        let mut entries = chain(&key, 5);
        entries.remove(1);
        let broken = verify(&key, "org-1", &entries).unwrap_err();
        assert_eq!(broken.seq, 2);
        assert!(broken.problem.contains("missing"));
        // Renumbering the rest to hide the gap breaks the MACs instead.
        for (position, (entry, _)) in entries.iter_mut().enumerate() {
            entry.seq = position as i64 + 1;
        }
        assert_eq!(verify(&key, "org-1", &entries).unwrap_err().seq, 2);
    }

    #[test]
    fn macs_recomputed_without_the_key_fail_at_the_first_entry() {
        let entries = chain(&key(2), 5);
        let broken = verify(&key(1), "org-1", &entries).unwrap_err();
        assert_eq!(broken.seq, 1);
    }

    #[test]
    fn an_entry_of_another_organisation_does_not_verify_here() {
        let key = key(1);
        assert_eq!(verify(&key, "org-2", &chain(&key, 2)).unwrap_err().seq, 1);
    }

    #[test]
    fn an_audit_key_is_at_least_32_bytes() {
        assert!(AuditKey::new(vec![0; 31]).is_err());
        assert!(!format!("{:?}", key(5)).contains('5'));
    }
}
