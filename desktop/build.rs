//! Tauri's build step, with an app manifest so Perch's own commands need a permission: only
//! the windows that `capabilities/default.json` names (the bundled shell page) may call them.

fn main() {
    let manifest = tauri_build::AppManifest::new().commands(&[
        "app_state",
        "approve_pairing",
        "reject_pairing",
        "retry_host",
        "load_settings",
        "save_settings",
        "open_window",
    ]);
    if let Err(e) = tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest)) {
        panic!("tauri-build failed: {e:#}");
    }
}
