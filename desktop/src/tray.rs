//! The tray icon and its menu. The menu is a pure model of the [`AppView`]
//! ([`menu_model`], unit-tested) rendered to Tauri menu items and rebuilt whenever the model
//! changes. Pending pairing requests come right after the status row, so the first item that
//! can be chosen is the first "Approve".
//!
//! Only the real app installs the tray ([`install`]): tray and menu objects need GTK, which
//! tests on the MockRuntime do not have.

use tauri::image::Image;
use tauri::menu::{IsMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Runtime};

use crate::app::{AppView, Desktop};
use crate::host::{HostMode, HostState};
use crate::icon::{self, TRAY_ICON_SIZE};
use crate::state::{MENU_LABEL_CHARS, TrayState, menu_label};

/// Longest device name in a pending request's row, so the row never outgrows the menu.
const PENDING_NAME_CHARS: usize = 32;
/// Longest platform in a pending request's row.
const PENDING_PLATFORM_CHARS: usize = 16;
/// Pending requests the menu lists one by one (newest first); past this a single row counts
/// the rest and opens Devices, so a flood of requests can't bury the rest of the menu.
pub const PENDING_ROWS: usize = 5;
use crate::windows::{self, Page};

/// The tray icon's id.
pub const TRAY_ID: &str = "perch";

/// One row of the menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// Text that cannot be chosen.
    Info(String),
    /// A choice, with the action its id names.
    Action {
        /// The action.
        action: MenuAction,
        /// The label.
        label: String,
    },
    /// A line.
    Separator,
    /// A submenu.
    Submenu {
        /// Its label.
        label: String,
        /// Its rows.
        rows: Vec<Row>,
    },
}

/// What choosing a menu item does; its id on the wire of the menu system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuAction {
    /// Approve a pairing request.
    Approve(String),
    /// Reject a pairing request.
    Reject(String),
    /// Open a window.
    Open(Page),
    /// Try the host again now (shown in the error state).
    Retry,
    /// Restart the in-app host so a changed perch.toml applies.
    RestartHost,
    /// Turn launch at login on or off (macOS).
    ToggleLaunchAtLogin,
    /// Quit the app (stopping an in-process host).
    Quit,
}

impl MenuAction {
    /// The menu item id.
    pub fn id(&self) -> String {
        match self {
            MenuAction::Approve(r) => format!("approve:{r}"),
            MenuAction::Reject(r) => format!("reject:{r}"),
            MenuAction::Open(p) => format!("open:{}", p.name()),
            MenuAction::Retry => "retry".into(),
            MenuAction::RestartHost => "restart".into(),
            MenuAction::ToggleLaunchAtLogin => "login".into(),
            MenuAction::Quit => "quit".into(),
        }
    }

    /// Reads an id back; unknown ids (the disabled rows) are `None`.
    pub fn parse(id: &str) -> Option<MenuAction> {
        if let Some(r) = id.strip_prefix("approve:") {
            return Some(MenuAction::Approve(r.to_string()));
        }
        if let Some(r) = id.strip_prefix("reject:") {
            return Some(MenuAction::Reject(r.to_string()));
        }
        if let Some(p) = id.strip_prefix("open:") {
            return Page::parse(p).ok().map(MenuAction::Open);
        }
        match id {
            "retry" => Some(MenuAction::Retry),
            "restart" => Some(MenuAction::RestartHost),
            "login" => Some(MenuAction::ToggleLaunchAtLogin),
            "quit" => Some(MenuAction::Quit),
            _ => None,
        }
    }
}

/// "just now", "5 min ago", "3 h ago", "2 days ago".
pub fn ago(now_ms: i64, then_ms: i64) -> String {
    let s = (now_ms - then_ms).max(0) / 1000;
    match s {
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h ago", s / 3600),
        _ => match s / 86_400 {
            1 => "1 day ago".into(),
            d => format!("{d} days ago"),
        },
    }
}

