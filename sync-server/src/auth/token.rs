//! Access tokens: HS256 JWTs, algorithm pinned, with `iss`, `aud`, `sub`, `iat`, `exp` and
//! `jti`, checked with at most 5 s of clock leeway.
//!
//! The signing secret comes from config or the environment, or is made once (256 random
//! bits) and kept in the data folder, readable by the owner only. It is never in the code.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use tandem_protocol::UserId;

/// Issuer written into and required of every token.
pub const ISSUER: &str = "tandem";
/// Audience written into and required of every token.
pub const AUDIENCE: &str = "tandem-api";
/// Clock skew tolerated on `exp`.
pub const LEEWAY_SECS: u64 = 5;
/// Shortest secret accepted from config: 256 bits.
pub const MIN_SECRET_BYTES: usize = 32;
/// File in the data folder holding a generated secret.
pub const SECRET_FILE: &str = "jwt-secret";

/// The claims of a Tandem token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id, in decimal.
    pub sub: String,
    /// The user's email.
    pub email: String,
    /// Issuer: [`ISSUER`].
    pub iss: String,
    /// Audience: [`AUDIENCE`].
    pub aud: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
    /// Unique token id.
    pub jti: String,
}

/// The caller a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUser {
    /// The account.
    pub id: UserId,
    /// Its email.
    pub email: String,
}

/// Why a secret could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The configured secret is too short.
    #[error("the JWT secret must be at least {MIN_SECRET_BYTES} bytes")]
    TooShort,
    /// The secret file could not be read or written.
    #[error("JWT secret file {path}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// Issues and checks tokens.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Keys from a secret of at least [`MIN_SECRET_BYTES`] bytes; tokens live `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Result<Self, SecretError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        })
    }

    /// A new token for `user`.
    pub fn issue(&self, user: UserId, email: &str) -> String {
        let now = unix_now();
        let mut jti = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut jti);
        let claims = Claims {
            sub: user.to_string(),
            email: email.to_owned(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + self.ttl.as_secs(),
            jti: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// The user a token names, if it is a valid, unexpired Tandem token signed with our key.
    pub fn verify(&self, token: &str) -> Option<TokenUser> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let id: u64 = data.claims.sub.parse().ok()?;
        let id = UserId(id);
        id.is_valid().then_some(TokenUser { id, email: data.claims.email })
    }

    /// How long issued tokens live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// The secret to sign with: `configured` if given, else the one kept in `data_dir`, made on
/// first start with owner-only permissions.
pub fn load_or_create_secret(
    configured: Option<&str>,
    data_dir: &Path,
) -> Result<Vec<u8>, SecretError> {
    if let Some(secret) = configured {
        return if secret.len() >= MIN_SECRET_BYTES {
            Ok(secret.as_bytes().to_vec())
        } else {
            Err(SecretError::TooShort)
        };
    }
    let path = data_dir.join(SECRET_FILE);
    let io = |source| SecretError::Io { path: path.display().to_string(), source };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let secret = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
            if secret.len() < MIN_SECRET_BYTES {
                return Err(SecretError::TooShort);
            }
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = vec![0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut secret);
            write_private(&path, &base64::engine::general_purpose::STANDARD.encode(&secret))
                .map_err(io)?;
            Ok(secret)
        }
        Err(e) => Err(io(e)),
    }
}

/// Writes a file that only its owner can read, never replacing an existing one.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> TokenKeys {
        TokenKeys::new(SECRET, Duration::from_secs(3600)).unwrap()
    }

    fn sign(claims: &Claims, alg: Algorithm, secret: &[u8]) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn claims() -> Claims {
        let now = unix_now();
        Claims {
            sub: "42".into(),
            email: "a@example.com".into(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + 60,
            jti: "x".into(),
        }
    }

    #[test]
    fn issued_tokens_verify() {
        let keys = keys();
        let user = keys.verify(&keys.issue(UserId(42), "a@example.com")).unwrap();
        assert_eq!(user, TokenUser { id: UserId(42), email: "a@example.com".into() });
    }

    #[test]
    fn tokens_expire_with_at_most_five_seconds_of_leeway() {
        let mut c = claims();
        c.exp = unix_now() - 10;
        assert!(keys().verify(&sign(&c, Algorithm::HS256, SECRET)).is_none());
        c.exp = unix_now() - 2;
        assert!(keys().verify(&sign(&c, Algorithm::HS256, SECRET)).is_some());
    }

    #[test]
    fn forged_and_foreign_tokens_are_refused() {
        let keys = keys();
        let c = claims();
        assert!(
            keys.verify(&sign(&c, Algorithm::HS256, b"another-secret-another-secret-xx")).is_none()
        );
        assert!(keys.verify(&sign(&c, Algorithm::HS512, SECRET)).is_none(), "algorithm is pinned");
        let mut wrong_aud = c.clone();
        wrong_aud.aud = "someone-else".into();
        assert!(keys.verify(&sign(&wrong_aud, Algorithm::HS256, SECRET)).is_none());
        let mut wrong_iss = c.clone();
        wrong_iss.iss = "evil".into();
        assert!(keys.verify(&sign(&wrong_iss, Algorithm::HS256, SECRET)).is_none());
        // alg: none, unsigned.
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&serde_json::to_string(&c).unwrap())
        );
        assert!(keys.verify(&none).is_none());
        // Tampered payload.
        let token = sign(&c, Algorithm::HS256, SECRET);
        let mut parts: Vec<&str> = token.split('.').collect();
        let mut admin = c.clone();
        admin.sub = "1".into();
        let forged_payload = b64(&serde_json::to_string(&admin).unwrap());
        parts[1] = &forged_payload;
        assert!(keys.verify(&parts.join(".")).is_none());
        assert!(keys.verify("not a token").is_none());
    }

    #[test]
    fn short_secrets_are_refused_and_generated_ones_are_private() {
        assert!(TokenKeys::new(b"short", Duration::from_secs(1)).is_err());
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_secret(None, dir.path()).unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(load_or_create_secret(None, dir.path()).unwrap(), first, "kept across restarts");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode =
                std::fs::metadata(dir.path().join(SECRET_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
