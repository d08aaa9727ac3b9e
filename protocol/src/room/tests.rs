//! The room's behaviour with honest peers (merge, save, acknowledge, fan out, sleep) and
//! with hostile ones (every attack of issue 11 that reaches the room), each against real
//! Automerge messages.

use automerge::sync::SyncDoc as _;

use automerge::sync::State;

use super::*;
use crate::list_doc::rules;
use crate::{EditError, ItemId};

/// The user of peer `peer` in these tests: each peer is its own user.
fn user(peer: PeerId) -> UserId {
    UserId(peer + 100)
}

struct Client {
    doc: ListDoc,
    state: State,
}

impl Client {
    fn new(doc: ListDoc) -> Self {
        Self { doc, state: State::new() }
    }
    fn outgoing(&mut self) -> Option<Vec<u8>> {
        self.doc.automerge_mut().sync().generate_sync_message(&mut self.state).map(Message::encode)
    }
    fn receive(&mut self, data: &[u8]) {
        let msg = Message::decode(data).unwrap();
        self.doc.automerge_mut().sync().receive_sync_message(&mut self.state, msg).unwrap();
    }
}

/// Exchanges messages between the room and one client until both are quiet, saving
/// whenever the room changed.
fn settle(room: &mut Room, peer: PeerId, client: &mut Client) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    for _ in 0..20 {
        let mut quiet = true;
        if let Some(m) = client.outgoing() {
            quiet = false;
            if let Err(r) = room.receive(peer, &m) {
                refusals.push(r);
            }
            if room.unsaved().is_some() {
                room.mark_saved();
            }
        }
        if let Some(m) = room.outgoing(peer) {
            quiet = false;
            client.receive(&m);
        }
        if quiet {
            break;
        }
    }
    refusals
}

#[test]
fn an_editor_change_is_merged_saved_then_acknowledged() {
    let mut room = Room::new(ListDoc::new("Shared").unwrap());
    room.join(1, user(1), Role::Editor);
    let mut saved = room.doc().clone();
    let mut client = Client::new(ListDoc::empty());
    settle(&mut room, 1, &mut client);
    assert_eq!(client.doc.title().unwrap(), "Shared");

    client.doc.add_item(ItemId(5), "milk").unwrap();
    // Usually the first message carries the change; a Bloom filter false positive (random
    // actor ids) can make Automerge hold it back until the room's next answer.
    let mut changed = false;
    for _ in 0..4 {
        let m = client.outgoing().unwrap();
        changed = room.receive(1, &m).unwrap().changed;
        if changed {
            break;
        }
        if let Some(answer) = room.outgoing(1) {
            client.receive(&answer);
        }
    }
    assert!(changed, "the change reached the room");
    assert!(room.outgoing(1).is_none(), "nothing is said before the change is saved");
    let chunk = room.unsaved().unwrap();
    saved.load_incremental(&chunk).unwrap();
    room.mark_saved();
    assert!(room.outgoing(1).is_some());
    assert_eq!(saved.items().unwrap()[0].content, "milk", "the saved chunk holds the change");
}

fn save(room: &mut Room) {
    if room.unsaved().is_some() {
        room.mark_saved();
    }
}

