-- Tandem client store, version 1.
-- Applied once, in one transaction, by store::migrations. Never edit a released migration:
-- add a new numbered file instead.
--
-- Ids are the protocol's 53-bit ids stored as INTEGER. Times are Unix milliseconds.

-- The signed-in account; at most one row. Without a token the user is signed out but the
-- lists stay usable offline.
CREATE TABLE account (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    server_url TEXT    NOT NULL,
    user_id    INTEGER,
    email      TEXT,
    token      TEXT
);

-- One row per list this device knows. `title` caches the document's title so that listing
-- lists never loads a document. `provisional` = 1: the id was drawn on this device with no
-- reserved id left, and the sync layer must have the server accept or remap it.
-- `deleted` = 1: deleted here and not yet confirmed by the server; hidden from every read.
CREATE TABLE lists (
    list_id     INTEGER PRIMARY KEY,
    title       TEXT    NOT NULL,
    role        INTEGER NOT NULL CHECK (role IN (1, 2, 3)), -- 1 OWNER, 2 EDITOR, 3 VIEWER
    provisional INTEGER NOT NULL DEFAULT 0 CHECK (provisional IN (0, 1)),
    deleted     INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- The list's Automerge document: a compacted snapshot plus the change chunks appended since
-- (document_changes). The counters decide when to compact without scanning the chunks.
-- `generation` grows with every write, so a process holding the document in memory can tell
-- that another process changed it.
CREATE TABLE documents (
    list_id        INTEGER PRIMARY KEY
                   REFERENCES lists (list_id) ON UPDATE CASCADE ON DELETE CASCADE,
    snapshot       BLOB    NOT NULL,
    snapshot_bytes INTEGER NOT NULL,
    changes_count  INTEGER NOT NULL DEFAULT 0,
    changes_bytes  INTEGER NOT NULL DEFAULT 0,
    generation     INTEGER NOT NULL DEFAULT 1
);

-- Incremental change chunks, applied in `seq` order on top of the snapshot.
CREATE TABLE document_changes (
    list_id INTEGER NOT NULL
            REFERENCES documents (list_id) ON UPDATE CASCADE ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    bytes   BLOB    NOT NULL,
    PRIMARY KEY (list_id, seq)
) WITHOUT ROWID;

-- The items as the document shows them, written in the same transaction as the document, so
-- that reading a long list is one indexed query and never an Automerge load.
CREATE TABLE items (
    list_id   INTEGER NOT NULL
              REFERENCES lists (list_id) ON UPDATE CASCADE ON DELETE CASCADE,
    item_id   INTEGER NOT NULL,
    content   TEXT    NOT NULL,
    done      INTEGER NOT NULL CHECK (done IN (0, 1)),
    sort_rank TEXT    NOT NULL,
    PRIMARY KEY (list_id, item_id)
) WITHOUT ROWID;

-- Display order: by sort_rank, ties by item id (the same order ListDoc::items gives).
CREATE INDEX items_display_order ON items (list_id, sort_rank, item_id);

-- List ids the server reserved for this user (hi/lo), used for lists created offline so that
-- they keep their id after the first sync.
CREATE TABLE reserved_ids (
    list_id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL
);

-- Per-list sync state with the server: the encoded automerge `sync::State` and the heads the
-- server last advertised (concatenated 32-byte change hashes). Filled by the sync engine.
CREATE TABLE sync_states (
    list_id      INTEGER PRIMARY KEY
                 REFERENCES lists (list_id) ON UPDATE CASCADE ON DELETE CASCADE,
    state        BLOB NOT NULL,
    server_heads BLOB NOT NULL
);
