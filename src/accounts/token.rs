//! API bearer tokens: 32 random bytes, shown once, stored as a SHA-256 hash. A hash (rather
//! than argon2) is right here: the secret has 256 bits of entropy, so it cannot be guessed from
//! its hash, and lookups by hash stay a single indexed query.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The prefix that makes a SyncDesk token recognisable (e.g. by secret scanners).
pub const TOKEN_PREFIX: &str = "sdk_";

/// A new token: `(secret to show once, hash to store)`.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_token(&secret);
    (secret, hash)
}

/// The stored form of a token secret.
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let (a, ha) = super::new_token();
        let (b, _) = super::new_token();
        assert_ne!(a, b);
        assert!(a.starts_with("sdk_") && a.len() > 40);
        assert_eq!(super::hash_token(&a), ha);
    }
}
