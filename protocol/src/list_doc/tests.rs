//! Tests of the document helpers, `validate()` and concurrent merges.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT};

use super::*;

fn ids(doc: &ListDoc) -> Vec<u64> {
    doc.items().unwrap().iter().map(|i| i.id.get()).collect()
}

fn contents(doc: &ListDoc) -> Vec<String> {
    doc.items().unwrap().into_iter().map(|i| i.content).collect()
}

/// Two replicas of one list, as after a sync: `b` starts from `a`'s changes.
fn two_replicas(a: &mut ListDoc) -> ListDoc {
    ListDoc::from_automerge(a.automerge_mut().fork())
}

fn merge(into: &mut ListDoc, from: &mut ListDoc) {
    into.automerge_mut().merge(from.automerge_mut()).unwrap();
}

fn list_with(items: &[(u64, &str)]) -> ListDoc {
    let mut doc = ListDoc::new("list").unwrap();
    for (id, text) in items {
        doc.add_item(ItemId(*id), text).unwrap();
    }
    doc
}

#[test]
fn a_new_list_is_valid_and_empty() {
    let doc = ListDoc::new("Groceries").unwrap();
    doc.validate().unwrap();
    assert_eq!(doc.title().unwrap(), "Groceries");
    assert!(doc.items().unwrap().is_empty());
    assert_eq!(doc.item_count().unwrap(), 0);
}

#[test]
fn items_are_added_at_the_end_and_edited() {
    let mut doc = list_with(&[(10, "milk"), (5, "eggs"), (7, "bread")]);
    assert_eq!(ids(&doc), [10, 5, 7]);
    doc.edit_content(ItemId(5), "brown eggs").unwrap();
    doc.set_done(ItemId(7), true).unwrap();
    doc.set_title("Shop").unwrap();
    let items = doc.items().unwrap();
    assert_eq!(items[1].content, "brown eggs");
    assert!(items[2].done && !items[0].done);
    assert_eq!(doc.title().unwrap(), "Shop");
    assert_eq!(doc.item(ItemId(7)).unwrap().unwrap().content, "bread");
    assert_eq!(doc.item(ItemId(8)).unwrap(), None);
    doc.remove_item(ItemId(10)).unwrap();
    assert_eq!(ids(&doc), [5, 7]);
    assert!(!doc.contains_item(ItemId(10)).unwrap());
    doc.validate().unwrap();
}

#[test]
fn each_edit_is_one_change_and_failed_edits_change_nothing() {
    let mut doc = list_with(&[(1, "a")]);
    let before = doc.heads();
    doc.set_done(ItemId(1), true).unwrap();
    assert_eq!(doc.automerge_mut().get_changes(&before).len(), 1);

    let before = doc.heads();
    assert!(matches!(doc.set_done(ItemId(2), true), Err(EditError::NoSuchItem(ItemId(2)))));
    assert!(matches!(doc.add_item(ItemId(1), "again"), Err(EditError::DuplicateItem(_))));
    assert!(matches!(doc.add_item(ItemId(0), "zero"), Err(EditError::InvalidItemId(_))));
    assert!(matches!(doc.move_after(ItemId(1), ItemId(1)), Err(EditError::MoveAfterItself(_))));
    assert!(matches!(doc.move_after(ItemId(1), ItemId(9)), Err(EditError::NoSuchItem(ItemId(9)))));
    assert_eq!(doc.heads(), before);
    assert_eq!(contents(&doc), ["a"]);
}

#[test]
fn moves_to_first_and_after() {
    let mut doc = list_with(&[(1, "a"), (2, "b"), (3, "c"), (4, "d")]);
    doc.move_to_first(ItemId(3)).unwrap();
    assert_eq!(ids(&doc), [3, 1, 2, 4]);
    doc.move_after(ItemId(3), ItemId(4)).unwrap();
    assert_eq!(ids(&doc), [1, 2, 4, 3]);
    doc.move_after(ItemId(1), ItemId(2)).unwrap();
    assert_eq!(ids(&doc), [2, 1, 4, 3]);
    doc.move_to_first(ItemId(2)).unwrap();
    assert_eq!(ids(&doc), [2, 1, 4, 3]);
    // Many moves into the same gap keep working.
    for _ in 0..300 {
        doc.move_after(ItemId(3), ItemId(2)).unwrap();
        doc.move_after(ItemId(4), ItemId(2)).unwrap();
    }
    assert_eq!(ids(&doc), [2, 4, 3, 1]);
    doc.validate().unwrap();
}

