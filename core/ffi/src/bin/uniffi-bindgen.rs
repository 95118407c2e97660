//! `uniffi-bindgen` for this repo: generates Swift, Kotlin and Python bindings from the built
//! perch-ffi library (library mode), so no global install is needed.

fn main() {
    uniffi::uniffi_bindgen_main()
}
