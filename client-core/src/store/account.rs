//! The `account` table: the server this store talks to, the signed-in user, and this
//! device's Automerge actor id for that user.

use rusqlite::{Connection, OptionalExtension, params};
use tandem_protocol::UserId;

use crate::Error;

/// The stored account row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    /// The server's base URL, e.g. `http://127.0.0.1:8080`.
    pub server_url: String,
    /// The signed-in user, if any.
    pub user_id: Option<UserId>,
    /// That user's email.
    pub email: Option<String>,
    /// The bearer token; `None` when signed out.
    pub token: Option<String>,
    /// The Automerge actor id every document on this device makes its changes with, drawn at
    /// each sign-in (see [`new_device_actor`]); `None` before the first.
    pub device_actor: Option<Vec<u8>>,
}

/// Bytes in a device actor id (as many as Automerge's own random actors).
pub const DEVICE_ACTOR_BYTES: usize = 16;

/// A new device actor id: random, so no two devices or sign-ins share one.
pub fn new_device_actor() -> Vec<u8> {
    rand::random::<[u8; DEVICE_ACTOR_BYTES]>().to_vec()
}

/// The account row, if one was ever written.
pub fn get(conn: &Connection) -> Result<Option<AccountRow>, Error> {
    let row = conn
        .prepare_cached(
            "SELECT server_url, user_id, email, token, device_actor FROM account WHERE id = 1",
        )?
        .query_row([], |r| {
            Ok(AccountRow {
                server_url: r.get(0)?,
                user_id: r.get::<_, Option<i64>>(1)?.map(|id| UserId(id as u64)),
                email: r.get(2)?,
                token: r.get(3)?,
                device_actor: r.get(4)?,
            })
        })
        .optional()?;
    Ok(row)
}

/// The device actor id, if someone signed in on this store.
pub fn device_actor(conn: &Connection) -> Result<Option<Vec<u8>>, Error> {
    Ok(conn
        .prepare_cached("SELECT device_actor FROM account WHERE id = 1")?
        .query_row([], |r| r.get::<_, Option<Vec<u8>>>(0))
        .optional()?
        .flatten())
}

/// Writes the whole account row.
pub fn put(conn: &Connection, row: &AccountRow) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO account (id, server_url, user_id, email, token, device_actor)
         VALUES (1, ?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET server_url = excluded.server_url,
             user_id = excluded.user_id, email = excluded.email, token = excluded.token,
             device_actor = excluded.device_actor",
    )?
    .execute(params![
        row.server_url,
        row.user_id.map(|u| u.as_i64()),
        row.email,
        row.token,
        row.device_actor
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrations;

    fn row(user: Option<u64>, device_actor: Option<Vec<u8>>) -> AccountRow {
        AccountRow {
            server_url: "http://127.0.0.1:8080".into(),
            user_id: user.map(UserId),
            email: user.map(|_| "a@example.com".into()),
            token: user.map(|_| "t".into()),
            device_actor,
        }
    }

    #[test]
    fn the_device_actor_is_kept_with_the_account() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(dir.path()).unwrap();
        assert_eq!(device_actor(&conn).unwrap(), None, "no account row yet");
        put(&conn, &row(None, None)).unwrap();
        assert_eq!(device_actor(&conn).unwrap(), None, "never signed in");
        let actor = new_device_actor();
        assert_eq!(actor.len(), DEVICE_ACTOR_BYTES);
        assert_ne!(actor, new_device_actor());
        put(&conn, &row(Some(7), Some(actor.clone()))).unwrap();
        assert_eq!(device_actor(&conn).unwrap(), Some(actor.clone()));
        assert_eq!(get(&conn).unwrap().unwrap().device_actor, Some(actor));
    }

    #[test]
    fn a_store_signed_in_before_the_upgrade_gets_its_actor_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("v1.db")).unwrap();
        conn.execute_batch(include_str!("../../migrations/0001_initial.sql")).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO account (id, server_url, user_id, email, token)
             VALUES (1, 'http://h', 7, 'a@example.com', 't')",
            [],
        )
        .unwrap();
        migrations::apply(&mut conn).unwrap();
        let actor = device_actor(&conn).unwrap().expect("an actor for the signed-in user");
        assert_eq!(actor.len(), DEVICE_ACTOR_BYTES);
    }
}