/// The room heard a writer's change and, in the same batch, a message saying the writer
/// now also holds someone else's change (so their heads are equal). Automerge alone would
/// then say nothing, and the writer would never learn that its change was saved.
#[test]
fn a_saved_change_is_always_acknowledged_to_its_writer() {
    // Whether a writer's first message after an edit carries the change depends on what
    // the room said last (Automerge may wait for a round trip); set up until it does.
    for _ in 0..100 {
        let mut room = Room::new(ListDoc::new("Busy").unwrap());
        room.join(1, user(1), Role::Editor);
        room.join(2, user(2), Role::Editor);
        let mut w1 = Client::new(ListDoc::empty());
        let mut w2 = Client::new(ListDoc::empty());
        settle(&mut room, 1, &mut w1);
        settle(&mut room, 2, &mut w2);

        w1.doc.add_item(ItemId(1), "from w1").unwrap();
        let m1 = w1.outgoing().unwrap();
        if Message::decode(&m1).unwrap().changes.is_empty() {
            continue;
        }
        // w2's change reaches the room while w1's is on its way, and w1 merges it.
        w2.doc.add_item(ItemId(2), "from w2").unwrap();
        settle(&mut room, 2, &mut w2);
        let to_w1 = room.outgoing(1).unwrap();
        w1.receive(&to_w1);
        let m1_heads = w1.outgoing().unwrap();

        // The room hears both of w1's messages in one batch, then saves.
        room.receive(1, &m1).unwrap();
        room.receive(1, &m1_heads).unwrap();
        save(&mut room);
        let ack = room.outgoing(1).expect("the writer hears that its change was saved");
        w1.receive(&ack);
        let ours = w1.doc.heads();
        assert_eq!(w1.state.their_heads.as_ref(), Some(&ours));
        assert!(w1.outgoing().is_none(), "and the exchange ends there");
        assert!(room.outgoing(1).is_none());
        return;
    }
    panic!("the writer's change never left in its first message");
}

/// A room with one editor (peer 1) in step with it, both holding item 1, "before".
fn room_holding_one_item() -> (Room, Client) {
    let mut room = Room::new(ListDoc::new("Long lived").unwrap());
    room.join(1, user(1), Role::Editor);
    let mut client = Client::new(ListDoc::empty());
    settle(&mut room, 1, &mut client);
    client.doc.add_item(ItemId(1), "before").unwrap();
    settle(&mut room, 1, &mut client);
    (room, client)
}

#[test]
fn shedding_history_keeps_peers_in_step() {
    let (mut room, mut client) = room_holding_one_item();

    let snapshot = room.edit(|d| d.save());
    let heads = room.heads();
    room.shed_history(&snapshot);
    assert_eq!(room.heads(), heads);
    assert!(room.outgoing(1).is_none(), "the peer's sync state is still valid");

    client.doc.add_item(ItemId(2), "after").unwrap();
    settle(&mut room, 1, &mut client);
    assert_eq!(room.doc().item_count().unwrap(), 2);
    let mut late = Client::new(ListDoc::empty());
    room.join(2, user(2), Role::Viewer);
    settle(&mut room, 2, &mut late);
    assert_eq!(late.doc.item_count().unwrap(), 2, "a new peer gets the whole history");
}

#[test]
fn a_sleeping_room_wakes_for_what_needs_its_document() {
    let (mut room, mut client) = room_holding_one_item();

    let heads = room.heads();
    assert!(room.sleep());
    assert!(room.is_asleep());
    assert_eq!(room.heads(), heads, "its heads are known asleep");
    assert!(!room.has_unsaved() && room.unsaved().is_none());
    assert!(room.is_asleep(), "asking about heads or saves does not wake it");

    client.doc.add_item(ItemId(2), "after").unwrap();
    let m = client.outgoing().unwrap();
    assert!(room.receive(1, &m).unwrap().changed, "a change wakes it and is merged");
    assert!(!room.is_asleep());
    assert!(!room.sleep(), "no sleep while a change is unsaved");
    save(&mut room);
    settle(&mut room, 1, &mut client);
    assert_eq!(client.state.their_heads.as_ref(), Some(&client.doc.heads()), "acknowledged");

    assert!(room.sleep());
    let mut late = Client::new(ListDoc::empty());
    room.join(2, user(2), Role::Viewer);
    settle(&mut room, 2, &mut late);
    assert_eq!(late.doc.item_count().unwrap(), 2, "a new peer gets the whole list");
    assert!(room.outgoing(1).is_none(), "the first peer's sync state stayed valid");
}

