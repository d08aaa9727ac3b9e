//! `Client::history`: a list's verified history, from the server (REST). No lock is held
//! while the request is in flight.

use tandem_protocol::ListId;

use super::Client;
use crate::history::{HistoryPage, HistoryQuery};
use crate::store::{account, lists};
use crate::{Error, Result};

impl Client {
    /// A page of `list`'s history from the server, newest first: who made each change and
    /// when the server accepted it. `HistoryQuery::default()` is the newest page;
    /// `HistoryQuery::item(id)` only the changes to one item ("who checked this off"); follow
    /// [`HistoryPage::next_before`] with [`HistoryQuery::before`] for older ones. Needs the
    /// network and a sign-in; a list created offline has no history until it synced.
    pub async fn history(&self, list: ListId, query: HistoryQuery) -> Result<HistoryPage> {
        let token = {
            let guard = self.lock();
            if lists::get(&guard.conn, list)?.is_some_and(|row| row.provisional && !row.deleted) {
                return Err(Error::Conflict(format!(
                    "list {list} was created offline and is not on the server yet; sync first"
                )));
            }
            account::get(&guard.conn)?
                .and_then(|a| a.token)
                .ok_or_else(|| Error::Unauthorized("not signed in: run login first".into()))?
        };
        self.rest.history(&token, list, &query).await
    }
}
