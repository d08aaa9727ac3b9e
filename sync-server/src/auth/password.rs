//! Password hashing with argon2id at OWASP's parameters (m=19456 KiB, t=2, p=1).
//!
//! argon2 is deliberately slow and memory-hungry, so every hash runs on the blocking pool
//! (`spawn_blocking`) and a semaphore caps how many run at once: a burst of logins cannot eat
//! all memory or starve the async threads.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in characters.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// A password outside the accepted length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters long.")]
pub struct BadPassword;

/// Checks a password's length. Passwords are used exactly as given: no trimming, no
/// normalisation, any characters.
pub fn check_password(password: &str) -> Result<(), BadPassword> {
    let chars = password.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        Ok(())
    } else {
        Err(BadPassword)
    }
}

/// Hashing failed inside the library or the blocking task died.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes and verifies passwords. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified against when an account does not exist so
    /// that a failed login takes the same time whether or not the email is registered.
    dummy_hash: Arc<String>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("permits", &self.permits.available_permits())
            .finish()
    }
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl PasswordHasher {
    /// A hasher running at most `max_concurrent` hashes at once.
    pub async fn new(max_concurrent: usize) -> Result<Self, HashError> {
        let permits = Arc::new(Semaphore::new(max_concurrent.max(1)));
        let dummy: String = {
            use rand::Rng as _;
            rand::thread_rng()
                .sample_iter(rand::distributions::Alphanumeric)
                .take(24)
                .map(char::from)
                .collect()
        };
        let mut hasher = Self { permits, dummy_hash: Arc::new(String::new()) };
        hasher.dummy_hash = Arc::new(hasher.hash(dummy).await?);
        Ok(hasher)
    }

    /// The argon2id PHC string of `password`, with a fresh random salt.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| HashError(e.to_string()))
        })
        .await?
    }

    /// Whether `password` matches `hash`. With no hash (no such account), verifies against a
    /// dummy hash and answers `false`, taking the same time as a real check.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let exists = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        let matched = self
            .run(move || {
                let parsed = PasswordHash::new(&hash).map_err(|e| HashError(e.to_string()))?;
                Ok(argon2().verify_password(password.as_bytes(), &parsed).is_ok())
            })
            .await??;
        Ok(exists && matched)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self.permits.acquire().await.map_err(|e| HashError(e.to_string()))?;
        tokio::task::spawn_blocking(work).await.map_err(|e| HashError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_counted_in_characters() {
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password(&"é".repeat(128)).is_ok(), "128 two-byte characters are fine");
        assert!(check_password(&"a".repeat(129)).is_err());
        assert!(check_password("  spaces  ").is_ok(), "used exactly as given");
    }

    #[tokio::test]
    async fn hashes_verify_only_their_password() {
        let hasher = PasswordHasher::new(2).await.unwrap();
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(hasher.verify("correct horse".into(), Some(hash.clone())).await.unwrap());
        assert!(!hasher.verify("correct horse ".into(), Some(hash)).await.unwrap());
        assert!(!hasher.verify("anything".into(), None).await.unwrap());
    }
}
