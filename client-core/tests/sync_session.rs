//! The sans-IO sync session against the protocol's own server-side `Room`s, with no socket:
//! offline edits on two devices merge, viewers receive but cannot send, removals drop the
//! list, and a reconnect resends nothing the server already acknowledged.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tandem_client::events::ChangeKind;
use tandem_client::sync::{ListSyncStatus, Session};
use tandem_client::{Client, ClientConfig, Error, ItemId, ListId, Role};
use tandem_protocol::automerge::sync::Message;
use tandem_protocol::room::{PeerId, Refusal, Room};
use tandem_protocol::wire::{
    ClientMessage, ListAccess, ListErrorCode, PROTOCOL_VERSION, RemovalReason, ServerMessage,
    encode_heads,
};
use tandem_protocol::{ListDoc, UserId};
use tempfile::TempDir;

/// A server made of rooms, as the real one uses them: save before speaking.
#[derive(Default)]
struct FakeServer {
    rooms: HashMap<ListId, Room>,
    access: HashMap<(UserId, ListId), Role>,
    /// Saves so far, numbering the frames.
    version: u64,
}

impl FakeServer {
    fn welcome(&self, user: UserId) -> ServerMessage {
        let mut lists: Vec<ListAccess> = self
            .access
            .iter()
            .filter(|((u, _), _)| *u == user)
            .map(|((_, list), role)| ListAccess { list: *list, role: *role })
            .collect();
        lists.sort_by_key(|a| a.list);
        ServerMessage::Welcome { version: PROTOCOL_VERSION, user, lists }
    }

    fn receive(
        &mut self,
        peer: PeerId,
        user: UserId,
        message: ClientMessage,
    ) -> Vec<(PeerId, ServerMessage)> {
        match message {
            ClientMessage::Hello { .. } => {
                // A new connection: the peer's old subscriptions ended with the old socket.
                for room in self.rooms.values_mut() {
                    room.leave(peer);
                }
                vec![(peer, self.welcome(user))]
            }
            ClientMessage::Unsubscribe { list } => {
                if let Some(room) = self.rooms.get_mut(&list) {
                    room.leave(peer);
                }
                Vec::new()
            }
            ClientMessage::Sync { list, data } => self.merge(peer, user, list, &data, false),
            ClientMessage::Changes { list, data } => self.merge(peer, user, list, &data, true),
        }
    }

    /// A sync message or (version 2) raw changes: merged, saved, then sent on as frames to
    /// the peers in step and as sync messages to the rest.
    fn merge(
        &mut self,
        peer: PeerId,
        user: UserId,
        list: ListId,
        data: &[u8],
        raw: bool,
    ) -> Vec<(PeerId, ServerMessage)> {
        // A list the user created offline is created at its first sync.
        let role = *self.access.entry((user, list)).or_insert(Role::Owner);
        let room = self.rooms.entry(list).or_insert_with(|| Room::new(ListDoc::empty()));
        if !room.peers().any(|(p, _)| p == peer) {
            room.join_streaming(peer, user, role);
        }
        let mut out = Vec::new();
        let received =
            if raw { room.receive_changes(peer, data) } else { room.receive(peer, data) };
        match received {
            Ok(_) => {}
            Err(Refusal::ReadOnly) => out.push((
                peer,
                ServerMessage::ListError {
                    list,
                    code: ListErrorCode::Forbidden,
                    message: "viewers cannot change this list".into(),
                },
            )),
            Err(e) => out.push((
                peer,
                ServerMessage::ListError {
                    list,
                    code: ListErrorCode::InvalidDocument,
                    message: e.to_string(),
                },
            )),
        }
        if room.unsaved().is_some() {
            self.version += 1;
            room.mark_saved_as(self.version);
        }
        for (batch, to) in room.stream() {
            let heads = encode_heads(&batch.heads);
            for p in to {
                out.push((
                    p,
                    ServerMessage::Changes {
                        list,
                        seq: batch.seq,
                        heads: heads.clone(),
                        data: batch.chunk.clone(),
                    },
                ));
            }
        }
        let peers: Vec<PeerId> = room.peers().map(|(p, _)| p).collect();
        for p in peers {
            if let Some(data) = room.outgoing(p) {
                out.push((p, ServerMessage::Sync { list, data: data.clone() }));
            }
        }
        out
    }
}

struct Device {
    _dir: TempDir,
    client: Arc<Client>,
    user: UserId,
    session: Option<Session>,
    /// Every client message sent, for inspection.
    sent: Vec<ClientMessage>,
}

