//! A real X screen for the menu-bar app: Xvfb with Debian's `trayer` as the tray host, found
//! and driven with `xdotool`, photographed with ImageMagick. Shared by `tests/tray_xvfb.rs`
//! (`mod screen;`) and `benches/startup.rs` (`#[path = "../tests/screen/mod.rs"]`).
//!
//! trayer runs with `--widthtype request`: its panel is exactly as wide as its icons, so the
//! panel growing tells that an icon was embedded, and its geometry tells where.
//!
//! Setup failures (a tool missing, Xvfb not coming up) are `Err` with a message saying what to
//! do; the test unwraps them, the bench reports them.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tools this module runs, and where they come from.
pub const TOOLS: [&str; 5] = ["Xvfb", "trayer", "xdotool", "import", "convert"];

/// A child process killed when its owner is dropped, however the program ends (panics
/// included).
pub struct Proc(pub Child);

impl Proc {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `tool` is on `PATH`.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `Err` naming the first of `tools` that is missing, with how to install it.
pub fn require_tools(tools: &[&str]) -> Result<(), String> {
    match tools.iter().find(|t| !have(t)) {
        None => Ok(()),
        Some(tool) => Err(format!(
            "{tool} is missing: run `bash scripts/setup.sh test` (it installs xvfb, trayer, xdotool, imagemagick)"
        )),
    }
}

/// A TCP port on 127.0.0.1 nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A display number nobody uses, and that this process has not used before: a display just
/// given back can still be held for a moment by the server that is going away.
pub fn free_display() -> Option<u32> {
    static USED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base =
        90 + std::process::id() % 400 + USED.fetch_add(7, std::sync::atomic::Ordering::Relaxed);
    (base..base + 100).find(|n| {
        !Path::new(&format!("/tmp/.X{n}-lock")).exists()
            && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
    })
}

/// Calls `f` every 150 ms until it returns `Some`, or fails after `limit`.
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if start.elapsed() >= limit {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// [`wait_for`], panicking on timeout (for tests).
pub fn eventually<T>(what: &str, limit: Duration, f: impl FnMut() -> Option<T>) -> T {
    wait_for(what, limit, f).unwrap_or_else(|e| panic!("{e}"))
}

/// A rectangle on the screen: (x, y, width, height).
pub type Rect = (i32, i32, i32, i32);

/// Xvfb plus trayer, both killed when dropped.
pub struct Screen {
    /// The `DISPLAY` value, `:N`.
    pub display: String,
    /// trayer's panel window id, as xdotool prints it.
    panel: String,
    tray: Proc,
    xvfb: Proc,
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.tray.0.kill();
        let _ = self.tray.0.wait();
        // SIGTERM, so Xvfb removes its lock file and socket (a SIGKILL leaves them behind and
        // the display number unusable); `Proc` kills it if it is still there after 2 s.
        let _ = Command::new("kill")
            .args(["-s", "TERM", &self.xvfb.id().to_string()])
            .status();
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(2) {
            if !matches!(self.xvfb.0.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Screen {
    /// Starts Xvfb (1024×768) and trayer docked top right, and waits for trayer's panel.
    pub fn start() -> Result<Screen, String> {
        require_tools(&TOOLS)?;
        let n = free_display().ok_or("no free X display number in a range of 100")?;
        let display = format!(":{n}");
        let mut xvfb = Proc(
            Command::new("Xvfb")
                .args([&display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start Xvfb: {e}"))?,
        );
        wait_for("Xvfb to accept clients", Duration::from_secs(10), || {
            if let Ok(Some(status)) = xvfb.0.try_wait() {
                return Some(Err(format!("Xvfb {display} exited at start ({status})")));
            }
            Path::new(&format!("/tmp/.X11-unix/X{n}"))
                .exists()
                .then_some(Ok(()))
        })??;
        // `--widthtype request`: the panel is exactly as wide as its icons, so its geometry
        // tells where our icon is.
        let mut tray = Proc(
            Command::new("trayer")
                .args([
                    "--edge",
                    "top",
                    "--align",
                    "right",
                    "--widthtype",
                    "request",
                    "--height",
                    "32",
                    "--SetDockType",
                    "true",
                    "--transparent",
                    "false",
                ])
                .env("DISPLAY", &display)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start trayer: {e}"))?,
        );
        let panel = wait_for("trayer's panel", Duration::from_secs(10), || {
            if let Ok(Some(status)) = tray.0.try_wait() {
                return Some(Err(format!(
                    "trayer exited at start ({status}); is another tray host running on {display}?"
                )));
            }
            find_panel(&display).map(Ok)
        })??;
        let screen = Screen {
            display,
            panel,
            tray,
            xvfb,
        };
        screen
            .tray_panel()
            .ok_or("trayer's panel has no geometry")?;
        Ok(screen)
    }

    /// A command that runs on this display.
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("DISPLAY", &self.display);
        c
    }

    /// trayer's panel: (x, y, width, height). One `xdotool` run.
    pub fn tray_panel(&self) -> Option<Rect> {
        let out = self
            .cmd("xdotool")
            .args(["getwindowgeometry", "--shell", &self.panel])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |k: &str| -> Option<i32> {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .and_then(|v| v.trim().parse().ok())
        };
        Some((field("X")?, field("Y")?, field("WIDTH")?, field("HEIGHT")?))
    }

    /// Moves the pointer to (x, y) and clicks button 1.
    pub fn click(&self, x: i32, y: i32) -> Result<(), String> {
        let ok = self
            .cmd("xdotool")
            .args(["mousemove", &x.to_string(), &y.to_string(), "click", "1"])
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(())
            .ok_or_else(|| format!("xdotool could not click at {x},{y}"))
    }

    /// Types `keys` (xdotool key names) 150 ms apart.
    pub fn keys(&self, keys: &[&str]) -> Result<(), String> {
        let ok = self
            .cmd("xdotool")
            .args(["key", "--delay", "150"])
            .args(keys)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(())
            .ok_or_else(|| format!("xdotool could not press {keys:?}"))
    }

    /// Saves the whole screen to `path` (ImageMagick `import`).
    pub fn screenshot(&self, path: &Path) -> Result<(), String> {
        let ok = self
            .cmd("import")
            .args(["-window", "root"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(())
            .ok_or_else(|| format!("screenshot {} failed", path.display()))
    }
}

/// trayer's panel window (class name `panel`) on `display`.
fn find_panel(display: &str) -> Option<String> {
    let out = Command::new("xdotool")
        .env("DISPLAY", display)
        .args(["search", "--classname", "panel"])
        .output()
        .ok()?;
    let id = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .trim()
        .to_string();
    (!id.is_empty()).then_some(id)
}

/// Where the icon added last sits, given the panel before (`empty_width`) and after: trayer
/// grows leftwards from the right edge, and the new icon is at its right end.
pub fn icon_rect(panel: Rect, empty_width: i32) -> Rect {
    let (px, py, pw, ph) = panel;
    (px + empty_width, py, pw - empty_width, ph)
}

/// How many pixels of `rgb` (e.g. "#E59400") the rectangle of a screenshot holds.
pub fn count_colour(shot: &Path, (x, y, w, h): Rect, rgb: &str) -> usize {
    let out = Command::new("convert")
        .arg(shot)
        .args([
            "-crop",
            &format!("{w}x{h}+{x}+{y}"),
            "-format",
            "%c",
            "histogram:info:-",
        ])
        .output()
        .expect("run ImageMagick convert");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains(rgb))
        .and_then(|l| l.trim().split(':').next()?.trim().parse().ok())
        .unwrap_or(0)
}
