//! The `account` table: the server this store talks to and the signed-in user.

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
}

/// The account row, if one was ever written.
pub fn get(conn: &Connection) -> Result<Option<AccountRow>, Error> {
    let row = conn
        .prepare_cached("SELECT server_url, user_id, email, token FROM account WHERE id = 1")?
        .query_row([], |r| {
            Ok(AccountRow {
                server_url: r.get(0)?,
                user_id: r.get::<_, Option<i64>>(1)?.map(|id| UserId(id as u64)),
                email: r.get(2)?,
                token: r.get(3)?,
            })
        })
        .optional()?;
    Ok(row)
}

/// Writes the whole account row.
pub fn put(conn: &Connection, row: &AccountRow) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO account (id, server_url, user_id, email, token) VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET server_url = excluded.server_url,
             user_id = excluded.user_id, email = excluded.email, token = excluded.token",
    )?
    .execute(params![
        row.server_url,
        row.user_id.map(|u| u.as_i64()),
        row.email,
        row.token
    ])?;
    Ok(())
}
