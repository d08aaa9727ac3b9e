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
