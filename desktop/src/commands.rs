//! The Tauri commands the bundled shell page calls (and only it: `capabilities/default.json`
//! grants them to the `shell` window alone). The tray menu calls the same [`Desktop`]
//! actions. Failures reach the page as `{code, message}`.

use serde::Serialize;
use tauri::{AppHandle, Runtime, State};

use perch_protocol::methods::PairDecisionResult;
use perch_protocol::settings::{Settings, SettingsPatch};

use crate::app::{ActionError, AppView, Desktop};
use crate::windows::{self, Page};

/// A failed command as the page sees it: a stable code and a sentence (never a secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandError {
    /// `HOST_UNAVAILABLE`, `NOT_FOUND`, `INVALID_REQUEST`, ... (the host's code when it
    /// answered).
    pub code: String,
    /// For people.
    pub message: String,
}

impl From<ActionError> for CommandError {
    fn from(e: ActionError) -> Self {
        CommandError {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// Everything the page shows: tray state, status line, host state and reason, pending
/// requests, devices.
#[tauri::command]
pub fn app_state(desktop: State<'_, Desktop>) -> AppView {
    desktop.current()
}

/// Approves a pairing request.
#[tauri::command]
pub async fn approve_pairing(
    desktop: State<'_, Desktop>,
    request_id: String,
) -> Result<PairDecisionResult, CommandError> {
    Ok(desktop.approve(&request_id).await?)
}

/// Rejects a pairing request.
#[tauri::command]
pub async fn reject_pairing(
    desktop: State<'_, Desktop>,
    request_id: String,
) -> Result<PairDecisionResult, CommandError> {
    Ok(desktop.reject(&request_id).await?)
}

/// Tries the host (or the operator connection) again now.
#[tauri::command]
pub fn retry_host(desktop: State<'_, Desktop>) -> AppView {
    desktop.retry();
    desktop.current()
}

/// The settings in perch.toml, for the shell page's form.
#[tauri::command]
pub async fn load_settings(desktop: State<'_, Desktop>) -> Result<Settings, CommandError> {
    Ok(desktop.settings().await?)
}

/// Changes the bind address and/or mDNS mode (and may move a corrupt perch.toml aside), then
/// retries the host if none runs.
#[tauri::command]
pub async fn save_settings(
    desktop: State<'_, Desktop>,
    bind: Option<String>,
    mdns: Option<String>,
    reset_corrupt: Option<bool>,
) -> Result<Settings, CommandError> {
    let patch = SettingsPatch {
        bind,
        mdns,
        reset_corrupt: reset_corrupt.unwrap_or(false),
        ..SettingsPatch::default()
    };
    Ok(desktop.save_settings(patch).await?)
}

/// Opens `chat`, `devices`, `settings` or `canvas`; returns the label of the window shown
/// (`shell` when the host is down).
#[tauri::command]
pub async fn open_window<R: Runtime>(
    app: AppHandle<R>,
    desktop: State<'_, Desktop>,
    page: String,
) -> Result<String, CommandError> {
    let page = Page::parse(&page)?;
    Ok(windows::open(&app, &desktop, page)?)
}

/// Registers the commands on a builder (the real app and the MockRuntime tests use this).
pub fn register<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.invoke_handler(tauri::generate_handler![
        app_state,
        approve_pairing,
        reject_pairing,
        retry_host,
        load_settings,
        save_settings,
        open_window,
    ])
}
