//! `ClientMessage::decode` and `ServerMessage::decode` on any bytes: no panic, and a frame that
//! decodes encodes back to a frame that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_protocol::wire::{ClientMessage, ServerMessage};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ClientMessage::decode(data) {
        assert_eq!(ClientMessage::decode(&m.encode()).unwrap(), m);
    }
    if let Ok(m) = ServerMessage::decode(data) {
        assert_eq!(ServerMessage::decode(&m.encode()).unwrap(), m);
    }
});