#[test]
fn peers_in_step_share_one_message_per_change() {
    let mut room = Room::new(ListDoc::new("Broadcast").unwrap());
    let mut clients: Vec<Client> = (0..6).map(|_| Client::new(ListDoc::empty())).collect();
    for (peer, client) in clients.iter_mut().enumerate() {
        room.join(peer as PeerId, user(peer as PeerId), Role::Editor);
        settle(&mut room, peer as PeerId, client);
    }
    let peers: Vec<PeerId> = (0..6).collect();
    assert!(room.outgoing_many(&peers).to.is_empty(), "everyone is in step");

    clients[0].doc.add_item(ItemId(1), "for everyone").unwrap();
    let m = clients[0].outgoing().unwrap();
    room.receive(0, &m).unwrap();
    assert!(room.outgoing_many(&peers).to.is_empty(), "nothing before the save");
    save(&mut room);
    let fanout = room.outgoing_many(&peers);
    assert_eq!(fanout.to.len(), 6, "the writer's acknowledgement and five deliveries");
    let subscribers: Vec<usize> =
        fanout.to.iter().filter(|(p, _)| *p != 0).map(|(_, m)| *m).collect();
    assert!(subscribers.iter().all(|&m| m == subscribers[0]), "one message for five");
    assert_eq!(fanout.messages.len(), 2);

    for (peer, message) in &fanout.to {
        clients[*peer as usize].receive(&fanout.messages[*message]);
    }
    for (peer, client) in clients.iter_mut().enumerate() {
        settle(&mut room, peer as PeerId, client);
        assert_eq!(client.doc.items().unwrap()[0].content, "for everyone");
        assert_eq!(client.state.their_heads.as_ref(), Some(&client.doc.heads()));
    }
    assert!(room.outgoing_many(&peers).to.is_empty(), "and quiet again");
}

#[test]
fn a_viewer_change_is_refused_and_never_applied() {
    let mut base = ListDoc::new("Read only").unwrap();
    let mut room = Room::new(base.clone());
    room.join(1, user(1), Role::Viewer);
    let mut viewer = Client::new(ListDoc::from_automerge(base.automerge_mut().fork()));
    viewer.doc.add_item(ItemId(9), "sneaky").unwrap();
    // A modified client ignores the room's read-only flag: sync with an ordinary peer
    // until the viewer's message carries its change, and send that to the room.
    let mut other = Client::new(ListDoc::from_automerge(base.automerge_mut().fork()));
    let mut forged = Vec::new();
    for _ in 0..5 {
        let m = viewer.outgoing().unwrap();
        if !Message::decode(&m).unwrap().changes.is_empty() {
            forged = m;
            break;
        }
        other.receive(&m);
        let reply = other.outgoing().unwrap();
        viewer.receive(&reply);
    }
    assert!(!Message::decode(&forged).unwrap().changes.is_empty());
    assert!(matches!(room.receive(1, &forged), Err(Refusal::ReadOnly)));
    assert!(!room.has_unsaved());
    assert_eq!(room.doc().item_count().unwrap(), 0);
}

#[test]
fn a_change_that_breaks_the_shape_is_refused_and_rolled_back() {
    use automerge::ROOT;
    use automerge::transaction::Transactable as _;
    let mut room = Room::new(ListDoc::new("Shape").unwrap());
    room.join(1, user(1), Role::Owner);
    let mut client = Client::new(ListDoc::empty());
    settle(&mut room, 1, &mut client);
    client.doc.automerge_mut().put(ROOT, "title", 42).unwrap();
    client.doc.automerge_mut().commit();
    let refusals = settle(&mut room, 1, &mut client);
    assert!(refusals.iter().any(|r| matches!(r, Refusal::Invalid(_))), "{refusals:?}");
    assert_eq!(room.doc().title().unwrap(), "Shape");
    assert!(!room.has_unsaved());
}

#[test]
fn garbage_bytes_are_refused() {
    let mut room = Room::new(ListDoc::new("x").unwrap());
    room.join(1, user(1), Role::Editor);
    for junk in [&b""[..], b"\x42\x00\x01", &[0xFF; 100]] {
        assert!(room.receive(1, junk).is_err());
    }
    assert!(matches!(room.receive(2, &[]), Err(Refusal::Malformed(_)) | Err(Refusal::UnknownPeer)));
}

// ---------------------------------------------------------------------------------------
// Hostile peers (issue 11): each test performs the attack and shows it refused.

