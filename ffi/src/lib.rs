//! UniFFI bindings of `tandem-client`. The bindings arrive with the FFI issue; this crate
//! exports nothing yet.