fn device(user: u64) -> Device {
    let dir = tempfile::tempdir().unwrap();
    let client = Arc::new(Client::open(ClientConfig::new(dir.path())).unwrap());
    Device { _dir: dir, client, user: UserId(user), session: None, sent: Vec::new() }
}

/// Connects the given devices (fresh sessions) and exchanges messages until all are quiet.
fn sync(server: &mut FakeServer, devices: &mut [&mut Device]) {
    let mut queue: VecDeque<(bool, PeerId, Vec<u8>)> = VecDeque::new();
    for (i, d) in devices.iter_mut().enumerate() {
        let session = Session::new(Arc::clone(&d.client), HashMap::new());
        queue.push_back((true, i as PeerId, session.hello().encode()));
        d.session = Some(session);
    }
    for _ in 0..10_000 {
        let Some((to_server, peer, frame)) = queue.pop_front() else {
            // Quiet: flush any local change the sessions have not sent yet.
            let mut any = false;
            for (i, d) in devices.iter_mut().enumerate() {
                for m in d.session.as_mut().unwrap().poll(false).unwrap() {
                    any = true;
                    queue.push_back((true, i as PeerId, m.encode()));
                }
            }
            if !any {
                return;
            }
            continue;
        };
        if to_server {
            let message = ClientMessage::decode(&frame).unwrap();
            devices[peer as usize].sent.push(message.clone());
            let user = devices[peer as usize].user;
            for (p, m) in server.receive(peer, user, message) {
                queue.push_back((false, p, m.encode()));
            }
        } else {
            let message = ServerMessage::decode(&frame).unwrap();
            let d = &mut devices[peer as usize];
            for m in d.session.as_mut().unwrap().handle(message).unwrap() {
                queue.push_back((true, peer, m.encode()));
            }
        }
    }
    panic!("the exchange never went quiet");
}

/// A list created on `d`, given the server id `id` (as a reserved id would be).
fn owned_list(d: &Device, id: u64, title: &str) -> ListId {
    let provisional = d.client.create_list(title).unwrap().id;
    d.client.remap_list_id(provisional, ListId(id)).unwrap();
    ListId(id)
}

fn settled(d: &Device) -> bool {
    d.session.as_ref().unwrap().settled().unwrap()
}

#[test]
fn offline_edits_on_two_devices_merge_through_the_server() {
    let mut server = FakeServer::default();
    let mut alice = device(1);
    let mut bob = device(2);
    let list = owned_list(&alice, 1001, "Groceries");
    let milk = alice.client.add_item(list, "milk").unwrap();
    let eggs = alice.client.add_item(list, "eggs").unwrap();
    sync(&mut server, &mut [&mut alice]);
    assert!(settled(&alice));

    server.access.insert((bob.user, list), Role::Editor);
    sync(&mut server, &mut [&mut bob]);
    assert!(settled(&bob));
    assert_eq!(bob.client.list(list).unwrap().items.len(), 2);
    assert_eq!(bob.client.list(list).unwrap().title, "Groceries");
    assert_eq!(bob.client.list(list).unwrap().role, Role::Editor);

    // Offline on both sides.
    alice.client.edit_item(list, milk, "oat milk").unwrap();
    alice.client.set_done(list, eggs, true).unwrap();
    let bread = alice.client.add_item(list, "bread").unwrap();
    bob.client.edit_item(list, milk, "milk x2").unwrap();
    bob.client.move_item(list, eggs, None).unwrap();
    let jam = bob.client.add_item(list, "jam").unwrap();
    bob.client.remove_item(list, eggs).unwrap_or(());
    bob.client.rename_list(list, "Weekly groceries").unwrap();

    sync(&mut server, &mut [&mut alice, &mut bob]);
    assert!(settled(&alice) && settled(&bob));
    let a = alice.client.list(list).unwrap();
    let b = bob.client.list(list).unwrap();
    assert_eq!(a.items, b.items);
    assert_eq!(a.title, "Weekly groceries");
    let ids: Vec<ItemId> = a.items.iter().map(|i| i.id).collect();
    assert!(ids.contains(&bread) && ids.contains(&jam) && !ids.contains(&eggs), "{ids:?}");
    let milk_text = &a.items.iter().find(|i| i.id == milk).unwrap().content;
    assert!(milk_text.contains("oat") && milk_text.contains("x2"), "{milk_text}");
    let server_doc = server.rooms.get_mut(&list).unwrap().doc().items().unwrap();
    assert_eq!(server_doc, a.items, "the server holds the merged list");
}

