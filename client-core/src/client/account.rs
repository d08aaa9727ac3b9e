//! Account and sharing calls: they go to the server's REST API and need the network. No lock
//! is held while a request is in flight.

use serde::Serialize;
use tandem_protocol::automerge::ActorId;
use tandem_protocol::{ListId, Role};

use super::{Client, Inner};
use crate::rest::{MAX_RESERVE, RegisterOutcome, User};
use crate::store::{account, lists, reserved_ids};
use crate::{Error, Result};

/// Below this many reserved list ids, signing in asks the server for more.
pub const RESERVE_LOW_WATER: usize = 5;
/// How many reserved ids the client tries to keep.
pub const RESERVE_TARGET: usize = 20;

/// Who this store is signed in as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// The server the account belongs to.
    pub server_url: String,
    /// The user, once someone signed in on this store.
    pub user: Option<User>,
    /// Whether a token is stored (signed in).
    pub signed_in: bool,
}

fn check_email(email: &str) -> Result<()> {
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty());
    if ok { Ok(()) } else { Err(Error::InvalidInput(format!("{email:?} is not an email address"))) }
}

impl Client {
    /// The stored account, if any.
    pub fn account(&self) -> Result<Option<Account>> {
        let guard = self.lock();
        Ok(account::get(&guard.conn)?.map(|row| Account {
            server_url: row.server_url,
            user: match (row.user_id, row.email) {
                (Some(id), Some(email)) => Some(User { id, email }),
                _ => None,
            },
            signed_in: row.token.is_some(),
        }))
    }

    /// Creates an account on the server; a verification code is sent by email (or, on a demo
    /// server, returned here).
    pub async fn register(&self, email: &str, password: &str) -> Result<RegisterOutcome> {
        check_email(email)?;
        self.rest.register(email, password).await
    }

    /// Confirms an account with the code from [`Client::register`].
    pub async fn verify(&self, email: &str, code: &str) -> Result<()> {
        check_email(email)?;
        self.rest.verify(email, code).await
    }

    /// Signs in and stores the token, with a new device actor: every change made on this
    /// device from now on (until the next sign-in) carries it, and the server binds it to
    /// this user. Then tops up the pool of reserved list ids (best effort: a failure there is
    /// logged, the sign-in still succeeds).
    pub async fn login(&self, email: &str, password: &str) -> Result<User> {
        check_email(email)?;
        let data = self.rest.login(email, password).await?;
        {
            let mut guard = self.lock();
            let Inner { conn, docs } = &mut *guard;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let actor = account::new_device_actor();
            account::put(
                &tx,
                &account::AccountRow {
                    server_url: self.rest.base().to_owned(),
                    user_id: Some(data.user.id),
                    email: Some(data.user.email.clone()),
                    token: Some(data.token),
                    device_actor: Some(actor.clone()),
                },
            )?;
            // Ids reserved for someone else are of no use to this user.
            reserved_ids::keep_only(&tx, data.user.id)?;
            tx.commit()?;
            for cached in docs.values_mut() {
                cached.doc.automerge_mut().set_actor(ActorId::from(actor.as_slice()));
            }
        }
        if let Err(e) = self.refill_reserved_ids().await {
            tracing::warn!(error = %e, "could not reserve list ids after login");
        }
        Ok(data.user)
    }

    /// Forgets the token. Lists stay on the device and usable offline.
    pub fn logout(&self) -> Result<()> {
        let guard = self.lock();
        if let Some(mut row) = account::get(&guard.conn)? {
            row.token = None;
            account::put(&guard.conn, &row)?;
        }
        Ok(())
    }

    /// Asks the server for more reserved list ids when fewer than `RESERVE_LOW_WATER` (5) are
    /// left; returns how many are now in the pool. The sync engine calls this whenever it
    /// is connected.
    pub async fn refill_reserved_ids(&self) -> Result<usize> {
        let (token, user, have) = {
            let guard = self.lock();
            let row = account::get(&guard.conn)?;
            let (token, user) = match row {
                Some(account::AccountRow { token: Some(t), user_id: Some(u), .. }) => (t, u),
                _ => return Err(Error::Unauthorized("not signed in".into())),
            };
            let have = reserved_ids::count(&guard.conn, user)?;
            (token, user, have)
        };
        if have >= RESERVE_LOW_WATER {
            return Ok(have);
        }
        let ids = self.rest.reserve_ids(&token, (RESERVE_TARGET - have).min(MAX_RESERVE)).await?;
        let guard = self.lock();
        reserved_ids::add(&guard.conn, user, &ids)?;
        reserved_ids::count(&guard.conn, user)
    }

    /// How many reserved list ids are left for the signed-in user.
    pub fn reserved_id_count(&self) -> Result<usize> {
        let guard = self.lock();
        match account::get(&guard.conn)?.and_then(|a| a.user_id) {
            Some(user) => reserved_ids::count(&guard.conn, user),
            None => Ok(0),
        }
    }

    /// Shares a list with another user as EDITOR or VIEWER (OWNER only). Returns the
    /// server's message.
    pub async fn share_list(&self, list: ListId, email: &str, role: Role) -> Result<String> {
        check_email(email)?;
        if role == Role::Owner {
            return Err(Error::InvalidInput(
                "a list can be shared as EDITOR or VIEWER only".into(),
            ));
        }
        let token = self.token_for_sharing(list)?;
        self.rest.share(&token, list, email, role).await
    }

    /// Stops sharing a list with a user (OWNER only). Returns the server's message.
    pub async fn unshare_list(&self, list: ListId, email: &str) -> Result<String> {
        check_email(email)?;
        let token = self.token_for_sharing(list)?;
        self.rest.unshare(&token, list, email).await
    }

    /// The token, after checking locally what can be checked without the server.
    fn token_for_sharing(&self, list: ListId) -> Result<String> {
        let guard = self.lock();
        if let Some(row) = lists::get(&guard.conn, list)?.filter(|r| !r.deleted) {
            if !row.role.can_share() {
                return Err(Error::Forbidden(format!(
                    "only the owner can share list {list}; you are {}",
                    row.role
                )));
            }
            if row.provisional {
                return Err(Error::Conflict(format!(
                    "list {list} was created offline and is not on the server yet; sync first"
                )));
            }
        }
        account::get(&guard.conn)?
            .and_then(|a| a.token)
            .ok_or_else(|| Error::Unauthorized("not signed in: run login first".into()))
    }
}
