//! Personal data (`docs/privacy.md`): how an output names a person without carrying the id.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// A pseudonymization key. Its `Debug` never shows the key, so it cannot reach a log.
#[derive(Clone)]
pub struct PseudonymKey(Vec<u8>);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(<redacted>)")
    }
}

impl PseudonymKey {
    /// A key from its bytes (as read from the environment).
    pub fn new(key: &[u8]) -> Self {
        PseudonymKey(key.to_vec())
    }

    /// HMAC-SHA-256 of the id's UTF-8 bytes, the first 16 bytes as 32 hex digits: stable
    /// for a key, not reversible without it, and different under another key.
    pub fn pseudonym(&self, id: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.finalize().into_bytes()[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// What the manifest records instead of the key: SHA-256 of a fixed label and the key,
    /// 8 bytes in hex. It tells whether two runs used the same key, and nothing more.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"touchpoint pseudonym key fingerprint\0");
        h.update(&self.0);
        h.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2 (key "Jefe"): the full HMAC-SHA-256 begins with these 16 bytes.
    #[test]
    fn pseudonyms_are_hmac_sha256_of_the_id() {
        let k = PseudonymKey::new(b"Jefe");
        assert_eq!(k.pseudonym("what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c7");
        assert_ne!(PseudonymKey::new(b"other").pseudonym("u1"), k.pseudonym("u1"));
        assert_eq!(format!("{k:?}"), "PseudonymKey(<redacted>)");
        assert_eq!(k.fingerprint().len(), 16);
    }
}
