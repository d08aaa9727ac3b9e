-- Each list's Automerge document, on the list's shard: a snapshot plus the incremental changes
-- appended since, compacted back into the snapshot from time to time.

CREATE TABLE list_documents (
    list_id    BIGINT PRIMARY KEY REFERENCES todo_lists (list_id),
    snapshot   BYTEA  NOT NULL,                  -- Automerge save() of the whole document
    updated_at BIGINT NOT NULL
);

CREATE TABLE list_changes (
    list_id    BIGINT NOT NULL REFERENCES todo_lists (list_id),
    seq        BIGINT NOT NULL,                  -- 1, 2, ... per list, in the order saved
    data       BYTEA  NOT NULL,                  -- Automerge save_after(): one or more changes
    created_at BIGINT NOT NULL,
    PRIMARY KEY (list_id, seq)
);
