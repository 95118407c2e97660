//! A virtual X screen (Xvfb) for attacks on the menu-bar app, which needs a display to run.
//! Needs `Xvfb` (`bash scripts/setup.sh test` installs it).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An Xvfb server on a free display number; stopped (SIGTERM, so it removes its lock file and
/// socket) when dropped.
pub struct Xvfb {
    /// The `DISPLAY` value, `:N`.
    pub display: String,
    child: Child,
}

impl Xvfb {
    /// Starts Xvfb and waits until it accepts clients; `Err` says what is missing or wrong.
    pub fn start() -> Result<Xvfb, String> {
        let base = 190 + std::process::id() % 400;
        let n = (base..base + 100)
            .find(|n| {
                !Path::new(&format!("/tmp/.X{n}-lock")).exists()
                    && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            })
            .ok_or("no free X display number in a range of 100")?;
        let display = format!(":{n}");
        let child = Command::new("Xvfb")
            .args([&display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start Xvfb ({e}): run `bash scripts/setup.sh test` (it installs xvfb)"
                )
            })?;
        let mut x = Xvfb { display, child };
        let start = Instant::now();
        while !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
            if let Ok(Some(status)) = x.child.try_wait() {
                return Err(format!("Xvfb {} exited at start ({status})", x.display));
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err(format!("Xvfb {} did not come up in 10 s", x.display));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(x)
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .status();
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(2) {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
