//! Email verification codes: six digits from the OS's CSPRNG, valid for ten minutes, single
//! use, void after five wrong tries. Only an HMAC of the code (keyed with a server secret and
//! bound to the email) is stored, so a copy of the database does not reveal pending codes.

use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::Rng as _;
use sha2::Sha256;

/// How long a code stays valid.
pub const CODE_TTL: Duration = Duration::from_secs(10 * 60);
/// Wrong tries after which a code is void.
pub const MAX_ATTEMPTS: i64 = 5;

/// Makes and checks codes.
#[derive(Clone)]
pub struct CodeHasher {
    key: Vec<u8>,
}

impl std::fmt::Debug for CodeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeHasher")
    }
}

impl CodeHasher {
    /// A hasher keyed with a server secret.
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    /// A fresh six-digit code.
    pub fn generate() -> String {
        format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32))
    }

    fn mac(&self, email: &str, code: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(email.as_bytes());
        mac.update(b"\0");
        mac.update(code.as_bytes());
        mac
    }

    /// The hex HMAC stored for `code` sent to `email`.
    pub fn hash(&self, email: &str, code: &str) -> String {
        self.mac(email, code).finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `code` typed for `email` matches the stored hash, in constant time.
    pub fn matches(&self, email: &str, code: &str, stored_hex: &str) -> bool {
        let Some(stored) = decode_hex(stored_hex) else { return false };
        self.mac(email, code).verify_slice(&stored).is_ok()
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..200 {
            let code = CodeHasher::generate();
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn a_code_matches_only_itself_for_its_email() {
        let hasher = CodeHasher::new(b"key");
        let stored = hasher.hash("a@example.com", "123456");
        assert!(!stored.contains("123456"));
        assert!(hasher.matches("a@example.com", "123456", &stored));
        assert!(!hasher.matches("a@example.com", "123457", &stored));
        assert!(!hasher.matches("b@example.com", "123456", &stored));
        assert!(!CodeHasher::new(b"other").matches("a@example.com", "123456", &stored));
        assert!(!hasher.matches("a@example.com", "123456", "zz"));
    }
}
