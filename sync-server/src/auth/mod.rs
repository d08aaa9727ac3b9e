//! Who a caller is: passwords, tokens, verification codes, email rules and throttling.
//!
//! - [`password`]: argon2id hashing off the async threads, with a cap on concurrent hashes.
//! - [`token`]: HS256 JWTs with issuer, audience, expiry and id, and the signing secret.
//! - [`code`]: six-digit verification codes, stored as an HMAC.
//! - [`email`]: normalising and checking email addresses.
//! - [`throttle`]: per-account and per-address rate limits on the account calls.

pub mod code;
pub mod email;
pub mod password;
pub mod throttle;
pub mod token;
