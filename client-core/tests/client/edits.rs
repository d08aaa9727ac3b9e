//! Every kind of edit, checked in the same client and again after reopening the store.

use tandem_client::{Error, ListId, Role};

use super::{fresh, reopen};

fn contents(client: &tandem_client::Client, list: ListId) -> Vec<(String, bool)> {
    client.list(list).unwrap().items.into_iter().map(|i| (i.content, i.done)).collect()
}

#[test]
fn every_kind_of_edit_survives_reopening() {
    let (dir, client) = fresh();
    let list = client.create_list("Groceries").unwrap();
    assert_eq!(list.role, Role::Owner);
    let milk = client.add_item(list.id, "milk").unwrap();
    let eggs = client.add_item(list.id, "eggs").unwrap();
    let bread = client.add_item(list.id, "bread").unwrap();
    let mut expected =
        vec![("milk".to_owned(), false), ("eggs".to_owned(), false), ("bread".to_owned(), false)];
    let check = |expected: &Vec<(String, bool)>, title: &str| {
        for c in [&client, &reopen(&dir)] {
            assert_eq!(&contents(c, list.id), expected);
            assert_eq!(c.list(list.id).unwrap().title, title);
            assert_eq!(c.lists().unwrap()[0].title, title);
        }
    };
    check(&expected, "Groceries");

    client.edit_item(list.id, milk, "oat milk").unwrap();
    expected[0].0 = "oat milk".into();
    check(&expected, "Groceries");

    client.set_done(list.id, eggs, true).unwrap();
    expected[1].1 = true;
    check(&expected, "Groceries");

    client.move_item(list.id, bread, None).unwrap();
    expected.rotate_right(1);
    check(&expected, "Groceries");

    client.move_item(list.id, bread, Some(eggs)).unwrap();
    expected.rotate_left(1);
    check(&expected, "Groceries");

    client.remove_item(list.id, milk).unwrap();
    expected.remove(0);
    check(&expected, "Groceries");

    client.rename_list(list.id, "Shop").unwrap();
    check(&expected, "Shop");

    client.set_done(list.id, eggs, false).unwrap();
    expected[0].1 = false;
    check(&expected, "Shop");

    client.delete_list(list.id).unwrap();
    for c in [&client, &reopen(&dir)] {
        assert!(c.lists().unwrap().is_empty());
        assert!(matches!(c.list(list.id), Err(Error::NotFound(_))));
        assert_eq!(c.pending_deletions().unwrap(), [list.id]);
    }
}

#[test]
fn edits_after_reopen_continue_the_same_document() {
    let (dir, client) = fresh();
    let list = client.create_list("L").unwrap();
    let a = client.add_item(list.id, "a").unwrap();
    drop(client);
    let client = reopen(&dir);
    let b = client.add_item(list.id, "b").unwrap();
    client.move_item(list.id, b, None).unwrap();
    client.edit_item(list.id, a, "a2").unwrap();
    drop(client);
    let client = reopen(&dir);
    let items = client.list(list.id).unwrap().items;
    assert_eq!(items.iter().map(|i| i.id).collect::<Vec<_>>(), [b, a]);
    assert_eq!(items[1].content, "a2");
}

#[test]
fn compaction_keeps_everything() {
    let (dir, client) = fresh();
    let list = client.create_list("Many").unwrap();
    let mut ids = Vec::new();
    for i in 0..150 {
        ids.push(client.add_item(list.id, &format!("item {i}")).unwrap());
    }
    for id in ids.iter().step_by(3) {
        client.set_done(list.id, *id, true).unwrap();
    }
    client.compact(list.id).unwrap();
    client.remove_item(list.id, ids[0]).unwrap();
    let before = client.list(list.id).unwrap();
    assert_eq!(before.items.len(), 149);
    let after = reopen(&dir).list(list.id).unwrap();
    assert_eq!(before, after);
    // The document itself (not only the item rows) holds the same items.
    let doc = tandem_protocol::ListDoc::load(&client.document_bytes(list.id).unwrap()).unwrap();
    assert_eq!(doc.items().unwrap(), after.items);
}

