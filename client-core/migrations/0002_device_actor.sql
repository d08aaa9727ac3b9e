-- Tandem client store, version 2: the device's Automerge actor id.
--
-- The server binds every actor id to the user who first sent a change made by it and refuses
-- that actor from anyone else, so a device must not lend its actor to another user, and a
-- fresh actor per document load would leave a trail of one-use actors on every list. The
-- client makes one actor per signed-in user per device: 16 random bytes, drawn at each sign-in
-- and set on every document it loads or creates. NULL before any sign-in: each load then gets
-- a random actor, as before.
ALTER TABLE account ADD COLUMN device_actor BLOB;

-- A store already signed in gets its actor now rather than at its next sign-in.
UPDATE account SET device_actor = randomblob(16) WHERE user_id IS NOT NULL;