/// A sync message carrying exactly `changes` (raw chunks), claiming `heads`.
fn message_with(heads: Vec<ChangeHash>, changes: Vec<Vec<u8>>) -> Vec<u8> {
    Message {
        heads,
        need: Vec::new(),
        have: vec![automerge::sync::Have::default()],
        changes: changes.into(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
    .encode()
}

/// The changes `client` made since `heads`, as raw chunks.
fn changes_since(client: &mut Client, heads: &[ChangeHash]) -> Vec<Change> {
    client.doc.automerge_mut().get_changes(heads)
}

#[test]
fn a_change_sent_before_its_dependency_is_held_asked_for_and_applied_with_it() {
    let (mut room, mut client) = room_holding_one_item();
    let base = client.doc.heads();
    client.doc.add_item(ItemId(2), "first").unwrap();
    client.doc.add_item(ItemId(3), "second, after the first").unwrap();
    let made = changes_since(&mut client, &base);
    let (first, second) = (&made[0], &made[1]);
    let heads = client.doc.heads();

    // The second arrives alone (as after a Bloom filter false positive).
    let received = room.receive(1, &message_with(heads.clone(), vec![second.raw_bytes().into()]));
    assert_eq!(received.unwrap(), Received { changed: false, dropped: 0 });
    assert!(!room.has_unsaved(), "nothing applied while its dependency is missing");
    let ask = Message::decode(&room.outgoing(1).unwrap()).unwrap();
    assert!(ask.need.contains(&first.hash()), "the room asks for what is missing");

    let received = room.receive(1, &message_with(heads, vec![first.raw_bytes().into()]));
    assert_eq!(received.unwrap(), Received { changed: true, dropped: 0 });
    save(&mut room);
    let contents: Vec<String> =
        room.doc().items().unwrap().into_iter().map(|i| i.content).collect();
    assert_eq!(contents, ["before", "first", "second, after the first"]);
}

#[test]
fn a_change_whose_dependency_never_comes_is_dropped_never_saved_and_its_sender_cut_off() {
    let (mut room, mut client) = room_holding_one_item();
    let base = client.doc.heads();
    client.doc.add_item(ItemId(2), "never sent").unwrap();
    client.doc.add_item(ItemId(3), "the orphan").unwrap();
    let orphan = changes_since(&mut client, &base).pop().unwrap();
    let heads = client.doc.heads();
    let saved_before = room.heads();

    let send = |room: &mut Room| {
        room.receive(1, &message_with(heads.clone(), vec![orphan.raw_bytes().into()]))
    };
    assert_eq!(send(&mut room).unwrap(), Received { changed: false, dropped: 0 });
    let quiet = message_with(heads.clone(), Vec::new());
    // The next message does not complete it: dropped, and said so.
    assert_eq!(room.receive(1, &quiet).unwrap(), Received { changed: false, dropped: 1 });
    assert_eq!(room.heads(), saved_before);
    assert!(room.unsaved().is_none());
    let mut saved = room.edit(|d| d.save());
    let reloaded = ListDoc::load(&saved).unwrap();
    assert_eq!(reloaded.item_count().unwrap(), 1, "never saved");
    saved.clear();

    // A new replica gets a message the size of the list, not of the orphan.
    room.join(2, user(2), Role::Viewer);
    let mut fresh = Client::new(ListDoc::empty());
    settle(&mut room, 2, &mut fresh);
    assert_eq!(fresh.doc.item_count().unwrap(), 1);

    // Keep sending orphans: cut off.
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        outcomes.push(send(&mut room).and_then(|_| room.receive(1, &quiet)));
    }
    assert!(outcomes.iter().any(|o| matches!(o, Err(Refusal::Abusive(_)))), "{outcomes:?}");
}

#[test]
fn another_members_device_id_cannot_be_used_to_block_their_changes() {
    let (mut room, mut alice) = room_holding_one_item();
    let alice_actor = alice.doc.automerge().get_actor().clone();
    assert_eq!(room.actor_owner(&alice_actor), Some(user(1)), "bound when first used");

    // Bob, an editor, copies Alice's actor id and takes her next sequence number.
    room.join(2, user(2), Role::Editor);
    let mut bob = Client::new(ListDoc::empty());
    settle(&mut room, 2, &mut bob);
    let base = bob.doc.heads();
    bob.doc.automerge_mut().set_actor(alice_actor.clone());
    bob.doc.add_item(ItemId(66), "squatting Alice's next seq").unwrap();
    let forged = changes_since(&mut bob, &base).pop().unwrap();
    let heads = bob.doc.heads();
    let refused = room.receive(2, &message_with(heads, vec![forged.raw_bytes().into()]));
    assert!(matches!(refused, Err(Refusal::ForeignActor)), "{refused:?}");
    assert!(!room.has_unsaved());

    // Alice's real next change goes through.
    alice.doc.add_item(ItemId(7), "mine").unwrap();
    assert!(settle(&mut room, 1, &mut alice).is_empty());
    assert!(room.doc().contains_item(ItemId(7)).unwrap());
    assert!(!room.doc().contains_item(ItemId(66)).unwrap());
}

#[test]
fn every_accepted_change_names_its_user_and_what_it_did() {
    let (mut room, mut client) = room_holding_one_item();
    client.doc.set_done(ItemId(1), true).unwrap();
    let m = client.outgoing().unwrap();
    room.receive(1, &m).unwrap();
    let accepted = room.unsaved_accepted().to_vec();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].user, user(1));
    assert_eq!(accepted[0].actions, [ChangeAction::Checked { item: ItemId(1) }]);
    assert!(room.unsaved_actors().is_empty(), "the actor was bound by its first change");
    save(&mut room);
    assert!(room.unsaved_accepted().is_empty());

    room.edit_as(UserId(7), |d| d.set_title("Renamed by REST").unwrap());
    let accepted = room.unsaved_accepted().to_vec();
    assert_eq!(accepted[0].user, UserId(7));
    assert_eq!(accepted[0].actions, [ChangeAction::Renamed]);
    assert_eq!(room.unsaved_actors().len(), 1, "the server's change has an actor of its own");
    assert_eq!(room.unsaved_actors()[0].1, UserId(7));
}