/// The menu for a view. `launch_at_login` is `Some` only where the app manages it (macOS).
pub fn menu_model(view: &AppView, now_ms: i64, launch_at_login: Option<bool>) -> Vec<Row> {
    let mut rows = vec![Row::Info(menu_label(&view.status, MENU_LABEL_CHARS))];
    if matches!(view.tray, TrayState::Error { .. }) {
        // Fixing usually happens in Settings; Retry is for when the cause went away.
        rows.push(Row::Action {
            action: MenuAction::Retry,
            label: "Retry Now".into(),
        });
    }
    if view.restart_required
        && matches!(
            view.host,
            HostState::Running {
                mode: HostMode::Embedded,
                ..
            }
        )
    {
        rows.push(Row::Action {
            action: MenuAction::RestartHost,
            label: "Restart Host to Apply Settings".into(),
        });
    }
    let mut newest: Vec<_> = view.pending.iter().collect();
    // Stable: requests of the same moment keep the host's order.
    newest.sort_by_key(|p| std::cmp::Reverse(p.requested_at_ms));
    for p in newest.iter().take(PENDING_ROWS) {
        // The code first, and only the name and platform shortened: however long or odd the
        // device's name, the code the user compares is always whole and in the same place.
        rows.push(Row::Info(format!(
            "{} · {} ({})",
            match &p.verification_code {
                Some(code) => format!("code {code}"),
                None => "no code".to_string(),
            },
            menu_label(&p.display_name, PENDING_NAME_CHARS),
            menu_label(&p.platform, PENDING_PLATFORM_CHARS)
        )));
        rows.push(Row::Action {
            action: MenuAction::Approve(p.request_id.clone()),
            label: menu_label(&format!("Approve {}", p.display_name), MENU_LABEL_CHARS),
        });
        rows.push(Row::Action {
            action: MenuAction::Reject(p.request_id.clone()),
            label: menu_label(&format!("Reject {}", p.display_name), MENU_LABEL_CHARS),
        });
    }
    if let Some(more) = newest.len().checked_sub(PENDING_ROWS).filter(|m| *m > 0) {
        rows.push(Row::Action {
            action: MenuAction::Open(Page::Devices),
            label: match more {
                1 => "1 more pairing request…".into(),
                n => format!("{n} more pairing requests…"),
            },
        });
    }
    rows.push(Row::Separator);
    let me = view.this_computer.device_id();
    let mut devices: Vec<Row> = view
        .devices
        .iter()
        .map(|d| {
            let this = if me == Some(d.node_id.as_str()) {
                " (this computer)"
            } else {
                ""
            };
            let state = if d.online {
                "online".to_string()
            } else {
                match d.last_seen_ms {
                    Some(t) => format!("offline · last seen {}", ago(now_ms, t)),
                    None => "offline · never connected".into(),
                }
            };
            let dot = if d.online { "●" } else { "○" };
            Row::Info(menu_label(
                &format!("{dot} {}{this} — {state}", d.display_name),
                MENU_LABEL_CHARS,
            ))
        })
        .collect();
    if devices.is_empty() {
        devices.push(Row::Info("No paired devices".into()));
    }
    devices.push(Row::Separator);
    devices.push(Row::Action {
        action: MenuAction::Open(Page::Devices),
        label: "Manage Devices…".into(),
    });
    rows.push(Row::Submenu {
        label: "Devices".into(),
        rows: devices,
    });
    rows.push(Row::Separator);
    for (page, label) in [
        (Page::Chat, "Open Chat"),
        (Page::Canvas, "Open Canvas"),
        (Page::Settings, "Settings…"),
    ] {
        rows.push(Row::Action {
            action: MenuAction::Open(page),
            label: label.into(),
        });
    }
    if let Some(on) = launch_at_login {
        rows.push(Row::Action {
            action: MenuAction::ToggleLaunchAtLogin,
            label: if on {
                "✓ Open at Login".into()
            } else {
                "Open at Login".into()
            },
        });
    }
    rows.push(Row::Separator);
    rows.push(Row::Action {
        action: MenuAction::Quit,
        label: "Quit Perch".into(),
    });
    rows
}

/// The tray image for a state.
pub fn tray_image(state: &TrayState) -> Image<'static> {
    Image::new_owned(
        icon::rgba(state, TRAY_ICON_SIZE, icon::platform_style()),
        TRAY_ICON_SIZE,
        TRAY_ICON_SIZE,
    )
}

fn render_rows<R: Runtime>(
    app: &AppHandle<R>,
    rows: &[Row],
) -> tauri::Result<Vec<Box<dyn IsMenuItem<R>>>> {
    let mut items: Vec<Box<dyn IsMenuItem<R>>> = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        match row {
            Row::Info(text) => {
                items.push(Box::new(MenuItem::with_id(
                    app,
                    format!("info:{i}"),
                    text,
                    false,
                    None::<&str>,
                )?));
            }
            Row::Action { action, label } => {
                items.push(Box::new(MenuItem::with_id(
                    app,
                    action.id(),
                    label,
                    true,
                    None::<&str>,
                )?));
            }
            Row::Separator => items.push(Box::new(PredefinedMenuItem::separator(app)?)),
            Row::Submenu { label, rows } => {
                let children = render_rows(app, rows)?;
                let refs: Vec<&dyn IsMenuItem<R>> = children.iter().map(|b| b.as_ref()).collect();
                items.push(Box::new(Submenu::with_items(app, label, true, &refs)?));
            }
        }
    }
    Ok(items)
}

