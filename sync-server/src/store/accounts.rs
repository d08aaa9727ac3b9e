//! Users and the email index.
//!
//! An account lives on its user shard; its email's entry in `user_emails` lives on the email's
//! shard. Registration claims the email there first (`INSERT .. ON CONFLICT DO NOTHING`, then
//! read back the owner of the email), so two concurrent registrations of one email agree on a
//! single user id, and then upserts that user's row. A crash between the two leaves an email
//! entry without a user row, which the next registration of that email completes.

use sqlx::Row;
use sqlx::any::AnyRow;
use tandem_protocol::UserId;

use super::{Store, StoreError, now_ms};
use crate::auth::email::Email;

/// Times a registration retries its account row after losing an insert race (see
/// [`Store::register`]).
const UNIQUE_RACE_RETRIES: usize = 3;

/// An account as stored.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// The account's id.
    pub id: UserId,
    /// The normalised email.
    pub email: String,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// Whether the email has been verified (only verified accounts may log in).
    pub verified: bool,
}

/// A pending verification code as stored on the account.
#[derive(Debug, Clone)]
pub struct PendingCode {
    /// HMAC of the code.
    pub code_hash: String,
    /// When it stops being valid, Unix ms.
    pub expires_at: i64,
    /// Wrong codes entered so far.
    pub attempts: i64,
}

/// What [`Store::register`] wrote.
#[derive(Debug, Clone)]
pub struct NewRegistration {
    /// The normalised email.
    pub email: Email,
    /// The argon2id hash of the password.
    pub password_hash: String,
    /// The HMAC of the verification code.
    pub code_hash: String,
    /// When the code expires, Unix ms.
    pub code_expires_at: i64,
}

/// The outcome of checking a verification code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    /// The code was right; the account is now verified.
    Verified(UserId),
    /// The code was wrong; this many tries are left for it.
    Wrong {
        /// Wrong tries still allowed before the code is void.
        tries_left: i64,
    },
    /// No code is pending, it expired, or it was voided by too many wrong tries.
    NoValidCode,
    /// The account is verified already.
    AlreadyVerified,
}