#[test]
fn two_clients_on_one_directory_never_overwrite_each_other() {
    let (dir, first) = fresh();
    let second = reopen(&dir);
    let list = first.create_list("Shared dir").unwrap();
    let a = first.add_item(list.id, "from first").unwrap();
    let b = second.add_item(list.id, "from second").unwrap();
    let c = first.add_item(list.id, "first again").unwrap();
    let ids: Vec<_> = reopen(&dir).list(list.id).unwrap().items.iter().map(|i| i.id).collect();
    assert_eq!(ids, [a, b, c]);
}

#[test]
fn bad_input_and_missing_things_are_refused_clearly() {
    let (_dir, client) = fresh();
    assert!(matches!(client.create_list("  "), Err(Error::InvalidInput(_))));
    assert!(matches!(client.add_item(ListId(42), "x"), Err(Error::NotFound(_))));
    let list = client.create_list("L").unwrap();
    let a = client.add_item(list.id, "a").unwrap();
    let missing = tandem_client::ItemId(7);
    assert!(matches!(client.set_done(list.id, missing, true), Err(Error::NotFound(_))));
    assert!(matches!(client.move_item(list.id, a, Some(a)), Err(Error::InvalidInput(_))));
    assert!(matches!(client.add_item(list.id, &"x".repeat(10_001)), Err(Error::InvalidInput(_))));
    // A failed edit leaves the list as it was and the client usable.
    assert_eq!(client.list(list.id).unwrap().items.len(), 1);
    client.add_item(list.id, "b").unwrap();
}

#[test]
fn viewer_lists_refuse_local_edits() {
    let (dir, client) = fresh();
    let list = ListId(123_456);
    assert!(client.track_list(list, "Theirs", Role::Viewer).unwrap());
    let refused = [
        client.add_item(list, "x").map(drop),
        client.rename_list(list, "Mine now"),
        client.set_done(list, tandem_client::ItemId(1), true),
        client.delete_list(list),
    ];
    for result in refused {
        assert!(matches!(result, Err(Error::Forbidden(_))), "{result:?}");
    }
    let shown = reopen(&dir).list(list).unwrap();
    assert_eq!((shown.title.as_str(), shown.role, shown.items.len()), ("Theirs", Role::Viewer, 0));

    // An editor may edit but not delete.
    client.track_list(list, "Theirs", Role::Editor).unwrap();
    assert!(matches!(client.delete_list(list), Err(Error::Forbidden(_))));
}

#[test]
fn provisional_ids_are_remapped_everywhere() {
    let (dir, client) = fresh();
    let list = client.create_list("Offline").unwrap();
    assert_eq!(client.provisional_lists().unwrap(), [list.id]);
    let a = client.add_item(list.id, "a").unwrap();
    let new = ListId(77);
    client.remap_list_id(list.id, new).unwrap();
    assert!(client.provisional_lists().unwrap().is_empty());
    assert!(matches!(client.list(list.id), Err(Error::NotFound(_))));
    client.add_item(new, "b").unwrap();
    let shown = reopen(&dir).list(new).unwrap();
    assert_eq!(shown.items[0].id, a);
    assert_eq!(shown.items.len(), 2);
    let other = client.create_list("Other").unwrap();
    assert!(matches!(client.remap_list_id(other.id, new), Err(Error::Conflict(_))));
}

#[test]
fn network_calls_without_a_server_report_offline() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = tandem_client::ClientConfig::new(dir.path())
        .with_server_url(format!("http://127.0.0.1:{port}"));
    let client = tandem_client::Client::open(config).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert!(matches!(rt.block_on(client.register("a@b.c", "pw")), Err(Error::Offline(_))));
    assert!(matches!(rt.block_on(client.login("a@b.c", "pw")), Err(Error::Offline(_))));
    // Sharing needs a sign-in first; that is known without the network.
    let list = client.create_list("L").unwrap();
    client.remap_list_id(list.id, ListId(5)).unwrap();
    let shared = rt.block_on(client.share_list(ListId(5), "x@y.z", Role::Viewer));
    assert!(matches!(shared, Err(Error::Unauthorized(_))), "{shared:?}");
    assert!(matches!(
        rt.block_on(client.share_list(ListId(5), "x@y.z", Role::Owner)),
        Err(Error::InvalidInput(_))
    ));
    // And everything local still works.
    client.add_item(ListId(5), "still works").unwrap();
}