fn render<R: Runtime>(app: &AppHandle<R>, rows: &[Row]) -> tauri::Result<Menu<R>> {
    let items = render_rows(app, rows)?;
    let refs: Vec<&dyn IsMenuItem<R>> = items.iter().map(|b| b.as_ref()).collect();
    Menu::with_items(app, &refs)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Creates the tray icon and keeps it (icon, tooltip, menu) in step with the app's view.
pub fn install<R: Runtime>(app: &AppHandle<R>, desktop: Desktop) -> tauri::Result<TrayIcon<R>> {
    let view = desktop.current();
    let login = crate::macos::launch_at_login_state();
    let model = menu_model(&view, now_ms(), login);
    let menu = render(app, &model)?;
    let handler = desktop.clone();
    let builder = TrayIconBuilder::with_id(TRAY_ID)
        .icon(tray_image(&view.tray))
        .tooltip(&view.status)
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(move |app, event| on_menu(app, &handler, event.id().as_ref()));
    #[cfg(target_os = "macos")]
    let builder = builder.icon_as_template(true);
    let tray = builder.build(app)?;
    let updater = tray.clone();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let mut views = desktop.view();
        let mut shown = (view.tray.clone(), view.status.clone(), model);
        // Devices' "last seen" ages: refresh the menu now and then even without news.
        let mut ages = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tokio::select! {
                r = views.changed() => if r.is_err() { return },
                _ = ages.tick() => {}
            }
            let view = views.borrow_and_update().clone();
            let login = crate::macos::launch_at_login_state();
            let model = menu_model(&view, now_ms(), login);
            if view.tray != shown.0
                && let Err(e) = updater.set_icon(Some(tray_image(&view.tray)))
            {
                tracing::warn!(error = %e, "cannot update the tray icon");
            }
            if view.status != shown.1
                && let Err(e) = updater.set_tooltip(Some(&view.status))
            {
                tracing::debug!(error = %e, "cannot update the tray tooltip");
            }
            if model != shown.2 {
                match render(&app, &model) {
                    Ok(menu) => {
                        if let Err(e) = updater.set_menu(Some(menu)) {
                            tracing::warn!(error = %e, "cannot update the tray menu");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot build the tray menu"),
                }
            }
            shown = (view.tray, view.status, model);
        }
    });
    Ok(tray)
}

