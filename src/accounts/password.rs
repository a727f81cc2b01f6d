//! argon2id password hashing, off the async threads.

use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};

/// OWASP's minimum recommendation for argon2id: 19 MiB of memory, 2 iterations, 1 lane.
fn argon2() -> Argon2<'static> {
    // The parameters are constants known to be valid, so this cannot fail.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Why a password is refused, or `Ok`.
pub fn validate_password(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < 12 {
        Err("The password must be at least 12 characters long.".into())
    } else if chars > 1024 {
        Err("The password must be at most 1024 characters long.".into())
    } else {
        Ok(())
    }
}

/// Hashes a password into a PHC string (on a blocking thread: it takes tens of milliseconds).
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("{e}"))
    })
    .await?
}

/// Whether `password` matches the PHC string `hash` (on a blocking thread). A malformed hash
/// never matches.
pub async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_owasp_parameters_and_verifies() {
        let hash = hash_password("correct horse battery".into()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password("correct horse battery".into(), hash.clone()).await);
        assert!(!verify_password("wrong horse battery".into(), hash).await);
        assert!(!verify_password("x".into(), "not a hash".into()).await);
    }

    #[tokio::test]
    async fn the_sign_in_decoy_is_a_real_hash_that_nothing_matches() {
        // An unknown email must cost a full argon2 verification, like a wrong password does.
        let decoy = crate::accounts::signin::DECOY_HASH;
        assert!(PasswordHash::new(decoy).is_ok());
        assert!(!verify_password(String::new(), decoy.into()).await);
    }

    #[test]
    fn length_rules() {
        assert!(validate_password("short").is_err());
        assert!(validate_password("twelve chars").is_ok());
    }
}
