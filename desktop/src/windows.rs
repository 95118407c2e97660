//! The app's windows. Chat, Devices and Settings show the host's own web UI over HTTP
//! (`http://ADDR/ui/<page>#token=...`, an external URL with no IPC). When no host runs, they
//! open the bundled shell page instead (the error, the settings that fix it, Retry), the only
//! window allowed to call Perch's commands. Canvas is an honest placeholder page. Closing any
//! window hides it; the app lives in the tray.

use tauri::{
    AppHandle, Manager, Runtime, WebviewUrl, WebviewWindow, WebviewWindowBuilder, WindowEvent,
};

use crate::app::{ActionError, Desktop};

/// Label of the bundled shell window (named in `capabilities/default.json`).
pub const SHELL_LABEL: &str = "shell";

/// A window the menu or a command can open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The assistant (`/ui/chat`).
    Chat,
    /// Paired devices and requests (`/ui/devices`).
    Devices,
    /// The host's settings (`/ui/settings`).
    Settings,
    /// The Canvas placeholder.
    Canvas,
}

impl Page {
    /// Parses a page name as the shell page and menu ids spell it.
    pub fn parse(name: &str) -> Result<Page, ActionError> {
        match name {
            "chat" => Ok(Page::Chat),
            "devices" => Ok(Page::Devices),
            "settings" => Ok(Page::Settings),
            "canvas" => Ok(Page::Canvas),
            other => Err(ActionError::Invalid(format!(
                "unknown page {other:?}; expected chat, devices, settings or canvas"
            ))),
        }
    }

    /// The page's name, window label and path under `/ui/`.
    pub fn name(self) -> &'static str {
        match self {
            Page::Chat => "chat",
            Page::Devices => "devices",
            Page::Settings => "settings",
            Page::Canvas => "canvas",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Page::Chat => "Perch — Chat",
            Page::Devices => "Perch — Devices",
            Page::Settings => "Perch — Settings",
            Page::Canvas => "Perch — Canvas",
        }
    }
}

/// Opens (or shows and focuses) the window for `page`; falls back to the shell page when the
/// host's UI cannot be reached. Returns the label of the window shown.
pub fn open<R: Runtime>(
    app: &AppHandle<R>,
    desktop: &Desktop,
    page: Page,
) -> Result<String, ActionError> {
    if page == Page::Canvas {
        let w = app_window(
            app,
            Page::Canvas.name(),
            Page::Canvas.title(),
            "canvas.html",
        )?;
        present(&w);
        return Ok(w.label().to_string());
    }
    let url = match desktop.ui_url(page.name()) {
        Ok(url) => url,
        Err(e) => {
            tracing::info!(reason = %e, page = page.name(), "no host UI; opening the shell page");
            return open_shell(app);
        }
    };
    let w = match app.get_webview_window(page.name()) {
        Some(w) => {
            // The host may have moved (new bind address): point the window at it again.
            let same_host = w
                .url()
                .map(|u| u.origin() == url.0.origin())
                .unwrap_or(false);
            if !same_host {
                w.navigate(url.0)
                    .map_err(|e| ActionError::Window(e.to_string()))?;
            }
            w
        }
        None => {
            let w = WebviewWindowBuilder::new(app, page.name(), WebviewUrl::External(url.0))
                .title(page.title())
                .inner_size(960.0, 720.0)
                .build()
                .map_err(|e| ActionError::Window(e.to_string()))?;
            hide_on_close(&w);
            w
        }
    };
    present(&w);
    Ok(w.label().to_string())
}

/// Opens the bundled shell page (host status, settings, Retry).
pub fn open_shell<R: Runtime>(app: &AppHandle<R>) -> Result<String, ActionError> {
    let w = app_window(app, SHELL_LABEL, "Perch", "index.html")?;
    present(&w);
    Ok(w.label().to_string())
}

/// A window showing a page bundled with the app.
fn app_window<R: Runtime>(
    app: &AppHandle<R>,
    label: &str,
    title: &str,
    file: &str,
) -> Result<WebviewWindow<R>, ActionError> {
    if let Some(w) = app.get_webview_window(label) {
        return Ok(w);
    }
    let w = WebviewWindowBuilder::new(app, label, WebviewUrl::App(file.into()))
        .title(title)
        .inner_size(560.0, 640.0)
        .build()
        .map_err(|e| ActionError::Window(e.to_string()))?;
    hide_on_close(&w);
    Ok(w)
}

fn hide_on_close<R: Runtime>(w: &WebviewWindow<R>) {
    let window = w.clone();
    w.on_window_event(move |event| {
        if let WindowEvent::CloseRequested { api, .. } = event {
            api.prevent_close();
            if let Err(e) = window.hide() {
                tracing::debug!(error = %e, "cannot hide window");
            }
        }
    });
}

fn present<R: Runtime>(w: &WebviewWindow<R>) {
    for result in [w.unminimize(), w.show(), w.set_focus()] {
        if let Err(e) = result {
            tracing::debug!(error = %e, label = w.label(), "window call failed");
        }
    }
}

/// Whether the window of `page` is on screen (shown and not minimized).
pub fn is_visible<R: Runtime>(app: &AppHandle<R>, page: Page) -> bool {
    app.get_webview_window(page.name())
        .is_some_and(|w| w.is_visible().unwrap_or(false) && !w.is_minimized().unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_parse_by_name() {
        for p in [Page::Chat, Page::Devices, Page::Settings, Page::Canvas] {
            assert_eq!(Page::parse(p.name()).unwrap(), p);
        }
        let err = Page::parse("admin").unwrap_err();
        assert_eq!(err.code(), "INVALID_REQUEST");
        assert!(err.to_string().contains("admin"));
    }
}