impl Store {
    /// Registers `email` or, while it is unverified, replaces its password and code. Returns
    /// the account's id (a new one is `candidate`). Fails with `Conflict` when a verified
    /// account holds the email.
    pub async fn register(
        &self,
        candidate: UserId,
        reg: &NewRegistration,
    ) -> Result<UserId, StoreError> {
        let now = now_ms();
        let email_db = self.shards.for_email(&reg.email);
        let mut tx = email_db.begin_write().await?;
        sqlx::query(
            "INSERT INTO user_emails (email, user_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(reg.email.as_str())
        .bind(candidate.as_i64())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let owner: i64 = sqlx::query_scalar("SELECT user_id FROM user_emails WHERE email = $1")
            .bind(reg.email.as_str())
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let user = UserId(owner as u64);

        // The row of the email's owner: created if new (or if a crash lost it), refreshed if
        // still unverified, untouched (0 rows) if verified.
        let user_db = self.shards.for_user(user);
        let upsert = || {
            sqlx::query(
                "INSERT INTO users (user_id, email, password_hash, code_hash, code_expires_at,
                                    code_attempts, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $6)
                 ON CONFLICT (user_id) DO UPDATE SET
                     password_hash = excluded.password_hash,
                     code_hash = excluded.code_hash,
                     code_expires_at = excluded.code_expires_at,
                     code_attempts = 0,
                     updated_at = excluded.updated_at
                 WHERE users.verified_at IS NULL",
            )
            .bind(user.as_i64())
            .bind(reg.email.as_str())
            .bind(&reg.password_hash)
            .bind(&reg.code_hash)
            .bind(reg.code_expires_at)
            .bind(now)
            .execute(user_db.writer())
        };
        // Two registrations of one email insert the same row at once. PostgreSQL resolves the
        // `user_id` conflict it was told of, but can report the row's other unique key (the
        // email) as violated while the first insert is in flight; once that one committed, the
        // same statement takes the `user_id` path.
        let mut done = upsert().await;
        for _ in 0..UNIQUE_RACE_RETRIES {
            match &done {
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => done = upsert().await,
                _ => break,
            }
        }
        let done = done?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict("An account with this email already exists.".into()));
        }
        Ok(user)
    }

    /// The account registered with an email, if any.
    pub async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError> {
        let Some(user) = self.user_id_by_email(email).await? else { return Ok(None) };
        let row = sqlx::query(
            "SELECT user_id, email, password_hash, verified_at FROM users WHERE user_id = $1",
        )
        .bind(user.as_i64())
        .fetch_optional(self.shards.for_user(user).pool())
        .await?;
        // A row whose email differs would be an index entry left by a crashed registration
        // whose id was later reused; treat it as absent.
        Ok(row.map(|row| user_record(&row)).transpose()?.filter(|u| *email == u.email))
    }

    /// The email of a verified account, or `None` if no verified account has this id: what a
    /// token's holder is checked against on every call (one primary-key read on the user's
    /// shard).
    pub async fn verified_email(&self, user: UserId) -> Result<Option<String>, StoreError> {
        let email: Option<String> = sqlx::query_scalar(
            "SELECT email FROM users WHERE user_id = $1 AND verified_at IS NOT NULL",
        )
        .bind(user.as_i64())
        .fetch_optional(self.shards.for_user(user).pool())
        .await?;
        Ok(email)
    }

    /// The id owning an email in the email index.
    pub async fn user_id_by_email(&self, email: &Email) -> Result<Option<UserId>, StoreError> {
        let id: Option<i64> =
            sqlx::query_scalar("SELECT user_id FROM user_emails WHERE email = $1")
                .bind(email.as_str())
                .fetch_optional(self.shards.for_email(email).pool())
                .await?;
        Ok(id.map(|id| UserId(id as u64)))
    }

    /// Checks a verification code for `email`. `matches` compares a stored code hash with the
    /// code the user typed. A wrong code counts against the pending code, which is void after
    /// `max_attempts` wrong tries; a right one verifies the account and clears the code.
    pub async fn check_code(
        &self,
        email: &Email,
        max_attempts: i64,
        matches: impl FnOnce(&str) -> bool,
    ) -> Result<CodeCheck, StoreError> {
        let Some(user) = self.user_id_by_email(email).await? else {
            return Ok(CodeCheck::NoValidCode);
        };
        let now = now_ms();
        let mut tx = self.shards.for_user(user).begin_write().await?;
        let row = sqlx::query(
            "SELECT verified_at, code_hash, code_expires_at, code_attempts
             FROM users WHERE user_id = $1 AND email = $2",
        )
        .bind(user.as_i64())
        .bind(email.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(CodeCheck::NoValidCode) };
        if row.try_get::<Option<i64>, _>(0)?.is_some() {
            return Ok(CodeCheck::AlreadyVerified);
        }
        let pending =
            match (row.try_get::<Option<String>, _>(1)?, row.try_get::<Option<i64>, _>(2)?) {
                (Some(code_hash), Some(expires_at)) => {
                    PendingCode { code_hash, expires_at, attempts: row.try_get(3)? }
                }
                _ => return Ok(CodeCheck::NoValidCode),
            };
        if pending.expires_at <= now || pending.attempts >= max_attempts {
            return Ok(CodeCheck::NoValidCode);
        }
        if matches(&pending.code_hash) {
            sqlx::query(
                "UPDATE users SET verified_at = $2, code_hash = NULL, code_expires_at = NULL,
                                  code_attempts = 0, updated_at = $2
                 WHERE user_id = $1",
            )
            .bind(user.as_i64())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(CodeCheck::Verified(user));
        }
        let attempts = pending.attempts + 1;
        sqlx::query("UPDATE users SET code_attempts = $2, updated_at = $3 WHERE user_id = $1")
            .bind(user.as_i64())
            .bind(attempts)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(CodeCheck::Wrong { tries_left: max_attempts - attempts })
    }
}

fn user_record(row: &AnyRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: UserId(row.try_get::<i64, _>(0)? as u64),
        email: row.try_get(1)?,
        password_hash: row.try_get(2)?,
        verified: row.try_get::<Option<i64>, _>(3)?.is_some(),
    })
}
