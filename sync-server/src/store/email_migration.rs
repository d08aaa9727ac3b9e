//! Rewriting emails stored before the current normal form ([`Email::parse`]).
//!
//! Older releases stored addresses trimmed and lower-cased only. ASCII addresses are the same
//! in both forms; others (NFD, full-width forms, a Unicode domain) are keyed differently now,
//! so login and sharing no longer find them. [`Store::normalise_emails`] rewrites every such
//! row: the account's email, its email-index entry (which moves to the new email's shard), the
//! copies in `list_collaborators`, and pending invitations. Each step is idempotent, so a run
//! that stops half-way is completed by running it again.

use sqlx::Row;
use tandem_protocol::UserId;

use super::{Store, StoreError, now_ms};
use crate::auth::email::Email;

/// Rows read per query while walking a table.
const PAGE: i64 = 500;

/// What [`Store::normalise_emails`] did and what it left for an operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailReport {
    /// Accounts whose email was rewritten to its normal form.
    pub accounts: u64,
    /// Pending invitations moved to the normal form of their email.
    pub invitations: u64,
    /// Accounts left as they are because another account already holds the normal form
    /// (two spellings of one address registered as two accounts): `old -> new (owner)`.
    pub conflicts: Vec<String>,
    /// Stored emails the current rules refuse (a look-alike, a symbol), left as they are.
    pub refused: Vec<String>,
}

impl Store {
    /// Rewrites every stored email to its normal form (see the module docs).
    pub async fn normalise_emails(&self) -> Result<EmailReport, StoreError> {
        let mut report = EmailReport::default();
        for db in self.shards.databases() {
            let mut after = -1i64;
            loop {
                let rows = sqlx::query(
                    "SELECT user_id, email FROM users WHERE user_id > $1 ORDER BY user_id LIMIT $2",
                )
                .bind(after)
                .bind(PAGE)
                .fetch_all(db.pool())
                .await?;
                let Some(last) = rows.last() else { break };
                after = last.try_get(0)?;
                for row in &rows {
                    let user = UserId(row.try_get::<i64, _>(0)? as u64);
                    // Rows of user shards this database no longer holds are not accounts.
                    if !std::ptr::eq(self.shards.for_user(user), db.as_ref()) {
                        continue;
                    }
                    let stored: String = row.try_get(1)?;
                    match Email::parse(&stored) {
                        Ok(email) if email == stored => {}
                        Ok(email) => {
                            self.rewrite_account(user, &stored, email, &mut report).await?
                        }
                        Err(err) => report.refused.push(format!("account {user}: {err}")),
                    }
                }
            }
        }
        for db in self.shards.databases() {
            let keys: Vec<String> =
                sqlx::query_scalar("SELECT DISTINCT email FROM pending_invitations")
                    .fetch_all(db.pool())
                    .await?;
            for stored in keys {
                match Email::parse(&stored) {
                    Ok(email) if email == stored => {}
                    Ok(email) => {
                        let old = Email::stored_before_normalisation(&stored);
                        report.invitations += self.move_invitations(&old, &email).await?;
                    }
                    Err(err) => report.refused.push(format!("invitation: {err}")),
                }
            }
        }
        Ok(report)
    }

    async fn rewrite_account(
        &self,
        user: UserId,
        stored: &str,
        email: Email,
        report: &mut EmailReport,
    ) -> Result<(), StoreError> {
        // Claim the normal form in the email index: the same rule as registration.
        let index = self.shards.for_email(&email);
        sqlx::query(
            "INSERT INTO user_emails (email, user_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(email.as_str())
        .bind(user.as_i64())
        .bind(now_ms())
        .execute(index.writer())
        .await?;
        let owner: i64 = sqlx::query_scalar("SELECT user_id FROM user_emails WHERE email = $1")
            .bind(email.as_str())
            .fetch_one(index.pool())
            .await?;
        if owner != user.as_i64() {
            report.conflicts.push(format!("{stored} -> {email} (held by account {owner})"));
            return Ok(());
        }
        let updated = sqlx::query("UPDATE users SET email = $2 WHERE user_id = $1")
            .bind(user.as_i64())
            .bind(email.as_str())
            .execute(self.shards.for_user(user).writer())
            .await;
        if let Err(sqlx::Error::Database(e)) = &updated
            && e.is_unique_violation()
        {
            // A row without an index entry (a crashed registration) holds the normal form on
            // this database: give the claim back and leave both to the operator.
            sqlx::query("DELETE FROM user_emails WHERE email = $1 AND user_id = $2")
                .bind(email.as_str())
                .bind(user.as_i64())
                .execute(index.writer())
                .await?;
            report.conflicts.push(format!("{stored} -> {email} (another row holds it)"));
            return Ok(());
        }
        updated?;
        for db in self.shards.databases() {
            sqlx::query("UPDATE list_collaborators SET email = $2 WHERE user_id = $1")
                .bind(user.as_i64())
                .bind(email.as_str())
                .execute(db.writer())
                .await?;
        }
        let old = Email::stored_before_normalisation(stored);
        sqlx::query("DELETE FROM user_emails WHERE email = $1 AND user_id = $2")
            .bind(old.as_str())
            .bind(user.as_i64())
            .execute(self.shards.for_email(&old).writer())
            .await?;
        report.accounts += 1;
        Ok(())
    }

    /// Moves the invitations of `old` to `email` (an invitation already there wins).
    async fn move_invitations(&self, old: &Email, email: &Email) -> Result<u64, StoreError> {
        let from = self.shards.for_email(old);
        let rows = sqlx::query(
            "SELECT list_id, role, invited_by, created_at FROM pending_invitations
             WHERE email = $1",
        )
        .bind(old.as_str())
        .fetch_all(from.pool())
        .await?;
        for row in &rows {
            sqlx::query(
                "INSERT INTO pending_invitations (email, list_id, role, invited_by, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (email, list_id) DO NOTHING",
            )
            .bind(email.as_str())
            .bind(row.try_get::<i64, _>(0)?)
            .bind(row.try_get::<i64, _>(1)?)
            .bind(row.try_get::<i64, _>(2)?)
            .bind(row.try_get::<i64, _>(3)?)
            .execute(self.shards.for_email(email).writer())
            .await?;
        }
        sqlx::query("DELETE FROM pending_invitations WHERE email = $1")
            .bind(old.as_str())
            .execute(from.writer())
            .await?;
        Ok(rows.len() as u64)
    }
}