/// A compressed chunk inflating to `size` zero bytes.
fn deflate_bomb(size: usize) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..size / zeros.len() {
        encoder.write_all(&zeros).unwrap();
    }
    let data = encoder.finish().unwrap();
    let mut chunk = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 2];
    let mut len = data.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        chunk.push(if len == 0 { byte } else { byte | 0x80 });
        if len == 0 {
            break;
        }
    }
    chunk.extend_from_slice(&data);
    chunk
}

#[test]
fn a_decompression_bomb_is_refused_before_automerge_inflates_it() {
    let (mut room, _client) = room_holding_one_item();
    let bomb = deflate_bomb(512 * 1024 * 1024);
    assert!(bomb.len() < 1024 * 1024, "fits in one frame: {} bytes", bomb.len());
    let heads = room.heads();
    let refused = room.receive(1, &message_with(heads.clone(), vec![bomb]));
    assert!(matches!(refused, Err(Refusal::TooLarge(_))), "{refused:?}");
    assert_eq!(room.heads(), heads);
}

#[test]
fn a_change_bigger_than_the_operation_limit_is_refused() {
    let (mut room, mut client) = room_holding_one_item();
    let limits = SyncLimits { max_change_ops: 1_000, ..SyncLimits::default() };
    let mut small = Room::with_limits(room.doc().clone(), limits, []);
    small.join(1, user(1), Role::Editor);
    settle(&mut small, 1, &mut client);
    client.doc.add_item(ItemId(2), &"x".repeat(2_000)).unwrap();
    let m = client.outgoing().unwrap();
    let refused = small.receive(1, &m);
    assert!(matches!(refused, Err(Refusal::TooLarge(_))), "{refused:?}");
    assert!(!small.doc().contains_item(ItemId(2)).unwrap());
}

/// An editor's client that bypasses `ListDoc`'s rules: raw Automerge edits of a list.
fn raw_edit(client: &mut Client, f: impl FnOnce(&mut automerge::AutoCommit)) {
    f(client.doc.automerge_mut());
    client.doc.automerge_mut().commit();
}

