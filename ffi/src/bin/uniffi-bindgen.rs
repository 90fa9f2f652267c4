//! The UniFFI bindings generator, built against the same UniFFI as the library.
fn main() {
    uniffi::uniffi_bindgen_main()
}
