//! macOS specifics. UNVERIFIED: nothing here has been built or run on macOS (this project
//! builds on Linux only); the cfg-gated code is kept small and follows Tauri's and launchd's
//! documented APIs.
//!
//! - No Dock icon: `ActivationPolicy::Accessory` (set in `run`).
//! - Template tray icon: black glyph, `icon_as_template(true)` (see `tray.rs`, `icon.rs`).
//! - Open at login: a LaunchAgent plist written by this module to
//!   `~/Library/LaunchAgents/dev.perch.desktop.plist`. Chosen over tauri-plugin-autostart
//!   because it is one small file we can read, with no extra dependency, no AppleScript
//!   (the plugin's default on macOS drives System Events, which prompts for automation
//!   permission), and no login-item entitlement; launchd picks it up at the next login.
//!   On other platforms the menu item is not shown.

use std::path::Path;

/// The LaunchAgent's label (the bundle identifier).
pub const LAUNCH_AGENT_LABEL: &str = "dev.perch.desktop";

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The plist that starts `exe` at login (pure, so it is tested everywhere).
pub fn launch_agent_plist(exe: &Path) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>{label}</string>
  <key>ProgramArguments</key>
  <array>
    <string>{exe}</string>
  </array>
  <key>RunAtLoad</key>
  <true/>
  <key>ProcessType</key>
  <string>Interactive</string>
</dict>
</plist>
"#,
        label = LAUNCH_AGENT_LABEL,
        exe = xml_escape(&exe.display().to_string()),
    )
}

#[cfg(target_os = "macos")]
fn plist_path() -> Option<std::path::PathBuf> {
    directories::BaseDirs::new().map(|d| {
        d.home_dir()
            .join("Library/LaunchAgents")
            .join(format!("{LAUNCH_AGENT_LABEL}.plist"))
    })
}

/// Whether the app opens at login: `Some` on macOS (where the menu offers it), `None`
/// elsewhere.
pub fn launch_at_login_state() -> Option<bool> {
    #[cfg(target_os = "macos")]
    {
        Some(plist_path().is_some_and(|p| p.exists()))
    }
    #[cfg(not(target_os = "macos"))]
    {
        None
    }
}

/// Writes or removes the LaunchAgent; errors are logged (the menu shows the new state).
pub fn toggle_launch_at_login() {
    #[cfg(target_os = "macos")]
    {
        let Some(path) = plist_path() else {
            tracing::warn!("no home directory; cannot change Open at Login");
            return;
        };
        let result = if path.exists() {
            std::fs::remove_file(&path)
        } else {
            std::env::current_exe().and_then(|exe| {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&path, launch_agent_plist(&exe))
            })
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, path = %path.display(), "cannot change Open at Login");
        }
    }
    #[cfg(not(target_os = "macos"))]
    tracing::debug!("Open at Login is managed by the desktop environment here");
}

/// Hides the Dock icon: Perch lives in the menu bar.
#[cfg(target_os = "macos")]
pub fn menu_bar_only(app: &mut tauri::App) {
    app.set_activation_policy(tauri::ActivationPolicy::Accessory);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plist_runs_the_app_at_load_and_escapes_the_path() {
        let p = launch_agent_plist(Path::new(
            "/Applications/Perch & Co.app/Contents/MacOS/perch-desktop",
        ));
        assert!(p.contains("<string>dev.perch.desktop</string>"));
        assert!(p.contains("<key>RunAtLoad</key>\n  <true/>"));
        assert!(p.contains("Perch &amp; Co.app"), "{p}");
        assert!(!cfg!(target_os = "macos") || launch_at_login_state().is_some());
    }
}