fn on_menu<R: Runtime>(app: &AppHandle<R>, desktop: &Desktop, id: &str) {
    let Some(action) = MenuAction::parse(id) else {
        return;
    };
    match action {
        MenuAction::Approve(request_id) => {
            let desktop = desktop.clone();
            tauri::async_runtime::spawn(async move {
                if let Err(e) = desktop.approve(&request_id).await {
                    tracing::warn!(error = %e, "approve from the menu failed");
                }
            });
        }
        MenuAction::Reject(request_id) => {
            let desktop = desktop.clone();
            tauri::async_runtime::spawn(async move {
                if let Err(e) = desktop.reject(&request_id).await {
                    tracing::warn!(error = %e, "reject from the menu failed");
                }
            });
        }
        MenuAction::Open(page) => {
            if let Err(e) = windows::open(app, desktop, page) {
                tracing::warn!(error = %e, page = page.name(), "cannot open window");
            }
        }
        MenuAction::Retry => desktop.retry(),
        MenuAction::RestartHost => desktop.restart_host(),
        MenuAction::ToggleLaunchAtLogin => crate::macos::toggle_launch_at_login(),
        MenuAction::Quit => crate::quit(app, desktop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{HostMode, HostState};
    use crate::node_mode::{Enrolment, NodeModeState};
    use crate::tracker::{DeviceView, PendingPairing};

    const NOW: i64 = 1_700_000_000_000;

    fn view(pending: Vec<PendingPairing>, devices: Vec<DeviceView>) -> AppView {
        AppView {
            tray: if pending.is_empty() {
                TrayState::Idle
            } else {
                TrayState::Attention
            },
            status: "Perch: 1 pairing request waiting".into(),
            host: HostState::Running {
                addr: "127.0.0.1:1".parse().unwrap(),
                mode: HostMode::Embedded,
                host_id: "h".into(),
            },
            connection: "connected".into(),
            pending,
            devices,
            active_turns: 0,
            data_dir: "/d".into(),
            bind_override: None,
            this_computer: NodeModeState::Running {
                device_id: "me".into(),
                enrolment: Enrolment::SetupCode,
                connected: true,
                detail: "connected".into(),
            },
            restart_required: false,
        }
    }

    fn pending(name: &str) -> PendingPairing {
        PendingPairing {
            request_id: format!("r-{name}"),
            device_id: "d".into(),
            display_name: name.into(),
            platform: "ios".into(),
            verification_code: Some("123 456".into()),
            requested_at_ms: 0,
        }
    }

    fn device(id: &str, online: bool, last_seen: Option<i64>) -> DeviceView {
        DeviceView {
            node_id: id.into(),
            display_name: id.to_uppercase(),
            platform: "linux".into(),
            online,
            last_seen_ms: last_seen,
        }
    }

    #[test]
    fn past_a_handful_the_newest_are_listed_and_the_rest_counted() {
        let flood: Vec<PendingPairing> = (0..40)
            .map(|i| PendingPairing {
                requested_at_ms: NOW - 40_000 + i * 1000,
                ..pending(&format!("dev{i:02}"))
            })
            .collect();
        let rows = menu_model(&view(flood, vec![]), NOW, None);
        let approves: Vec<&str> = rows
            .iter()
            .filter_map(|r| match r {
                Row::Action {
                    action: MenuAction::Approve(id),
                    ..
                } => Some(id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            approves,
            ["r-dev39", "r-dev38", "r-dev37", "r-dev36", "r-dev35"]
        );
        let more = rows
            .iter()
            .find(|r| matches!(r, Row::Action { label, .. } if label.contains("more pairing")))
            .unwrap();
        assert_eq!(
            more,
            &Row::Action {
                action: MenuAction::Open(Page::Devices),
                label: "35 more pairing requests…".into(),
            }
        );
        // The rest of the menu is still there, right below.
        assert!(rows.contains(&Row::Action {
            action: MenuAction::Quit,
            label: "Quit Perch".into()
        }));
        // Exactly a handful: no count row; one more: "1 more".
        let five: Vec<_> = (0..5).map(|i| pending(&format!("f{i}"))).collect();
        let rows = menu_model(&view(five, vec![]), NOW, None);
        assert!(
            !rows
                .iter()
                .any(|r| matches!(r, Row::Action { label, .. } if label.contains("more")))
        );
        let six: Vec<_> = (0..6).map(|i| pending(&format!("s{i}"))).collect();
        let rows = menu_model(&view(six, vec![]), NOW, None);
        assert!(
            rows.iter().any(
                |r| matches!(r, Row::Action { label, .. } if label == "1 more pairing request…")
            )
        );
    }

    #[test]
    fn first_choosable_item_is_the_first_approve() {
        let rows = menu_model(
            &view(vec![pending("Ana"), pending("Bo")], vec![]),
            NOW,
            None,
        );
        assert_eq!(
            rows[0],
            Row::Info("Perch: 1 pairing request waiting".into())
        );
        assert_eq!(rows[1], Row::Info("code 123 456 · Ana (ios)".into()));
        let first_action = rows
            .iter()
            .find(|r| !matches!(r, Row::Info(_) | Row::Separator))
            .unwrap();
        assert_eq!(
            *first_action,
            Row::Action {
                action: MenuAction::Approve("r-Ana".into()),
                label: "Approve Ana".into()
            }
        );
        assert_eq!(
            rows[3],
            Row::Action {
                action: MenuAction::Reject("r-Ana".into()),
                label: "Reject Ana".into()
            }
        );
        assert_eq!(rows[4], Row::Info("code 123 456 · Bo (ios)".into()));
    }

    #[test]
    fn menu_ends_with_windows_and_quit() {
        let rows = menu_model(&view(vec![], vec![]), NOW, None);
        let labels: Vec<String> = rows
            .iter()
            .filter_map(|r| match r {
                Row::Action { label, .. } => Some(label.clone()),
                Row::Submenu { label, .. } => Some(format!("[{label}]")),
                _ => None,
            })
            .collect();
        assert_eq!(
            labels,
            [
                "[Devices]",
                "Open Chat",
                "Open Canvas",
                "Settings…",
                "Quit Perch"
            ]
        );
        let with_login = menu_model(&view(vec![], vec![]), NOW, Some(true));
        assert!(with_login.iter().any(|r| matches!(r, Row::Action { action: MenuAction::ToggleLaunchAtLogin, label } if label.contains('✓'))));
    }

    #[test]
    fn devices_submenu_shows_state_and_last_seen() {
        let rows = menu_model(
            &view(
                vec![],
                vec![
                    device("me", true, Some(NOW)),
                    device("phone", false, Some(NOW - 5 * 60_000)),
                    device("old", false, None),
                ],
            ),
            NOW,
            None,
        );
        let Some(Row::Submenu { label, rows }) =
            rows.iter().find(|r| matches!(r, Row::Submenu { .. }))
        else {
            panic!("no Devices submenu");
        };
        assert_eq!(label, "Devices");
        assert_eq!(rows[0], Row::Info("● ME (this computer) — online".into()));
        assert_eq!(
            rows[1],
            Row::Info("○ PHONE — offline · last seen 5 min ago".into())
        );
        assert_eq!(
            rows[2],
            Row::Info("○ OLD — offline · never connected".into())
        );
        let empty = menu_model(&view(vec![], vec![]), NOW, None);
        let Some(Row::Submenu { rows, .. }) =
            empty.iter().find(|r| matches!(r, Row::Submenu { .. }))
        else {
            panic!("no Devices submenu");
        };
        assert_eq!(rows[0], Row::Info("No paired devices".into()));
    }

    #[test]
    fn the_error_state_offers_retry_right_under_the_status() {
        let mut v = view(vec![], vec![]);
        assert!(
            !menu_model(&v, NOW, None).iter().any(|r| matches!(
                r,
                Row::Action {
                    action: MenuAction::Retry,
                    ..
                }
            )),
            "no Retry while the host runs"
        );
        v.tray = TrayState::Error {
            reason: "address in use".into(),
        };
        let rows = menu_model(&v, NOW, None);
        assert_eq!(
            rows[1],
            Row::Action {
                action: MenuAction::Retry,
                label: "Retry Now".into()
            }
        );
    }

    #[test]
    fn a_pending_restart_is_offered_only_for_the_host_in_this_app() {
        let restart = |rows: &[Row]| {
            rows.iter().any(|r| {
                matches!(
                    r,
                    Row::Action {
                        action: MenuAction::RestartHost,
                        ..
                    }
                )
            })
        };
        let mut v = view(vec![], vec![]);
        assert!(!restart(&menu_model(&v, NOW, None)), "nothing to apply");
        v.restart_required = true;
        let rows = menu_model(&v, NOW, None);
        assert_eq!(
            rows[1],
            Row::Action {
                action: MenuAction::RestartHost,
                label: "Restart Host to Apply Settings".into()
            }
        );
        v.host = HostState::Running {
            addr: "127.0.0.1:1".parse().unwrap(),
            mode: HostMode::Attached,
            host_id: "h".into(),
        };
        assert!(
            !restart(&menu_model(&v, NOW, None)),
            "an attached host is not ours to restart"
        );
    }

    #[test]
    fn menu_ids_round_trip() {
        for a in [
            MenuAction::Approve("abc".into()),
            MenuAction::Reject("x:y".into()),
            MenuAction::Open(Page::Chat),
            MenuAction::Open(Page::Canvas),
            MenuAction::Retry,
            MenuAction::RestartHost,
            MenuAction::ToggleLaunchAtLogin,
            MenuAction::Quit,
        ] {
            assert_eq!(MenuAction::parse(&a.id()), Some(a));
        }
        assert_eq!(MenuAction::parse("info:0"), None);
        assert_eq!(MenuAction::parse("open:admin"), None);
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(ago(NOW, NOW - 10_000), "just now");
        assert_eq!(ago(NOW, NOW - 120_000), "2 min ago");
        assert_eq!(ago(NOW, NOW - 3 * 3_600_000), "3 h ago");
        assert_eq!(ago(NOW, NOW - 86_400_000), "1 day ago");
        assert_eq!(ago(NOW, NOW - 3 * 86_400_000), "3 days ago");
        assert_eq!(ago(NOW, NOW + 5_000), "just now");
    }

    #[test]
    fn a_long_name_never_pushes_the_code_out_of_the_row() {
        let mut p = pending("A");
        p.display_name = "N".repeat(200) + " · code 000 000";
        let rows = menu_model(&view(vec![p], vec![]), NOW, None);
        let Row::Info(row) = &rows[1] else {
            panic!("{:?}", rows[1])
        };
        assert!(row.starts_with("code 123 456 · "), "{row}");
        assert!(row.chars().count() < 80, "{row}");
        assert!(!row.contains("000 000"), "{row}");
    }
}
