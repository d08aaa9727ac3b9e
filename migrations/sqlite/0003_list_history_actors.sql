-- Who made each change of a list, as the server can vouch for it, on the list's shard
-- (list_id % 4096). Automerge changes name an actor id, which any peer can make up; the
-- server binds each actor id to the user who first sent a change made by it (per list) and
-- refuses that actor's changes from anyone else, so the user of an accepted change is known.

-- Each actor id seen on a list and the user it belongs to. Never rebound: a second user
-- sending a change made by this actor is refused.
CREATE TABLE list_actors (
    list_id    INTEGER NOT NULL REFERENCES todo_lists (list_id),
    actor      BLOB    NOT NULL,                 -- the Automerge actor id's bytes
    user_id    INTEGER NOT NULL,                 -- who first sent a change made by it
    created_at INTEGER NOT NULL,
    PRIMARY KEY (list_id, actor)
);

-- Every change the server accepted, written in the transaction that saved it. `seq` orders
-- them (1, 2, ... per list, in the order accepted) and is the REST history's page cursor.
CREATE TABLE list_history (
    list_id     INTEGER NOT NULL REFERENCES todo_lists (list_id),
    seq         INTEGER NOT NULL,
    hash        BLOB    NOT NULL,                -- the Automerge change hash (32 bytes)
    user_id     INTEGER NOT NULL,                -- the user its actor is bound to
    accepted_at INTEGER NOT NULL,                -- the server's clock when it was saved
    PRIMARY KEY (list_id, seq)
);
-- A change is recorded once.
CREATE UNIQUE INDEX list_history_hash ON list_history (list_id, hash);

-- What each accepted change did, in order (`tandem_protocol::history::ChangeAction`).
CREATE TABLE list_history_actions (
    list_id  INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    position INTEGER NOT NULL,                   -- 0, 1, ... within the change
    action   TEXT    NOT NULL,                   -- created, renamed, added, edited, checked, ...
    item_id  INTEGER,                            -- the item, NULL for created and renamed
    PRIMARY KEY (list_id, seq, position),
    FOREIGN KEY (list_id, seq) REFERENCES list_history (list_id, seq)
);
-- "Who checked this off": one item's history, newest first.
CREATE INDEX list_history_actions_item ON list_history_actions (list_id, item_id, seq);
