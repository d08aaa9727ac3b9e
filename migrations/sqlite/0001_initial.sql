-- Tandem's initial schema (SQLite). Timestamps are Unix milliseconds (UTC); flags are 0/1.
-- Ids are 53-bit Snowflake ids made by the server (lists, users) or the client (items).

-- Accounts, on the user's shard (user_id % 1024).
CREATE TABLE users (
    user_id         INTEGER PRIMARY KEY,
    email           TEXT    NOT NULL,            -- normalised: trimmed, lower-case
    password_hash   TEXT    NOT NULL,            -- argon2id PHC string
    region_id       TEXT    NOT NULL DEFAULT 'US',
    verified_at     INTEGER,                     -- NULL until the email is verified
    code_hash       TEXT,                        -- HMAC of the pending verification code
    code_expires_at INTEGER,
    code_attempts   INTEGER NOT NULL DEFAULT 0,  -- wrong codes entered for the pending code
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (email);

-- Email -> account, on the email's shard (hash of the normalised email % 1024). The primary
-- key here is what makes an email unique across every user shard.
CREATE TABLE user_emails (
    email      TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

-- Lists shared with an email that has no verified account yet, on the email's shard. Applied
-- (and deleted) when that email is verified or logs in.
CREATE TABLE pending_invitations (
    email      TEXT    NOT NULL,
    list_id    INTEGER NOT NULL,
    role       INTEGER NOT NULL,                 -- 2 EDITOR, 3 VIEWER
    invited_by INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (email, list_id)
);

-- The lists a user can see, on the user's shard. A cache of list_collaborators: the list shard
-- is authoritative, this index is written after it and can be rebuilt from it.
CREATE TABLE user_list_index (
    user_id    INTEGER NOT NULL,
    list_id    INTEGER NOT NULL,
    role       INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, list_id)
);

-- Lists and everything of one list, on the list's shard (list_id % 4096).
CREATE TABLE todo_lists (
    list_id    INTEGER PRIMARY KEY,
    owner_id   INTEGER NOT NULL,
    title      TEXT    NOT NULL,
    version    INTEGER NOT NULL DEFAULT 1,       -- bumped by every change (optimistic locking)
    is_deleted INTEGER NOT NULL DEFAULT 0,       -- soft delete
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX todo_lists_owner ON todo_lists (owner_id);

CREATE TABLE todo_items (
    list_id    INTEGER NOT NULL REFERENCES todo_lists (list_id),
    item_id    INTEGER NOT NULL,                 -- unique within its list
    content    TEXT    NOT NULL DEFAULT '',
    is_done    INTEGER NOT NULL DEFAULT 0,
    sort_rank  TEXT    NOT NULL DEFAULT '',      -- fractional index; ties broken by item_id
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (list_id, item_id)
);

CREATE TABLE list_collaborators (
    list_id    INTEGER NOT NULL REFERENCES todo_lists (list_id),
    user_id    INTEGER NOT NULL,
    email      TEXT    NOT NULL,                 -- copied from users: read without a cross-shard hop
    role       INTEGER NOT NULL,                 -- 1 OWNER, 2 EDITOR, 3 VIEWER
    created_at INTEGER NOT NULL,
    PRIMARY KEY (list_id, user_id)
);
-- Finds a user's memberships on this database when the user_list_index is rebuilt.
CREATE INDEX list_collaborators_user ON list_collaborators (user_id);

-- List ids handed to a client in advance, so that a list it creates offline keeps its id.
CREATE TABLE reserved_list_ids (
    list_id    INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