#[test]
fn a_viewer_receives_changes_and_cannot_make_any() {
    let mut server = FakeServer::default();
    let mut alice = device(1);
    let mut vic = device(3);
    let list = owned_list(&alice, 2002, "Read me");
    alice.client.add_item(list, "first").unwrap();
    server.access.insert((vic.user, list), Role::Viewer);
    sync(&mut server, &mut [&mut alice, &mut vic]);
    assert_eq!(vic.client.list(list).unwrap().items.len(), 1);
    assert!(matches!(vic.client.add_item(list, "sneaky"), Err(Error::Forbidden(_))));

    alice.client.add_item(list, "second").unwrap();
    sync(&mut server, &mut [&mut alice, &mut vic]);
    assert!(settled(&vic));
    assert_eq!(vic.client.list(list).unwrap().items, alice.client.list(list).unwrap().items);
    for m in &vic.sent {
        if let ClientMessage::Sync { data, .. } = m {
            assert!(Message::decode(data).unwrap().changes.is_empty(), "a viewer sent changes");
        }
    }
}

#[test]
fn a_removed_list_is_dropped_with_an_event() {
    let mut server = FakeServer::default();
    let mut alice = device(1);
    let mut bob = device(2);
    let list = owned_list(&alice, 3003, "Shared");
    server.access.insert((bob.user, list), Role::Editor);
    sync(&mut server, &mut [&mut alice, &mut bob]);
    assert!(bob.client.list(list).is_ok());
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    bob.client.subscribe(move |e| seen.lock().unwrap().push(e.clone()));
    let out = bob
        .session
        .as_mut()
        .unwrap()
        .handle(ServerMessage::Removed { list, reason: RemovalReason::Unshared })
        .unwrap();
    assert!(out.is_empty());
    assert!(matches!(bob.client.list(list), Err(Error::NotFound(_))));
    assert!(
        events.lock().unwrap().iter().any(|e| e.list_id == list && e.kind == ChangeKind::Deleted)
    );
}

#[test]
fn a_list_unshared_while_offline_is_dropped_at_the_next_welcome() {
    let mut server = FakeServer::default();
    let mut alice = device(1);
    let mut bob = device(2);
    let list = owned_list(&alice, 4004, "Was shared");
    server.access.insert((bob.user, list), Role::Editor);
    sync(&mut server, &mut [&mut alice, &mut bob]);
    server.access.remove(&(bob.user, list));
    sync(&mut server, &mut [&mut bob]);
    assert!(bob.client.lists().unwrap().is_empty());
}

#[test]
fn a_reconnect_resends_nothing_the_server_acknowledged() {
    let mut server = FakeServer::default();
    let mut alice = device(1);
    let list = owned_list(&alice, 5005, "Long");
    for i in 0..20 {
        alice.client.add_item(list, &format!("item {i}")).unwrap();
    }
    sync(&mut server, &mut [&mut alice]);
    alice.sent.clear();
    sync(&mut server, &mut [&mut alice]);
    assert!(settled(&alice));
    for m in &alice.sent {
        if let ClientMessage::Sync { data, .. } = m {
            assert!(Message::decode(data).unwrap().changes.is_empty(), "changes resent");
        }
    }
}

#[test]
fn a_refused_change_is_reported_as_an_event_and_the_list_is_not_in_step() {
    let alice = device(1);
    let list = owned_list(&alice, 6006, "Refused");
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    alice.client.subscribe(move |e| seen.lock().unwrap().push(e.clone()));
    let mut session = Session::new(Arc::clone(&alice.client), HashMap::new());
    session.handle(ServerMessage::Welcome { version: 1, user: alice.user, lists: vec![] }).unwrap();
    assert!(!session.settled().unwrap(), "nothing heard from the server yet");
    session
        .handle(ServerMessage::ListError {
            list,
            code: ListErrorCode::TooLarge,
            message: "too big".into(),
        })
        .unwrap();
    assert!(session.settled().unwrap(), "waiting would not help");
    assert_eq!(session.statuses().unwrap(), vec![(list, ListSyncStatus::Failed)]);
    assert!(events.lock().unwrap().iter().any(|e| e.list_id == list
        && matches!(&e.kind, ChangeKind::SyncError { code, .. } if code == "too_large")));
    // The same document is not pushed again on the next connection.
    let mut next = Session::new(Arc::clone(&alice.client), session.refused().clone());
    let out = next
        .handle(ServerMessage::Welcome { version: 1, user: alice.user, lists: vec![] })
        .unwrap();
    assert!(out.is_empty(), "{out:?}");
    // A new edit is tried again.
    alice.client.add_item(list, "smaller").unwrap();
    assert!(!next.local_changed(list).unwrap().is_empty());
}
