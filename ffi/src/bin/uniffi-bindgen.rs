//! The UniFFI bindings generator, built from this workspace so that it always matches the
//! UniFFI version `tandem-ffi` is compiled with (a mismatch fails at load time with a
//! checksum error). See `ffi/generate-bindings.sh` for the one command that uses it.

fn main() {
    uniffi::uniffi_bindgen_main()
}
