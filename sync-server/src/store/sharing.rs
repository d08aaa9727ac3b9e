//! Members of a list and pending invitations.
//!
//! Sharing with a verified account writes the membership on the list shard (authoritative),
//! then the member's list index. Sharing with an email that has no verified account records a
//! pending invitation on the email's shard; [`Store::accept_invitations`] turns it into a
//! membership when that email is verified or logs in.

use sqlx::Row;
use tandem_protocol::{ListId, Role, UserId};

use super::lists::{access_in, insert_collaborator, role_from};
use super::{Store, StoreError, now_ms};
use crate::auth::email::Email;

/// Whom a share reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareOutcome {
    /// A verified account is now a member with the role.
    Member(UserId),
    /// The email has no verified account yet; the invitation waits for it.
    Invited,
}

impl Store {
    /// Shares `list` with `target_email` as `role` (EDITOR or VIEWER), for `actor`, who must be
    /// the owner. Sharing again changes the role.
    pub async fn share(
        &self,
        list: ListId,
        actor: UserId,
        target_email: &Email,
        role: Role,
    ) -> Result<ShareOutcome, StoreError> {
        if role == Role::Owner {
            return Err(StoreError::Invalid(
                "A list has one owner; share as EDITOR or VIEWER.".into(),
            ));
        }
        let target = self.user_by_email(target_email).await?.filter(|u| u.verified);
        let now = now_ms();
        let mut tx = self.shards.for_list(list).begin_write().await?;
        let access = access_in(&mut tx, list, actor).await?;
        if !access.role.can_share() {
            return Err(StoreError::Forbidden("Only the owner can share a list.".into()));
        }
        let Some(target) = target else {
            tx.commit().await?;
            sqlx::query(
                "INSERT INTO pending_invitations (email, list_id, role, invited_by, created_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (email, list_id) DO UPDATE SET role = excluded.role",
            )
            .bind(target_email.as_str())
            .bind(list.as_i64())
            .bind(role.code())
            .bind(actor.as_i64())
            .bind(now)
            .execute(self.shards.for_email(target_email).writer())
            .await?;
            return Ok(ShareOutcome::Invited);
        };
        if target.id == access.list.owner {
            return Err(StoreError::Invalid("This list belongs to that user already.".into()));
        }
        insert_collaborator(&mut tx, list, target.id, &target.email, role, now).await?;
        tx.commit().await?;
        self.index_put(target.id, list, role).await?;
        Ok(ShareOutcome::Member(target.id))
    }

    /// Removes `target_email` from `list` for `actor`: the owner may remove anyone but
    /// themselves; any member may remove themselves. Also cancels a pending invitation.
    /// Returns the account removed, if it was a member.
    pub async fn unshare(
        &self,
        list: ListId,
        actor: UserId,
        target_email: &Email,
    ) -> Result<Option<UserId>, StoreError> {
        let target = self.user_id_by_email(target_email).await?;
        let mut tx = self.shards.for_list(list).begin_write().await?;
        let access = access_in(&mut tx, list, actor).await?;
        let leaving = target == Some(actor);
        if leaving && access.role == Role::Owner {
            return Err(StoreError::Invalid(
                "The owner cannot leave their own list; delete it instead.".into(),
            ));
        }
        if !leaving && !access.role.can_share() {
            return Err(StoreError::Forbidden("Only the owner can remove other members.".into()));
        }
        let removed = match target {
            Some(user) => {
                sqlx::query("DELETE FROM list_collaborators WHERE list_id = $1 AND user_id = $2")
                    .bind(list.as_i64())
                    .bind(user.as_i64())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            }
            None => 0,
        };
        tx.commit().await?;
        if let Some(user) = target.filter(|_| removed > 0) {
            self.index_remove(user, list).await?;
        }
        let cancelled =
            sqlx::query("DELETE FROM pending_invitations WHERE email = $1 AND list_id = $2")
                .bind(target_email.as_str())
                .bind(list.as_i64())
                .execute(self.shards.for_email(target_email).writer())
                .await?
                .rows_affected();
        if removed + cancelled == 0 {
            return Err(StoreError::Invalid(format!(
                "{target_email} is not a member of this list."
            )));
        }
        Ok(target.filter(|_| removed > 0))
    }

    /// Turns the pending invitations of a verified account's email into memberships (lists
    /// deleted meanwhile are skipped), then deletes them. Idempotent: run on verify and login.
    pub async fn accept_invitations(
        &self,
        user: UserId,
        email: &Email,
    ) -> Result<usize, StoreError> {
        let email_db = self.shards.for_email(email);
        let rows = sqlx::query("SELECT list_id, role FROM pending_invitations WHERE email = $1")
            .bind(email.as_str())
            .fetch_all(email_db.pool())
            .await?;
        let mut accepted = 0;
        for row in rows {
            let list = ListId(row.try_get::<i64, _>(0)? as u64);
            let role = role_from(row.try_get(1)?)?;
            let now = now_ms();
            let mut tx = self.shards.for_list(list).begin_write().await?;
            let live: Option<i64> = sqlx::query_scalar(
                "SELECT owner_id FROM todo_lists WHERE list_id = $1 AND is_deleted = 0",
            )
            .bind(list.as_i64())
            .fetch_optional(&mut *tx)
            .await?;
            if live.is_some_and(|owner| owner != user.as_i64()) {
                insert_collaborator(&mut tx, list, user, email.as_str(), role, now).await?;
                tx.commit().await?;
                self.index_put(user, list, role).await?;
                accepted += 1;
            } else {
                tx.commit().await?;
            }
            sqlx::query("DELETE FROM pending_invitations WHERE email = $1 AND list_id = $2")
                .bind(email.as_str())
                .bind(list.as_i64())
                .execute(email_db.writer())
                .await?;
        }
        Ok(accepted)
    }
}
