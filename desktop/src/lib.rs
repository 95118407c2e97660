//! Perch's menu-bar app (Tauri 2): it keeps a Perch host available (attaching to one that
//! already answers, or running one in this process), shows its state in the tray (idle,
//! working, attention, error, with pairing requests to approve right in the menu), opens the
//! host's web UI in windows, notifies about what needs the user, and makes this computer a
//! node of its own host.
//!
//! | module | owns |
//! |---|---|
//! | `host.rs` | the host supervisor: data dir, perch.toml, attach or start, watch, retry; every failure a [`host::HostState::Error`] |
//! | `app.rs` | the core: operator connection per host, tracker, node mode, the actions, the [`app::AppView`] |
//! | `tracker.rs` | pending requests, devices, running turns and presence, from operator events |
//! | `state.rs` | the tray state and status line, a pure function |
//! | `tray.rs`, `icon.rs` | the tray icon (drawn in code) and its menu (a pure model, rendered) |
//! | `windows.rs` | the web-UI windows, the bundled shell page, the Canvas placeholder |
//! | `commands.rs` | the Tauri commands of the shell page |
//! | `notify.rs` | which notifications to show (pure) and showing them |
//! | `node_mode.rs` | this computer as a node (setup-code enrolment, desktop capabilities) |
//! | `activity.rs` | this computer's idle time for presence (who is at which device) |
//! | `macos.rs` | menu-bar-only activation and Open at Login (unverified) |
//!
//! **Architecture Invariant:** the app never crashes over the host: a taken port, a corrupt
//! perch.toml, an unwritable data directory or a host that dies become an error state with a
//! reason the tray shows and the shell page helps to fix, and Retry tries again.
//!
//! **Architecture Invariant:** no business logic here. Pairing decisions, settings validation
//! and host behaviour belong to the gateway; the app calls the same operator methods as every
//! other client, through `perch-client`.
//!
//! **Architecture Invariant:** only the bundled shell page may call the app's commands; windows
//! showing the host's web UI load it over HTTP with no IPC, and get the operator token only in
//! the URL fragment, which is never logged or shown.
//!
//! **Architecture Invariant:** everything a test can check without a window system lives
//! outside `tray.rs` and [`run`]: tray and menu objects need GTK, which the MockRuntime tests
//! do not have.

#![warn(missing_docs)]

pub mod activity;
pub mod app;
pub mod commands;
pub mod host;
pub mod icon;
pub mod macos;
pub mod node_mode;
pub mod notify;
pub mod state;
pub mod tracker;
pub mod tray;
pub mod windows;

use std::net::SocketAddr;
use std::path::PathBuf;

use tauri::{AppHandle, Manager, RunEvent, Runtime};

pub use app::{AppView, Desktop, DesktopOptions};

/// Why the app could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No data directory could be chosen.
    #[error(transparent)]
    DataDir(#[from] host::DataDirError),
    /// Tauri could not start (no display, WebKitGTK missing, tray setup failed).
    #[error("the window system could not start Perch: {0}")]
    Tauri(#[from] tauri::Error),
}

/// What the command line chose.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--data-dir` (or `PERCH_DATA_DIR`).
    pub data_dir: Option<PathBuf>,
    /// `--bind`: listen address overriding perch.toml.
    pub bind: Option<SocketAddr>,
    /// Run this computer as a node of its host.
    pub node_mode: bool,
}

/// Runs the app until the user chooses Quit (or the process gets SIGINT/SIGTERM).
pub fn run(options: RunOptions) -> Result<(), RunError> {
    let data_dir = host::resolve_data_dir(options.data_dir)?;
    tracing::info!(data_dir = %data_dir.display(), "starting Perch");
    let mut core = DesktopOptions::new(data_dir);
    core.host.bind = options.bind;
    core.node_mode = options.node_mode;
    let desktop = tauri::async_runtime::block_on(async move { Desktop::start(core) });
    let for_setup = desktop.clone();
    let app = commands::register(tauri::Builder::default())
        .manage(desktop.clone())
        .setup(move |app| {
            #[cfg(target_os = "macos")]
            macos::menu_bar_only(app);
            let handle = app.handle().clone();
            tray::install(&handle, for_setup.clone())?;
            spawn_notifier(handle.clone(), for_setup.clone());
            spawn_signal_handler(handle, for_setup.clone());
            Ok(())
        })
        .build(tauri::generate_context!())?;
    app.run(move |handle, event| {
        if let RunEvent::ExitRequested { code, api, .. } = event {
            // Closing the last window must not end a tray app; only Quit (or a signal) does.
            if code.is_none() && !desktop.is_quitting() {
                api.prevent_exit();
            } else if !desktop.is_quitting() {
                // Asked to exit by someone else: stop the host cleanly first.
                api.prevent_exit();
                quit(handle, &desktop);
            }
        }
    });
    Ok(())
}

/// Stops the node, the operator connection and an in-process host, then exits.
pub(crate) fn quit<R: Runtime>(app: &AppHandle<R>, desktop: &Desktop) {
    if desktop.is_quitting() {
        return;
    }
    desktop.begin_quit();
    tracing::info!("quitting");
    let app = app.clone();
    let desktop = desktop.clone();
    tauri::async_runtime::spawn(async move {
        desktop.shutdown().await;
        app.exit(0);
    });
}

/// Shows notifications for what the tracker observes.
fn spawn_notifier<R: Runtime>(app: AppHandle<R>, desktop: Desktop) {
    let mut observations = desktop.observations();
    tauri::async_runtime::spawn(async move {
        loop {
            let obs = match observations.recv().await {
                Ok(o) => o,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let ctx = notify::NotifyContext {
                now_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                    .unwrap_or(0),
                chat_visible: windows::is_visible(&app, windows::Page::Chat),
                self_node_id: desktop
                    .current()
                    .this_computer
                    .device_id()
                    .map(String::from),
            };
            if let Some(notice) = notify::decide(&obs, &ctx) {
                notify::send(notice);
            }
        }
    });
}

/// SIGINT and SIGTERM quit like the menu does, so an in-process host closes its database.
fn spawn_signal_handler<R: Runtime>(app: AppHandle<R>, desktop: Desktop) {
    tauri::async_runtime::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::warn!("cannot listen for SIGTERM/SIGINT");
                return;
            };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        let handle = app.app_handle().clone();
        quit(&handle, &desktop);
    });
}
