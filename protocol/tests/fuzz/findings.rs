//! Regression tests for what the fuzzer found: each replays one saved input from
//! `fuzz-corpus/findings/` (its note is in that folder's README) through the same checks as
//! the fuzzer, and passes once the input is handled: refused or merged without a panic, a
//! `Refusal::Broken`, a broken property or an allocation past the bound.
//!
//! Each is ignored with the reason it fails today; `cargo test -p tandem-protocol --test fuzz
//! -- --ignored` shows them failing. Switch one on when its fix lands (and remove its
//! `Signature:` line from the README, so that the fuzzer fails if it comes back).

use crate::corpus;
use crate::engine::{Checked, check};
use crate::targets::Case;

/// Replays `findings/<name>` and fails with what it still does.
fn replay(name: &str) -> String {
    let case = Case::decode(&corpus::finding(name));
    let Checked { outcome, peak, .. } = check(&case);
    match outcome {
        Ok(label) => label,
        Err(finding) => panic!(
            "{name} still {}: {} (peak {} KiB for {} input bytes)",
            finding.kind,
            finding.detail,
            peak >> 10,
            case.input_len()
        ),
    }
}

macro_rules! fixed {
    ($($test:ident: $file:literal;)*) => {$(
        #[test]
        fn $test() {
            replay($file);
        }
    )*};
}

macro_rules! finding {
    ($($test:ident: $file:literal, $why:literal;)*) => {$(
        #[test]
        #[ignore = $why]
        fn $test() {
            replay($file);
        }
    )*};
}

/// The two attacks issue 11 names: refused within the allocation bound, leaving the list as
/// it was.
#[test]
fn decompression_bomb_is_refused_within_the_allocation_bound() {
    let label = replay("decompression-bomb.case");
    assert!(!label.ends_with("changed"), "{label}");
}

#[test]
fn rle_op_bomb_is_refused_within_the_allocation_bound() {
    let label = replay("rle-op-bomb.case");
    assert!(!label.ends_with("changed"), "{label}");
}

// Fixed: each input is now refused, merged or reported as an error without a panic.
fixed! {
    room_change_breaking_the_collector_does_not_escape: "room-escaped-collector.case";
    room_unsorted_heads_do_not_panic_outgoing: "room-unsorted-heads.case";
    room_change_graph_assertion_is_refused: "room-broken-change-graph.case";
    room_op_on_a_missing_object_is_refused: "room-broken-obj-missing.case";
    room_batch_unwrap_is_refused: "room-broken-batch-unwrap.case";
    room_bad_actor_index_is_refused: "room-broken-actor-index.case";
    room_batch_entry_assertion_is_refused: "room-broken-batch-entry.case";
    loader_column_crossing_a_slab_is_an_error: "loader-hexane-slab.case";
    loader_negated_minimum_is_an_error: "loader-negate-overflow.case";
    loader_op_index_out_of_bounds_is_an_error: "loader-op-index.case";
    loader_truncated_column_number_is_an_error: "loader-hexane-number.case";
    loader_ops_out_of_order_are_an_error: "loader-op-order.case";
    loader_batch_unwrap_is_an_error: "loader-batch-unwrap.case";
    loader_op_on_a_missing_object_is_an_error: "loader-obj-missing.case";
    loader_bad_actor_index_is_an_error: "loader-actor-index.case";
    loader_change_graph_assertion_is_an_error: "loader-change-graph.case";
    loader_out_of_range_integer_is_an_error: "loader-int-conversion.case";
    loader_batch_entry_assertion_is_an_error: "loader-batch-entry.case";
    loader_batch_next_unwrap_is_an_error: "loader-batch-next.case";
    loader_change_graph_index_out_of_bounds_is_an_error: "loader-change-graph-index.case";
}

// Still open, each for the reason given.
finding! {
    room_change_with_a_missing_dependency_does_not_escape:
        "room-escaped-missing-dep.case",
        "automerge 0.12 takes the change, then cannot write it out: Refusal::Broken (the server reloads the room, cuts the socket and refuses the sender's changes to the list for a minute)";
    loader_duplicate_change_in_collector_is_an_error:
        "loader-collector.case",
        "automerge 0.12 saves this document to bytes that do not load; the room stores only snapshots that load back (Room::snapshot)";
    loader_document_saves_to_bytes_that_load_back:
        "loader-save-does-not-load.case",
        "automerge 0.12 saves this document to bytes that do not load; the room stores only snapshots that load back (Room::snapshot)";
    room_batch_146_unwrap_is_refused:
        "room-broken-batch-146.case",
        "automerge 0.12 panics applying this chain of changes (Refusal::Broken: the server reloads the room, cuts the socket and refuses the sender's changes to the list for a minute)";
    loader_incremental_bomb_stays_within_the_allocation_bound:
        "loader-incremental-bomb.case",
        "automerge inflates stored chunks without a bound; load_incremental only ever reads bytes the server or the client wrote (peers' changes pass the room's intake)";
}