#[test]
fn sync_refuses_what_rest_refuses() {
    use automerge::transaction::Transactable as _;
    use automerge::{ROOT, ReadDoc as _};
    let (mut room, client) = room_holding_one_item();
    let title = |d: &automerge::AutoCommit| d.get(ROOT, "title").unwrap().unwrap().1;
    let item = |d: &automerge::AutoCommit| {
        let items = d.get(ROOT, "items").unwrap().unwrap().1;
        d.get(items, "1").unwrap().unwrap().1
    };
    type Attack<'a> = Box<dyn Fn(&mut automerge::AutoCommit) + 'a>;
    let attacks: Vec<(&str, Attack)> = vec![
        (
            "a 10,000-character title with NUL and ESC",
            Box::new(|d| {
                let t = title(d);
                d.update_text(&t, format!("{}\u{0}\u{1b}[2J", "t".repeat(10_000))).unwrap();
            }),
        ),
        (
            "an empty title",
            Box::new(|d| {
                let t = title(d);
                d.update_text(&t, "").unwrap();
            }),
        ),
        (
            "a blank title",
            Box::new(|d| {
                let t = title(d);
                d.update_text(&t, "   ").unwrap();
            }),
        ),
        (
            "a 900-character sort_rank",
            Box::new(|d| {
                let i = item(d);
                d.put(&i, "sort_rank", format!("{}80", "7f".repeat(450))).unwrap();
            }),
        ),
        (
            "an item of 10,001 characters",
            Box::new(|d| {
                let i = item(d);
                let text = d.get(&i, "content").unwrap().unwrap().1;
                d.update_text(&text, "y".repeat(10_001)).unwrap();
            }),
        ),
        (
            "a bell in an item",
            Box::new(|d| {
                let i = item(d);
                let text = d.get(&i, "content").unwrap().unwrap().1;
                d.update_text(&text, "ding\u{7}").unwrap();
            }),
        ),
        (
            "a key the schema does not have",
            Box::new(|d| {
                let i = item(d);
                d.put(&i, "owner", "me").unwrap();
            }),
        ),
        (
            "a second items map",
            Box::new(|d| {
                d.put_object(ROOT, "items", automerge::ObjType::Map).unwrap();
            }),
        ),
    ];
    let heads = room.heads();
    for (name, attack) in attacks {
        let mut attacker =
            Client::new(ListDoc::from_automerge(client.doc.automerge().clone().fork()));
        attacker.state = client.state.clone();
        raw_edit(&mut attacker, |d| attack(d));
        let m = attacker.outgoing().unwrap();
        let refused = room.receive(1, &m);
        assert!(
            matches!(refused, Err(Refusal::Invalid(_)) | Err(Refusal::Abusive(_))),
            "{name}: {refused:?}"
        );
        assert_eq!(room.heads(), heads, "{name}: nothing applied");
        room.join(1, user(1), Role::Editor); // a cut-off peer reconnects
    }
    let doc = room.doc();
    assert_eq!(doc.title().unwrap(), "Long lived");
    assert_eq!(doc.items().unwrap()[0].content, "before");
}

#[test]
fn a_list_may_not_grow_past_its_item_limit_through_sync() {
    use automerge::transaction::Transactable as _;
    use automerge::{ROOT, ReadDoc as _};
    let mut full = ListDoc::new("Full").unwrap();
    for i in 1..=rules::MAX_ITEMS as u64 {
        full.add_item(ItemId(i), "").unwrap();
    }
    assert!(matches!(full.add_item(ItemId(99_999), ""), Err(EditError::Rule(_))), "locally");
    let mut room = Room::new(full.clone());
    room.join(1, user(1), Role::Editor);
    let mut client = Client::new(ListDoc::from_automerge(full.automerge_mut().fork()));
    settle(&mut room, 1, &mut client);
    raw_edit(&mut client, |d| {
        let items = d.get(ROOT, "items").unwrap().unwrap().1;
        let item = d.put_object(&items, "99999", automerge::ObjType::Map).unwrap();
        d.put_object(&item, "content", automerge::ObjType::Text).unwrap();
        d.put(&item, "done", false).unwrap();
        d.put(&item, "sort_rank", "ff80").unwrap();
    });
    let refused = room.receive(1, &client.outgoing().unwrap());
    assert!(matches!(refused, Err(Refusal::Invalid(ValidationError::Rule(_)))), "{refused:?}");
}

