//! Runs one parsed command against the client and prints its result.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tandem_client::history::{ChangeAction, HistoryPage, HistoryQuery};
use tandem_client::{Client, Error, Item, ItemId, ListId, Role};

use crate::output::emit;
use crate::{Cli, Command};

fn list_id(raw: u64) -> Result<ListId, Error> {
    let id = ListId(raw);
    if id.is_valid() {
        Ok(id)
    } else {
        Err(Error::InvalidInput(format!("{raw} is not a valid list id")))
    }
}

fn item_id(raw: u64) -> Result<ItemId, Error> {
    let id = ItemId(raw);
    if id.is_valid() {
        Ok(id)
    } else {
        Err(Error::InvalidInput(format!("{raw} is not a valid item id")))
    }
}

/// The item as stored now, for printing after a change.
fn item_after(client: &Client, list: ListId, item: ItemId) -> Result<Item, Error> {
    client
        .list(list)?
        .items
        .into_iter()
        .find(|i| i.id == item)
        .ok_or_else(|| Error::NotFound(format!("no item {item} in list {list}")))
}

fn print_item_text(item: &Item) -> String {
    format!("[{}] {}  {}", if item.done { "x" } else { " " }, item.id, item.content)
}

/// One page of history as text: a line per change (when, who, what), then how to get the
/// older page if there is one.
fn print_history(list: ListId, query: &HistoryQuery, page: &HistoryPage) -> String {
    let mut lines: Vec<String> = page
        .changes
        .iter()
        .map(|change| {
            let who = change.email.clone().unwrap_or_else(|| format!("user {}", change.user_id));
            let what: Vec<String> = change.actions.iter().map(action_text).collect();
            format!("{}  {who}  {}", change.accepted_at, what.join(", "))
        })
        .collect();
    if lines.is_empty() {
        lines.push("No changes recorded.".into());
    }
    if let Some(cursor) = page.next_before {
        let item = query.item.map(|i| format!(" --item {i}")).unwrap_or_default();
        lines.push(format!("Older changes: tandem history {list}{item} --before {cursor}"));
    }
    lines.join("\n")
}

fn action_text(action: &ChangeAction) -> String {
    match action {
        ChangeAction::Created => "created the list".into(),
        ChangeAction::Renamed => "renamed the list".into(),
        ChangeAction::Added { item } => format!("added item {item}"),
        ChangeAction::Edited { item } => format!("edited item {item}"),
        ChangeAction::Checked { item } => format!("checked item {item}"),
        ChangeAction::Unchecked { item } => format!("unchecked item {item}"),
        ChangeAction::Moved { item } => format!("moved item {item}"),
        ChangeAction::Removed { item } => format!("removed item {item}"),
    }
}

/// How long `tandem sync` waits for every list to be in step, unless `--timeout` says.
pub const DEFAULT_SYNC_TIMEOUT_SECS: u64 = 30;

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the network runtime")
}

