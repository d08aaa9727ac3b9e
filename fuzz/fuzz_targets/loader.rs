//! `ListDoc::load` and `validate` on any bytes: no panic; a document that loads saves to bytes
//! that load back to the same heads; one that validates can be read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_protocol::ListDoc;

fuzz_target!(|data: &[u8]| {
    let Ok(mut doc) = ListDoc::load(data) else { return };
    let heads = doc.heads();
    let mut again = ListDoc::load(&doc.save()).expect("its own save loads");
    assert_eq!(again.heads(), heads, "its own save loads to the same heads");
    if doc.validate().is_ok() {
        doc.title().expect("a valid list's title reads");
        doc.items().expect("a valid list's items read");
    }
});