#[test]
fn save_load_and_incremental_chunks_round_trip() {
    let mut doc = list_with(&[(1, "a"), (2, "b")]);
    let snapshot = doc.save();
    let heads = doc.heads();
    doc.edit_content(ItemId(2), "bee").unwrap();
    doc.move_to_first(ItemId(2)).unwrap();
    let chunk = doc.save_after(&heads);
    assert!(!chunk.is_empty());

    let mut copy = ListDoc::load(&snapshot).unwrap();
    copy.load_incremental(&chunk).unwrap();
    assert_eq!(copy.items().unwrap(), doc.items().unwrap());
    assert!(ListDoc::load(b"not automerge").is_err());
}

#[test]
fn concurrent_moves_converge_to_one_order() {
    let mut a = list_with(&[(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e")]);
    let mut b = two_replicas(&mut a);
    a.move_to_first(ItemId(5)).unwrap();
    a.move_after(ItemId(1), ItemId(3)).unwrap();
    b.move_after(ItemId(5), ItemId(2)).unwrap();
    b.move_to_first(ItemId(4)).unwrap();
    b.move_after(ItemId(1), ItemId(4)).unwrap();
    let mut b2 = b.clone();
    merge(&mut a, &mut b);
    merge(&mut b2, &mut a.clone());
    assert_eq!(ids(&a), ids(&b2));
    let mut sorted = ids(&a);
    sorted.sort();
    assert_eq!(sorted, [1, 2, 3, 4, 5], "every item exactly once");
    a.validate().unwrap();
}

#[test]
fn concurrent_appends_tie_and_are_ordered_by_id() {
    let mut a = list_with(&[(1, "a")]);
    let mut b = two_replicas(&mut a);
    a.add_item(ItemId(90), "from a").unwrap();
    b.add_item(ItemId(20), "from b").unwrap();
    merge(&mut a, &mut b);
    merge(&mut b, &mut a);
    assert_eq!(ids(&a), [1, 20, 90]);
    assert_eq!(ids(&b), [1, 20, 90]);

    // Moving after an item that shares its rank lands exactly after it.
    a.add_item(ItemId(7), "seven").unwrap();
    a.move_after(ItemId(7), ItemId(20)).unwrap();
    assert_eq!(ids(&a), [1, 20, 7, 90]);
    a.validate().unwrap();
}

#[test]
fn concurrent_text_edits_merge_character_by_character() {
    let mut a = list_with(&[(1, "buy milk")]);
    let mut b = two_replicas(&mut a);
    a.edit_content(ItemId(1), "buy oat milk").unwrap();
    b.edit_content(ItemId(1), "buy milk today").unwrap();
    a.set_title("Shopping").unwrap();
    b.set_title("list!").unwrap();
    merge(&mut a, &mut b);
    merge(&mut b, &mut a);
    assert_eq!(contents(&a), ["buy oat milk today"]);
    assert_eq!(contents(&b), ["buy oat milk today"]);
    assert_eq!(a.title().unwrap(), b.title().unwrap());
}

#[test]
fn remove_wins_over_a_concurrent_edit() {
    let mut a = list_with(&[(1, "a"), (2, "b")]);
    let mut b = two_replicas(&mut a);
    a.remove_item(ItemId(1)).unwrap();
    b.edit_content(ItemId(1), "edited").unwrap();
    b.set_done(ItemId(2), true).unwrap();
    merge(&mut a, &mut b);
    assert_eq!(ids(&a), [2]);
    assert!(a.items().unwrap()[0].done);
    a.validate().unwrap();
}

/// A raw document with the right shape, to be broken by each test case.
fn raw_list() -> (AutoCommit, automerge::ObjId) {
    let mut doc = AutoCommit::new();
    let title = doc.put_object(ROOT, "title", ObjType::Text).unwrap();
    doc.splice_text(&title, 0, 0, "t").unwrap();
    let items = doc.put_object(ROOT, "items", ObjType::Map).unwrap();
    let item = doc.put_object(&items, "42", ObjType::Map).unwrap();
    let content = doc.put_object(&item, "content", ObjType::Text).unwrap();
    doc.splice_text(&content, 0, 0, "x").unwrap();
    doc.put(&item, "done", false).unwrap();
    doc.put(&item, "sort_rank", "80").unwrap();
    // One change, so that `check` can track from here what each test case changes.
    doc.commit();
    (doc, item)
}

/// The verdict of `validate`, after asserting that checking only what changed since
/// `raw_list` (as the server does on every merge) gives the same one.
fn check(mut doc: AutoCommit) -> Result<(), ValidationError> {
    // A replica that holds the first change (the raw list) merges the rest, as a server does.
    let first: Vec<_> = doc.get_changes(&[]).first().map(|c| c.hash()).into_iter().collect();
    let mut doc_then = ListDoc::from_automerge(doc.fork_at(&first).unwrap());
    doc_then.track_changes();
    doc_then.automerge_mut().merge(&mut doc).unwrap();
    let mut doc = doc_then;
    let touched = doc.take_touched();
    let whole = doc.validate();
    assert_eq!(doc.validate_touched(&touched), whole, "incremental check disagrees: {touched:?}");
    whole
}

#[test]
fn merges_report_what_they_touched() {
    let mut server = list_with(&[(1, "milk"), (2, "eggs")]);
    let mut client = two_replicas(&mut server);
    server.track_changes();
    assert!(server.take_touched().is_empty());

    client.add_item(ItemId(3), "bread").unwrap();
    client.set_done(ItemId(1), true).unwrap();
    merge(&mut server, &mut client);
    let touched = server.take_touched();
    assert_eq!(touched.item_keys.iter().map(String::as_str).collect::<Vec<_>>(), ["1", "3"]);
    assert!(!touched.title && !touched.structure);
    assert!(server.take_touched().is_empty(), "taking resets the record");

    client.remove_item(ItemId(2)).unwrap();
    client.set_title("Shopping").unwrap();
    merge(&mut server, &mut client);
    let touched = server.take_touched();
    assert_eq!(touched.item_keys.iter().map(String::as_str).collect::<Vec<_>>(), ["2"]);
    assert!(touched.title && !touched.structure);
    server.validate_touched(&touched).unwrap();

    client.automerge_mut().put(ROOT, "junk", 1).unwrap();
    merge(&mut server, &mut client);
    let touched = server.take_touched();
    assert!(touched.structure);
    assert!(matches!(
        server.validate_touched(&touched),
        Err(ValidationError::UnexpectedKey { path }) if path == "junk"
    ));
}

#[test]
fn a_tracked_replica_edits_after_merges_as_an_untracked_one_would() {
    let mut here = list_with(&[(1, "milk"), (2, "eggs"), (3, "bread")]);
    let mut there = two_replicas(&mut here);
    here.track_changes();
    // Before and after the merge, `here` edits through its index; the merge must reach it.
    here.edit_content(ItemId(2), "brown eggs").unwrap();
    there.move_after(ItemId(1), ItemId(3)).unwrap();
    there.remove_item(ItemId(2)).unwrap();
    merge(&mut here, &mut there);
    let mut untracked = ListDoc::load(&here.save()).unwrap();

    for doc in [&mut here, &mut untracked] {
        assert!(matches!(doc.move_to_first(ItemId(2)), Err(EditError::NoSuchItem(_))));
        doc.add_item(ItemId(4), "jam").unwrap();
        doc.move_after(ItemId(3), ItemId(1)).unwrap();
    }
    assert_eq!(ids(&here), [1, 3, 4], "3, 1 after the merge; 4 added last; 3 moved after 1");
    assert_eq!(ids(&here), ids(&untracked));
    assert_eq!(
        here.items().unwrap().iter().map(|i| i.sort_rank.clone()).collect::<Vec<_>>(),
        untracked.items().unwrap().iter().map(|i| i.sort_rank.clone()).collect::<Vec<_>>(),
        "the same ranks: the index saw the merged move"
    );

    // What the index read from the log is still reported to whoever takes it.
    let touched = here.take_touched();
    for key in ["1", "2", "3", "4"] {
        assert!(touched.item_keys.contains(key), "{key} missing from {touched:?}");
    }
}

#[test]
fn validate_accepts_the_raw_shape() {
    check(raw_list().0).unwrap();
}

#[test]
fn validate_rejects_malformed_documents() {
    assert!(matches!(check(AutoCommit::new()), Err(ValidationError::Missing { .. })));

    let (mut doc, _) = raw_list();
    doc.put(ROOT, "title", "a plain string").unwrap();
    assert!(matches!(check(doc), Err(ValidationError::WrongType { path, .. }) if path == "title"));

    let (mut doc, _) = raw_list();
    doc.put_object(ROOT, "items", ObjType::List).unwrap();
    assert!(matches!(check(doc), Err(ValidationError::WrongType { path, .. }) if path == "items"));

    let (mut doc, _) = raw_list();
    doc.delete(ROOT, "items").unwrap();
    assert!(matches!(check(doc), Err(ValidationError::Missing { .. })));

    let (mut doc, _) = raw_list();
    doc.put(ROOT, "junk", 1).unwrap();
    assert!(matches!(check(doc), Err(ValidationError::UnexpectedKey { path }) if path == "junk"));

    for key in ["abc", "0", "007", "-5", "9007199254740992", "1e3", "", "99999999999999999999"] {
        let (mut doc, _) = raw_list();
        let items = shape::items_obj(&doc).unwrap();
        let item = doc.put_object(&items, key, ObjType::Map).unwrap();
        let content = doc.put_object(&item, "content", ObjType::Text).unwrap();
        doc.splice_text(&content, 0, 0, "y").unwrap();
        doc.put(&item, "done", false).unwrap();
        doc.put(&item, "sort_rank", "80").unwrap();
        assert!(
            matches!(check(doc), Err(ValidationError::BadItemKey { .. })),
            "key {key:?} must be refused"
        );
    }

    let (mut doc, _) = raw_list();
    let items = shape::items_obj(&doc).unwrap();
    doc.put(&items, "43", "not a map").unwrap();
    assert!(matches!(check(doc), Err(ValidationError::WrongType { .. })));

    let (mut doc, item) = raw_list();
    doc.put(&item, "content", "plain string, not text").unwrap();
    assert!(
        matches!(check(doc), Err(ValidationError::WrongType { path, .. }) if path == "items/42/content")
    );

    let (mut doc, item) = raw_list();
    doc.put(&item, "done", "yes").unwrap();
    assert!(
        matches!(check(doc), Err(ValidationError::WrongType { path, .. }) if path == "items/42/done")
    );

    let (mut doc, item) = raw_list();
    doc.delete(&item, "done").unwrap();
    assert!(
        matches!(check(doc), Err(ValidationError::Missing { path }) if path == "items/42/done")
    );

    for rank in ["", "zz", "8", "7F80", "0100", "é8"] {
        let (mut doc, item) = raw_list();
        doc.put(&item, "sort_rank", rank).unwrap();
        assert!(
            matches!(check(doc), Err(ValidationError::BadSortRank { .. })),
            "rank {rank:?} must be refused"
        );
    }

    let (mut doc, item) = raw_list();
    doc.put(&item, "sort_rank", 5).unwrap();
    assert!(matches!(check(doc), Err(ValidationError::WrongType { .. })));

    let (mut doc, item) = raw_list();
    doc.put(&item, "priority", 1).unwrap();
    assert!(
        matches!(check(doc), Err(ValidationError::UnexpectedKey { path }) if path == "items/42/priority")
    );
}

#[test]
fn readers_and_editors_refuse_malformed_documents_without_panicking() {
    let (mut doc, item) = raw_list();
    doc.put(&item, "sort_rank", "garbage").unwrap();
    let mut doc = ListDoc::from_automerge(doc);
    assert!(doc.items().is_err());
    assert!(matches!(doc.add_item(ItemId(1), "x"), Err(EditError::Invalid(_))));
    let mut empty = ListDoc::empty();
    assert!(empty.title().is_err());
    assert!(empty.set_done(ItemId(1), true).is_err());
}

#[test]
fn list_doc_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<ListDoc>();
}
