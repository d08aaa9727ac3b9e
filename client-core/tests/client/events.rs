//! Subscribers hear about every committed change, with the list and the kind.

use std::sync::{Arc, Mutex};

use tandem_client::{ChangeEvent, ChangeKind, ListId, Role};

use super::fresh;

#[test]
fn subscribers_receive_one_event_per_change() {
    let (_dir, client) = fresh();
    let client = Arc::new(client);
    let seen: Arc<Mutex<Vec<ChangeEvent>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let weak = Arc::downgrade(&client);
    let sub = client.subscribe(move |event| {
        // Listeners may call back into the client.
        if let Some(client) = weak.upgrade() {
            let _ = client.lists();
        }
        sink.lock().unwrap().push(event.clone());
    });
    let list = client.create_list("L").unwrap();
    let a = client.add_item(list.id, "a").unwrap();
    client.edit_item(list.id, a, "a").unwrap(); // same text: no change, no event
    client.set_done(list.id, a, true).unwrap();
    client.rename_list(list.id, "M").unwrap();
    client.remap_list_id(list.id, ListId(9)).unwrap();
    client.track_list(ListId(9), "M", Role::Editor).unwrap();
    client.delete_list(ListId(9)).unwrap_err(); // editors cannot delete: no event
    client.track_list(ListId(9), "M", Role::Owner).unwrap();
    client.delete_list(ListId(9)).unwrap();
    assert!(client.unsubscribe(sub));
    client.create_list("unheard").unwrap();

    let kinds: Vec<(ListId, ChangeKind)> =
        seen.lock().unwrap().iter().map(|e| (e.list_id, e.kind.clone())).collect();
    assert_eq!(
        kinds,
        [
            (list.id, ChangeKind::Created),
            (list.id, ChangeKind::ItemsChanged),
            (list.id, ChangeKind::ItemsChanged),
            (list.id, ChangeKind::Renamed),
            (ListId(9), ChangeKind::IdRemapped { old: list.id }),
            (ListId(9), ChangeKind::RoleChanged),
            (ListId(9), ChangeKind::RoleChanged),
            (ListId(9), ChangeKind::Deleted),
        ]
    );
    let json = serde_json::to_string(&seen.lock().unwrap()[4]).unwrap();
    assert_eq!(json, format!(r#"{{"list_id":9,"kind":"id_remapped","old":{}}}"#, list.id));
}
