-- Finds the list ids a user holds reserved and unused, on every database holding list shards:
-- `reserve_ids` counts them against `[limits] max_reserved_ids_per_user` before reserving more.
CREATE INDEX reserved_list_ids_user ON reserved_list_ids (user_id);