/// Runs `cli`'s command, writing its output to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> anyhow::Result<()> {
    let json = cli.json;
    let client = cli.open_client()?;
    match &cli.command {
        Command::Register { email, password } => {
            let outcome = runtime()?.block_on(client.register(email, password))?;
            emit(out, json, &outcome, || match &outcome.demo_code {
                Some(code) => format!("Verification code (demo server): {code}"),
                None => format!("Verification code sent to {email}."),
            })?;
        }
        Command::Verify { email, code } => {
            runtime()?.block_on(client.verify(email, code))?;
            emit(out, json, &json!({ "email": email, "verified": true }), || {
                format!("Account {email} verified; you can log in.")
            })?;
        }
        Command::Login { email, password } => {
            let user = runtime()?.block_on(client.login(email, password))?;
            emit(out, json, &user, || format!("Signed in as {} (user {}).", user.email, user.id))?;
        }
        Command::Logout => {
            client.logout()?;
            emit(out, json, &json!({ "signed_in": false }), || "Signed out.".into())?;
        }
        Command::Lists => {
            let lists = client.lists()?;
            emit(out, json, &lists, || {
                lists
                    .iter()
                    .map(|l| format!("{}\t{}\t{}", l.id, l.role, l.title))
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
        }
        Command::Show { list } => {
            let list = client.list(list_id(*list)?)?;
            emit(out, json, &list, || {
                let mut text = format!("{} (list {}, {})", list.title, list.id, list.role);
                for item in &list.items {
                    text.push('\n');
                    text.push_str(&print_item_text(item));
                }
                text
            })?;
        }
        Command::Create { title } => {
            let list = client.create_list(title)?;
            emit(out, json, &list, || list.id.to_string())?;
        }
        Command::Rename { list, title } => {
            let id = list_id(*list)?;
            client.rename_list(id, title)?;
            emit(out, json, &json!({ "id": id, "title": title }), || {
                format!("Renamed list {id}.")
            })?;
        }
        Command::Delete { list } => {
            let id = list_id(*list)?;
            client.delete_list(id)?;
            emit(out, json, &json!({ "id": id, "deleted": true }), || {
                format!("Deleted list {id}.")
            })?;
        }
        Command::Share { list, email, role } => {
            let id = list_id(*list)?;
            let role = Role::from(*role);
            let message = runtime()?.block_on(client.share_list(id, email, role))?;
            let value =
                json!({ "list_id": id, "email": email, "permission": role, "message": message });
            emit(out, json, &value, || message.clone())?;
        }
        Command::Unshare { list, email } => {
            let id = list_id(*list)?;
            let message = runtime()?.block_on(client.unshare_list(id, email))?;
            let value = json!({ "list_id": id, "email": email, "message": message });
            emit(out, json, &value, || message.clone())?;
        }
        Command::Add { list, text } => {
            let id = list_id(*list)?;
            let item = client.add_item(id, text)?;
            let shown = item_after(&client, id, item)?;
            emit(out, json, &shown, || item.to_string())?;
        }
        Command::Edit { list, item, text } => {
            let (id, item) = (list_id(*list)?, item_id(*item)?);
            client.edit_item(id, item, text)?;
            let shown = item_after(&client, id, item)?;
            emit(out, json, &shown, || print_item_text(&shown))?;
        }
        Command::Done { list, item } | Command::Undone { list, item } => {
            let (id, item) = (list_id(*list)?, item_id(*item)?);
            client.set_done(id, item, matches!(cli.command, Command::Done { .. }))?;
            let shown = item_after(&client, id, item)?;
            emit(out, json, &shown, || print_item_text(&shown))?;
        }
        Command::Move { list, item, first: _, after } => {
            let (id, item) = (list_id(*list)?, item_id(*item)?);
            let after = after.map(item_id).transpose()?;
            client.move_item(id, item, after)?;
            let shown = item_after(&client, id, item)?;
            emit(out, json, &shown, || match after {
                Some(after) => format!("Moved item {item} after item {after}."),
                None => format!("Moved item {item} to the top."),
            })?;
        }
        Command::Remove { list, item } => {
            let (id, item) = (list_id(*list)?, item_id(*item)?);
            client.remove_item(id, item)?;
            emit(out, json, &json!({ "id": item, "removed": true }), || {
                format!("Removed item {item}.")
            })?;
        }
        Command::History { list, item, before, limit } => {
            let id = list_id(*list)?;
            let query = HistoryQuery {
                item: item.map(item_id).transpose()?,
                before: *before,
                limit: *limit,
            };
            let page = runtime()?.block_on(client.history(id, query))?;
            emit(out, json, &page, || print_history(id, &query, &page))?;
        }
        Command::Sync { timeout } => {
            let timeout = Duration::from_secs(timeout.unwrap_or(DEFAULT_SYNC_TIMEOUT_SECS));
            crate::sync::sync(client, timeout, json, out)?;
        }
        Command::Watch { list } => {
            let filter = list.map(list_id).transpose()?;
            crate::sync::watch(client, filter, json, out)?;
        }
    }
    Ok(())
}
