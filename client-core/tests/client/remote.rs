//! Two devices exchanging document bytes (as the sync engine will): concurrent edits merge
//! and both stores end identical; malformed documents are refused.

use tandem_client::{Error, ListId, Role};
use tandem_protocol::ListDoc;

use super::{fresh, reopen};

#[test]
fn concurrent_offline_edits_on_two_devices_merge() {
    let (dir_a, a) = fresh();
    let (_dir_b, b) = fresh();
    let list = a.create_list("Trip").unwrap();
    let tent = a.add_item(list.id, "pack tent").unwrap();
    let food = a.add_item(list.id, "buy food").unwrap();
    b.track_list(list.id, "Trip", Role::Editor).unwrap();
    assert!(b.apply_remote_changes(list.id, &a.document_bytes(list.id).unwrap()).unwrap());

    // Offline on both.
    a.edit_item(list.id, tent, "pack big tent").unwrap();
    b.edit_item(list.id, tent, "pack tent and poles").unwrap();
    b.move_item(list.id, food, None).unwrap();
    a.set_done(list.id, food, true).unwrap();
    let maps = b.add_item(list.id, "print maps").unwrap();

    // Exchange.
    b.apply_remote_changes(list.id, &a.document_bytes(list.id).unwrap()).unwrap();
    a.apply_remote_changes(list.id, &b.document_bytes(list.id).unwrap()).unwrap();
    let (on_a, on_b) = (reopen(&dir_a).list(list.id).unwrap(), b.list(list.id).unwrap());
    assert_eq!(on_a.items, on_b.items);
    let texts: Vec<_> = on_a.items.iter().map(|i| (i.id, i.content.as_str(), i.done)).collect();
    assert_eq!(
        texts,
        [
            (food, "buy food", true),
            (tent, "pack big tent and poles", false),
            (maps, "print maps", false)
        ]
    );
    // Nothing new: no change.
    assert!(!a.apply_remote_changes(list.id, &b.document_bytes(list.id).unwrap()).unwrap());
}

#[test]
fn malformed_remote_documents_are_refused_and_nothing_is_kept() {
    let (_dir, client) = fresh();
    let list = client.create_list("L").unwrap();
    client.add_item(list.id, "a").unwrap();
    let before = client.list(list.id).unwrap();
    let mut junk = tandem_protocol::automerge::AutoCommit::new();
    use tandem_protocol::automerge::transaction::Transactable;
    junk.put(tandem_protocol::automerge::ROOT, "title", 5).unwrap();
    junk.put(tandem_protocol::automerge::ROOT, "junk", 1).unwrap();
    let refused = client.apply_remote_changes(list.id, &junk.save());
    assert!(matches!(refused, Err(Error::InvalidInput(_))), "{refused:?}");
    // Garbage is either refused or ignored; it never changes the list.
    assert!(!matches!(client.apply_remote_changes(list.id, b"garbage"), Ok(true)));
    assert_eq!(client.list(list.id).unwrap(), before);
    client.add_item(list.id, "b").unwrap();
    let doc = ListDoc::load(&client.document_bytes(list.id).unwrap()).unwrap();
    doc.validate().unwrap();
    assert!(matches!(client.apply_remote_changes(ListId(1), &[]), Err(Error::NotFound(_))));
}

#[test]
fn remote_changes_rewrite_the_rows_they_touch_and_malformed_items_are_refused() {
    use tandem_protocol::ItemId;
    use tandem_protocol::automerge::transaction::Transactable;
    use tandem_protocol::automerge::{ObjType, ROOT, ReadDoc};

    let (dir, client) = fresh();
    let list = ListId(42);
    let mut remote = ListDoc::new("Long").unwrap();
    for i in 1..=50 {
        remote.add_item(ItemId(i), &format!("item {i}")).unwrap();
    }
    client.track_list(list, "", Role::Editor).unwrap();
    assert!(client.apply_remote_changes(list, &remote.save()).unwrap());
    let same = |client: &tandem_client::Client, remote: &ListDoc| {
        let shown = client.list(list).unwrap();
        assert_eq!(shown.items, remote.items().unwrap());
        assert_eq!(shown.title, remote.title().unwrap());
    };
    same(&client, &remote);

    // One kind of change at a time, each sent as the changes since the last exchange.
    let edits: [fn(&mut ListDoc); 7] = [
        |d| d.edit_content(ItemId(7), "seventh, edited").unwrap(),
        |d| d.set_done(ItemId(8), true).unwrap(),
        |d| d.remove_item(ItemId(9)).unwrap(),
        |d| d.move_to_first(ItemId(50)).unwrap(),
        |d| drop(d.move_after(ItemId(1), ItemId(30)).unwrap()),
        |d| drop(d.add_item(ItemId(51), "new").unwrap()),
        |d| d.set_title("Longer").unwrap(),
    ];
    for edit in &edits {
        let heads = remote.heads();
        edit(&mut remote);
        assert!(client.apply_remote_changes(list, &remote.save_after(&heads)).unwrap());
        same(&client, &remote);
    }

    // An item made malformed (its `done` a string): refused, rows and document kept.
    let before = client.list(list).unwrap();
    let mut bad = remote.clone();
    let heads = bad.heads();
    let am = bad.automerge_mut();
    let (_, items) = am.get(ROOT, "items").unwrap().unwrap();
    let (_, item) = am.get(&items, "10").unwrap().unwrap();
    am.put(&item, "done", "yes").unwrap();
    am.commit();
    let refused = client.apply_remote_changes(list, &bad.save_after(&heads));
    assert!(matches!(refused, Err(Error::InvalidInput(_))), "{refused:?}");
    // And a malformed new item.
    let mut bad = remote.clone();
    let heads = bad.heads();
    let am = bad.automerge_mut();
    let (_, items) = am.get(ROOT, "items").unwrap().unwrap();
    am.put_object(&items, "123", ObjType::List).unwrap();
    am.commit();
    let refused = client.apply_remote_changes(list, &bad.save_after(&heads));
    assert!(matches!(refused, Err(Error::InvalidInput(_))), "{refused:?}");
    assert_eq!(client.list(list).unwrap(), before);
    same(&reopen(&dir), &remote);
}