#[test]
fn refusing_a_bad_change_disturbs_no_one_else() {
    let (mut room, alice) = room_holding_one_item();
    room.join(2, user(2), Role::Editor);
    let mut bob = Client::new(ListDoc::empty());
    settle(&mut room, 2, &mut bob);
    assert!(room.outgoing(2).is_none(), "bob is in step");
    let mut attacker = Client::new(ListDoc::from_automerge(alice.doc.automerge().clone().fork()));
    attacker.state = alice.state.clone();
    raw_edit(&mut attacker, |d| {
        use automerge::transaction::Transactable as _;
        d.put(automerge::ROOT, "title", 42).unwrap();
    });
    assert!(room.receive(1, &attacker.outgoing().unwrap()).is_err());
    // Refused before it was applied: no rollback, so no peer's sync state was reset.
    assert!(room.outgoing(2).is_none(), "bob hears nothing: nothing happened");
}

#[test]
fn a_peer_that_keeps_saying_it_has_nothing_gets_the_list_a_few_times_a_minute() {
    let (mut room, _client) = room_holding_one_item();
    room.join(2, user(2), Role::Viewer);
    let nothing = Client::new(ListDoc::empty()).outgoing().unwrap();
    let mut sent = Vec::new();
    let mut refused = 0;
    for _ in 0..10 {
        match room.receive(2, &nothing) {
            Ok(_) => sent.extend(room.outgoing(2)),
            Err(Refusal::RateLimited) => refused += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    let allowed = SyncLimits::default().full_syncs_per_minute as usize;
    assert_eq!(sent.len(), allowed);
    assert_eq!(refused, 10 - allowed);
    assert!(sent.windows(2).all(|w| w[0] == w[1]), "the same message each time, made once");
}

#[test]
fn bloom_filters_that_would_crash_the_server_are_refused() {
    let (mut room, _client) = room_holding_one_item();
    room.join(2, user(2), Role::Editor);
    for bloom in [&[1u8, 0, 7][..], &[1, 10, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 1]] {
        let message = Message {
            heads: Vec::new(),
            need: Vec::new(),
            have: vec![automerge::sync::Have {
                last_sync: Vec::new(),
                bloom: bloom.try_into().unwrap(),
            }],
            changes: Vec::<Vec<u8>>::new().into(),
            flags: None,
            version: automerge::sync::MessageVersion::V1,
        };
        let refused = room.receive(2, &message.encode());
        assert!(matches!(refused, Err(Refusal::Malformed(_) | Refusal::Abusive(_))), "{refused:?}");
        let _ = room.outgoing(2); // and making the next message does not divide by zero
    }
}

#[test]
fn a_chain_of_missing_dependencies_is_asked_for_one_link_at_a_time() {
    let (mut room, mut client) = room_holding_one_item();
    let base = client.doc.heads();
    for (id, text) in [(2, "w"), (3, "x"), (4, "y")] {
        client.doc.add_item(ItemId(id), text).unwrap();
    }
    let made = changes_since(&mut client, &base);
    let heads = client.doc.heads();
    let send = |room: &mut Room, change: &Change| {
        room.receive(1, &message_with(heads.clone(), vec![change.raw_bytes().into()])).unwrap()
    };
    let asked = |room: &mut Room| Message::decode(&room.outgoing(1).unwrap()).unwrap().need;

    // Two Bloom false positives in a row: y comes first, then x, which also waits.
    assert_eq!(send(&mut room, &made[2]), Received { changed: false, dropped: 0 });
    assert!(asked(&mut room).contains(&made[1].hash()));
    assert_eq!(send(&mut room, &made[1]), Received { changed: false, dropped: 0 }, "y is kept");
    assert!(asked(&mut room).contains(&made[0].hash()));
    assert_eq!(send(&mut room, &made[0]), Received { changed: true, dropped: 0 });
    save(&mut room);
    assert_eq!(room.doc().item_count().unwrap(), 4, "the whole chain is in");
}
