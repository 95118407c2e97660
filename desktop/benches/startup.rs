//! The menu-bar app's start to its tray icon and its idle memory, on a real X server (Xvfb with
//! Debian's `trayer` as tray host, as in `tests/tray_xvfb.rs`), with the release build of
//! `perch-desktop`:
//!
//! 1. first start on an empty data directory (only a perch.toml turning mDNS off): spawn →
//!    trayer's panel grows (the icon is embedded), and spawn → the host's port accepts;
//! 2. second start on that data directory, the same two times;
//! 3. memory 10 s after the icon of the second start: VmRSS and PSS summed over the app and all
//!    its descendants, and how many processes;
//! 4. the same with the Chat window open (tray menu → Open Chat with the keyboard), 5 s after
//!    a WebKit process appeared in the tree;
//!
//! then once each, for comparison: the app with `--no-node` (idle, second start), and
//! `perch serve` alone (the release `perch` next to this bench; skipped with a message when
//! it is missing).
//!
//! `dbus-run-session -- cargo bench -p perch-desktop --bench startup`; `PERCH_BENCH_RUNS` sets
//! the number of runs (default 10). One Xvfb and trayer serve the whole bench; each run gets a
//! fresh data directory and a free port. Without the X tools or a D-Bus session bus it says
//! so and exits 0 having measured nothing. Every process it starts is killed on every exit
//! path, panics included (the guards' `Drop`: its process group and every descendant seen);
//! the app runs in its own process group, so a Ctrl-C reaches only the bench, Xvfb and
//! trayer, and the app then ends with its X display. App logs go to
//! `$CARGO_TARGET_DIR/bench-artifacts/desktop-startup/`.

#[path = "../tests/screen/mod.rs"]
mod screen;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;

use screen::{Rect, Screen, free_port, wait_for};

const DESKTOP: &str = env!("CARGO_BIN_EXE_perch-desktop");

/// Target interval between two looks at trayer's panel.
const POLL_EVERY: Duration = Duration::from_millis(5);
/// How long the app idles after its icon appears before memory is read.
const IDLE_AFTER_ICON: Duration = Duration::from_secs(10);
/// How long the Chat window settles after its WebKit process appeared.
const CHAT_SETTLE: Duration = Duration::from_secs(5);
/// Longest wait for an icon, a port or a window.
const START_LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Processes

/// Sends `signal` (a `kill -s` name) to `target` (a pid, or `-PGID` for a process group).
fn signal(target: &str, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// pid → parent pid, for every process in /proc.
fn parents() -> BTreeMap<u32, u32> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            out.insert(pid, ppid);
        }
    }
    out
}

/// `root` and all its descendants, `root` first.
fn tree(root: u32) -> Vec<u32> {
    let parents = parents();
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (&pid, &ppid) in &parents {
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c);
        }
        i += 1;
    }
    out
}

/// A process the bench started, in its own process group, with its descendants tracked so
/// that all of them are killed when it is dropped.
struct Tracked {
    child: Child,
    what: String,
    log: PathBuf,
    /// Descendants seen so far (WebKit helpers may leave the process group).
    seen: BTreeSet<u32>,
    spawned: Instant,
}

impl Tracked {
    fn spawn(mut cmd: Command, what: &str, log: &Path) -> Result<Tracked> {
        let file = File::create(log).with_context(|| format!("create {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .process_group(0);
        let spawned = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        Ok(Tracked {
            child,
            what: what.to_string(),
            log: log.to_path_buf(),
            seen: BTreeSet::new(),
            spawned,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The tree now, remembered for the final kill.
    fn tree(&mut self) -> Vec<u32> {
        let t = tree(self.pid());
        self.seen.extend(t.iter().skip(1));
        t
    }

    /// `Err` with the end of its log when it has exited.
    fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(self.died(status)),
        }
    }

    fn died(&self, status: ExitStatus) -> anyhow::Error {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        anyhow!(
            "{} exited early ({status}); last lines of {}:\n{}",
            self.what,
            self.log.display(),
            tail.join("\n")
        )
    }

    /// SIGTERM (the app quits like its menu's Quit, stopping its host), SIGKILL after 15 s;
    /// then kills what is left of its tree. Returns how long it took to exit.
    fn stop(mut self) -> Result<Duration> {
        self.tree();
        let asked = Instant::now();
        signal(&self.pid().to_string(), "TERM");
        let exited = loop {
            if self.child.try_wait()?.is_some() {
                break true;
            }
            if asked.elapsed() > Duration::from_secs(15) {
                break false;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = asked.elapsed();
        drop(self);
        if !exited {
            bail!("did not exit within 15 s of SIGTERM (killed)");
        }
        Ok(took)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.tree();
        }
        signal(&format!("-{}", self.pid()), "KILL");
        for pid in &self.seen {
            signal(&pid.to_string(), "KILL");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Memory

struct ProcMem {
    pid: u32,
    comm: String,
    rss_kib: u64,
    pss_kib: Option<u64>,
}

/// A `Key:   123 kB` field of a /proc file.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Memory of every live process of `pids` (those that exited meanwhile are skipped).
fn memory(pids: &[u32]) -> Vec<ProcMem> {
    pids.iter()
        .filter_map(|&pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            // Kernel threads and zombies have no VmRSS.
            let rss_kib = kib_field(&status, "VmRSS")?;
            let pss_kib = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
                .ok()
                .and_then(|t| kib_field(&t, "Pss"));
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim().to_string())
                .unwrap_or_default();
            Some(ProcMem {
                pid,
                comm,
                rss_kib,
                pss_kib,
            })
        })
        .collect()
}

struct TreeMem {
    procs: Vec<ProcMem>,
}

impl TreeMem {
    fn of(app: &mut Tracked) -> Result<TreeMem> {
        app.check_alive()?;
        let procs = memory(&app.tree());
        if procs.is_empty() {
            bail!("{} has no readable /proc entry", app.what);
        }
        Ok(TreeMem { procs })
    }

    fn rss_mib(&self) -> f64 {
        self.procs.iter().map(|p| p.rss_kib).sum::<u64>() as f64 / 1024.0
    }

    /// `None` unless every process's PSS was readable.
    fn pss_mib(&self) -> Option<f64> {
        self.procs
            .iter()
            .map(|p| p.pss_kib)
            .sum::<Option<u64>>()
            .map(|k| k as f64 / 1024.0)
    }

    fn count(&self) -> usize {
        self.procs.len()
    }

    fn has_webkit(&self) -> bool {
        self.procs.iter().any(|p| p.comm.starts_with("WebKit"))
    }

    fn breakdown(&self) -> String {
        self.procs
            .iter()
            .map(|p| {
                let pss = p
                    .pss_kib
                    .map(|k| format!("{:.1}", k as f64 / 1024.0))
                    .unwrap_or_else(|| "?".into());
                format!(
                    "{} [{}] RSS {:.1} / PSS {pss} MiB",
                    p.comm,
                    p.pid,
                    p.rss_kib as f64 / 1024.0
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Services the session bus started on request (the app asks for the accessibility bus, whose
/// launcher starts its own bus and the AT-SPI registry). They detach from their launcher, so
/// they are outside the app's tree: found here as processes outside this bench's own tree
/// and ancestors whose environment names this bench's `DBUS_SESSION_BUS_ADDRESS`.
fn session_services() -> Vec<ProcMem> {
    let Some(address) = std::env::var_os("DBUS_SESSION_BUS_ADDRESS") else {
        return Vec::new();
    };
    let mut needle = b"DBUS_SESSION_BUS_ADDRESS=".to_vec();
    needle.extend(address.as_encoded_bytes());
    let parents = parents();
    let me = std::process::id();
    let mut skip: BTreeSet<u32> = tree(me).into_iter().collect();
    let mut p = me;
    while let Some(&pp) = parents.get(&p) {
        if pp == 0 || !skip.insert(pp) {
            break;
        }
        p = pp;
    }
    let services: Vec<u32> = parents
        .keys()
        .copied()
        .filter(|pid| !skip.contains(pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == needle.as_slice()))
        })
        .collect();
    memory(&services)
}

// ---------------------------------------------------------------------------------------
// The app on the screen

/// How long one start took.
struct Start {
    icon_ms: f64,
    port_ms: f64,
    /// Mean interval between two looks at the panel during this start.
    poll_interval_ms: f64,
}

fn data_dir() -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("perch-bench-desktop-")
        .tempdir()
        .context("create a data directory")?;
    std::fs::write(dir.path().join("perch.toml"), "[gateway]\nmdns = \"off\"\n")
        .context("write perch.toml")?;
    Ok(dir)
}

fn port_open(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(50)).is_ok()
}

/// Starts the app and waits for its tray icon (trayer's panel wider than `empty_width`) and
/// for its host's port, both timed from the spawn.
fn start_app(
    screen: &Screen,
    empty_width: i32,
    dir: &Path,
    port: u16,
    extra: &[&str],
    log: &Path,
) -> Result<(Tracked, Start)> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    if port_open(addr) {
        bail!("port {port} is already taken; the previous app may not have exited");
    }
    let mut cmd = screen.cmd(DESKTOP);
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["--bind", &addr.to_string()])
        .args(extra)
        .env("NO_AT_BRIDGE", "1")
        .env("PERCH_NO_KEYRING", "1")
        .env("PERCH_LOG", "info");
    let mut app = Tracked::spawn(cmd, "perch-desktop", log)?;
    let t0 = app.spawned;
    let mut icon = None;
    let mut port_at = None;
    let mut polls = 0u32;
    let mut next = t0;
    while icon.is_none() {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
        }
        next = Instant::now() + POLL_EVERY;
        if port_at.is_none() && port_open(addr) {
            port_at = Some(t0.elapsed());
        }
        polls += 1;
        if screen.tray_panel().is_some_and(|p| p.2 > empty_width) {
            icon = Some(t0.elapsed());
        }
        if icon.is_none() {
            app.check_alive()?;
            if t0.elapsed() > START_LIMIT {
                bail!(
                    "no tray icon within {START_LIMIT:?} (log: {})",
                    app.log.display()
                );
            }
        }
    }
    let icon = icon.unwrap_or_default();
    let poll_interval_ms = icon.as_secs_f64() * 1000.0 / f64::from(polls);
    while port_at.is_none() {
        if port_open(addr) {
            port_at = Some(t0.elapsed());
            break;
        }
        app.check_alive()?;
        if t0.elapsed() > START_LIMIT {
            bail!(
                "the host did not listen on {addr} within {START_LIMIT:?} (log: {})",
                app.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let port_ms = port_at.unwrap_or_default().as_secs_f64() * 1000.0;
    Ok((
        app,
        Start {
            icon_ms: icon.as_secs_f64() * 1000.0,
            port_ms,
            poll_interval_ms,
        },
    ))
}

/// Stops the app and waits for trayer to drop its icon.
fn stop_app(screen: &Screen, empty_width: i32, app: Tracked) -> Result<Duration> {
    let took = app.stop().context("stopping perch-desktop")?;
    let mut last = None;
    wait_for(
        "trayer's panel to drop the icon",
        Duration::from_secs(10),
        || {
            last = screen.tray_panel();
            last.filter(|p| p.2 <= empty_width)
        },
    )
    .map_err(|e| anyhow!("{e} (panel now {last:?}, {empty_width} px wide when empty)"))?;
    Ok(took)
}

fn window_named(screen: &Screen, pattern: &str) -> bool {
    screen
        .cmd("xdotool")
        .args(["search", "--onlyvisible", "--name", pattern])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty())
}

/// Opens the Chat window from the tray menu with the keyboard. With no pairing request the
/// menu is: status (disabled), Devices ▸, Open Chat, Open Canvas, Settings…, Quit Perch
/// (separators and disabled rows are skipped by the arrow keys), so Down, Down, Return.
/// Returns when a WebKit process is in the tree and the window is mapped.
fn open_chat(screen: &Screen, empty_width: i32, app: &mut Tracked) -> Result<()> {
    let (px, py, pw, ph): Rect = screen.tray_panel().context("trayer's panel")?;
    let (cx, cy) = (px + pw - (pw - empty_width) / 2, py + ph / 2);
    for attempt in 1..=3 {
        screen.click(cx, cy).map_err(|e| anyhow!(e))?;
        std::thread::sleep(Duration::from_millis(800));
        screen
            .keys(&["Down", "Down", "Return"])
            .map_err(|e| anyhow!(e))?;
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(20) {
            app.check_alive()?;
            if memory(&app.tree())
                .iter()
                .any(|p| p.comm.starts_with("WebKit"))
                && window_named(screen, "Chat$")
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("  (Open Chat attempt {attempt}: no Chat window after 20 s; retrying)");
        let _ = screen.keys(&["Escape"]);
        std::thread::sleep(Duration::from_millis(500));
    }
    if window_named(screen, "Canvas$") || window_named(screen, "Settings$") {
        bail!("the menu opened another window than Chat: has desktop/src/tray.rs's menu changed?");
    }
    bail!(
        "no Chat window after three tries (log: {})",
        app.log.display()
    )
}

// ---------------------------------------------------------------------------------------
// Statistics and reporting

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

struct Summary {
    median: f64,
    p90: f64,
    min: f64,
    max: f64,
    n: usize,
}

fn summary(samples: &[f64]) -> Summary {
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    Summary {
        median: percentile(&s, 50.0),
        p90: percentile(&s, 90.0),
        min: s[0],
        max: s[s.len() - 1],
        n: s.len(),
    }
}

#[derive(Default)]
struct Samples {
    first_icon: Vec<f64>,
    first_port: Vec<f64>,
    second_icon: Vec<f64>,
    second_port: Vec<f64>,
    quit: Vec<f64>,
    idle_rss: Vec<f64>,
    idle_pss: Vec<f64>,
    idle_procs: Vec<f64>,
    chat_rss: Vec<f64>,
    chat_pss: Vec<f64>,
    chat_procs: Vec<f64>,
    poll_interval: Vec<f64>,
}

fn row(name: &str, unit: &str, samples: &[f64], decimals: usize) -> String {
    if samples.is_empty() {
        return format!("| {name} | – | – | – | 0 |");
    }
    let s = summary(samples);
    format!(
        "| {name} | {:.d$} {unit} | {:.d$} {unit} | {:.d$}–{:.d$} {unit} | {} |",
        s.median,
        s.p90,
        s.min,
        s.max,
        s.n,
        d = decimals
    )
}

fn json_of(samples: &[f64]) -> serde_json::Value {
    if samples.is_empty() {
        return serde_json::Value::Null;
    }
    let s = summary(samples);
    json!({"median": s.median, "p90": s.p90, "min": s.min, "max": s.max, "n": s.n,
           "samples": samples})
}

// ---------------------------------------------------------------------------------------
// Setup

/// Why the bench cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    if let Err(e) = screen::require_tools(&["Xvfb", "trayer", "xdotool"]) {
        return Some(e);
    }
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        return Some(
            "no D-Bus session bus (the tray needs one): run it under `dbus-run-session -- cargo bench -p perch-desktop --bench startup`"
                .into(),
        );
    }
    None
}

/// `target/release` (this bench is `target/release/deps/startup-HASH`).
fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("bench executable path")?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("target directory of the bench")
}

fn logs_dir() -> Result<PathBuf> {
    let dir = profile_dir()?
        .parent()
        .map(|t| t.join("bench-artifacts").join("desktop-startup"))
        .context("target directory")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

/// What one `xdotool getwindowgeometry` costs on an idle screen: (mean, max) in ms.
fn poll_cost(screen: &Screen) -> Result<(f64, f64)> {
    let mut ms = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        screen
            .tray_panel()
            .context("xdotool cannot read trayer's panel")?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    let max = ms.iter().copied().fold(0.0, f64::max);
    Ok((mean, max))
}

fn main() -> Result<()> {
    let runs: usize = match std::env::var("PERCH_BENCH_RUNS") {
        Ok(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .with_context(|| format!("PERCH_BENCH_RUNS={v:?}: expected a positive integer"))?,
        Err(_) => 10,
    };
    if let Some(why) = missing_prerequisite() {
        println!("startup bench skipped: {why}");
        return Ok(());
    }
    let logs = logs_dir()?;
    let screen = Screen::start().map_err(|e| anyhow!(e))?;
    let empty_width = screen.tray_panel().context("trayer's panel")?.2;
    let (poll_mean, poll_max) = poll_cost(&screen)?;
    println!(
        "perch-desktop: {DESKTOP}\nX display {} with trayer; {runs} runs; one look at the panel costs {poll_mean:.2} ms (max {poll_max:.2} ms) idle; app logs in {}",
        screen.display,
        logs.display()
    );

    let mut s = Samples::default();
    let mut last_idle = None;
    let mut last_chat = None;
    let mut last_services = TreeMem { procs: Vec::new() };
    let mut first_idle_services = TreeMem { procs: Vec::new() };
    for i in 1..=runs {
        let dir = data_dir()?;
        let port = free_port();
        let log = logs.join(format!("run-{i}.log"));
        let (app, first) = start_app(&screen, empty_width, dir.path(), port, &[], &log)
            .with_context(|| format!("run {i}, first start"))?;
        let quit = stop_app(&screen, empty_width, app).with_context(|| format!("run {i}"))?;
        let log = logs.join(format!("run-{i}-second.log"));
        let (mut app, second) = start_app(&screen, empty_width, dir.path(), port, &[], &log)
            .with_context(|| format!("run {i}, second start"))?;
        std::thread::sleep(IDLE_AFTER_ICON);
        let idle = TreeMem::of(&mut app).with_context(|| format!("run {i}, idle memory"))?;
        if i == 1 {
            first_idle_services = TreeMem {
                procs: session_services(),
            };
        }
        open_chat(&screen, empty_width, &mut app).with_context(|| format!("run {i}, Open Chat"))?;
        std::thread::sleep(CHAT_SETTLE);
        let chat = TreeMem::of(&mut app).with_context(|| format!("run {i}, chat memory"))?;
        if !chat.has_webkit() {
            bail!("run {i}: the WebKit process left the tree before it was measured");
        }
        stop_app(&screen, empty_width, app).with_context(|| format!("run {i}, stop"))?;
        println!(
            "run {i:>2}: first start icon {:>6.0} ms, port {:>6.0} ms | second start icon {:>6.0} ms, port {:>6.0} ms | quit {:>5.0} ms | idle RSS {:>6.1} MiB PSS {:>6.1} MiB ({} procs) | chat RSS {:>6.1} MiB PSS {:>6.1} MiB ({} procs)",
            first.icon_ms,
            first.port_ms,
            second.icon_ms,
            second.port_ms,
            quit.as_secs_f64() * 1000.0,
            idle.rss_mib(),
            idle.pss_mib().unwrap_or(f64::NAN),
            idle.count(),
            chat.rss_mib(),
            chat.pss_mib().unwrap_or(f64::NAN),
            chat.count(),
        );
        s.first_icon.push(first.icon_ms);
        s.first_port.push(first.port_ms);
        s.second_icon.push(second.icon_ms);
        s.second_port.push(second.port_ms);
        s.quit.push(quit.as_secs_f64() * 1000.0);
        s.poll_interval
            .extend([first.poll_interval_ms, second.poll_interval_ms]);
        s.idle_rss.push(idle.rss_mib());
        s.idle_pss.extend(idle.pss_mib());
        s.idle_procs.push(idle.count() as f64);
        s.chat_rss.push(chat.rss_mib());
        s.chat_pss.extend(chat.pss_mib());
        s.chat_procs.push(chat.count() as f64);
        last_idle = Some(idle.breakdown());
        last_chat = Some(chat.breakdown());
        last_services = TreeMem {
            procs: session_services(),
        };
    }

    // --no-node, once: first start, then the measured second start.
    let no_node = {
        let dir = data_dir()?;
        let port = free_port();
        let log = logs.join("no-node.log");
        let (app, _) = start_app(&screen, empty_width, dir.path(), port, &["--no-node"], &log)
            .context("--no-node, first start")?;
        stop_app(&screen, empty_width, app)?;
        let log = logs.join("no-node-second.log");
        let (mut app, start) =
            start_app(&screen, empty_width, dir.path(), port, &["--no-node"], &log)
                .context("--no-node, second start")?;
        std::thread::sleep(IDLE_AFTER_ICON);
        let mem = TreeMem::of(&mut app).context("--no-node, idle memory")?;
        stop_app(&screen, empty_width, app)?;
        println!(
            "--no-node: second start icon {:.0} ms | idle RSS {:.1} MiB PSS {:.1} MiB ({} procs): {}",
            start.icon_ms,
            mem.rss_mib(),
            mem.pss_mib().unwrap_or(f64::NAN),
            mem.count(),
            mem.breakdown()
        );
        mem
    };

    // `perch serve` alone, once.
    let perch = profile_dir()?.join("perch");
    let serve = if perch.is_file() {
        let dir = data_dir()?;
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut cmd = Command::new(&perch);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--bind", &addr.to_string()])
            .env("PERCH_NO_KEYRING", "1")
            .env("PERCH_LOG", "info");
        let mut host = Tracked::spawn(cmd, "perch serve", &logs.join("serve.log"))?;
        let t0 = host.spawned;
        while !port_open(addr) {
            host.check_alive()?;
            if t0.elapsed() > START_LIMIT {
                bail!("perch serve did not listen on {addr} within {START_LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let port_ms = t0.elapsed().as_secs_f64() * 1000.0;
        std::thread::sleep(IDLE_AFTER_ICON);
        let mem = TreeMem::of(&mut host).context("perch serve memory")?;
        host.stop().context("stopping perch serve")?;
        println!(
            "perch serve ({}): port after {port_ms:.0} ms | idle RSS {:.1} MiB PSS {:.1} MiB ({} procs)",
            perch.display(),
            mem.rss_mib(),
            mem.pss_mib().unwrap_or(f64::NAN),
            mem.count()
        );
        Some(mem)
    } else {
        println!(
            "perch serve: not measured, {} is missing (build it with `cargo build --release -p perch-cli`)",
            perch.display()
        );
        None
    };

    if let Some(b) = &last_idle {
        println!("\nidle tree, last run: {b}");
    }
    if let Some(b) = &last_chat {
        println!("chat tree, last run: {b}");
    }
    for (when, services) in [
        ("idle in run 1, before any window", &first_idle_services),
        ("with Chat open, last run", &last_services),
    ] {
        if services.procs.is_empty() {
            println!("session bus services started on request, {when}: none");
        } else {
            println!(
                "session bus services started on request (outside the app's tree, not counted above), {when}: RSS {:.1} MiB: {}",
                services.rss_mib(),
                services.breakdown()
            );
        }
    }
    let resolution = summary(&s.poll_interval);
    println!(
        "\nStart times are spawn → event; the panel was read every {:.1} ms on average during starts (median {:.1}, max {:.1}; one xdotool run costs {poll_mean:.1} ms idle), so an icon is seen at most about one interval plus one read late.\n",
        s.poll_interval.iter().sum::<f64>() / s.poll_interval.len() as f64,
        resolution.median,
        resolution.max,
    );
    println!("| perch-desktop (release), {runs} runs | median | p90 | min–max | n |");
    println!("|---|---:|---:|---:|---:|");
    for line in [
        row(
            "first start (empty data dir) → tray icon",
            "ms",
            &s.first_icon,
            0,
        ),
        row("first start → host port accepting", "ms", &s.first_port, 0),
        row("second start → tray icon", "ms", &s.second_icon, 0),
        row(
            "second start → host port accepting",
            "ms",
            &s.second_port,
            0,
        ),
        row("quit (SIGTERM → exit)", "ms", &s.quit, 0),
        row("idle, tree RSS", "MiB", &s.idle_rss, 1),
        row("idle, tree PSS", "MiB", &s.idle_pss, 1),
        row("idle, processes", "", &s.idle_procs, 0),
        row("Chat window open, tree RSS", "MiB", &s.chat_rss, 1),
        row("Chat window open, tree PSS", "MiB", &s.chat_pss, 1),
        row("Chat window open, processes", "", &s.chat_procs, 0),
    ] {
        println!("{line}");
    }
    let once = |name: &str, m: Option<&TreeMem>| match m {
        Some(m) => println!(
            "| {name}, idle (once) | RSS {:.1} MiB | PSS {} | {} process(es) | 1 |",
            m.rss_mib(),
            m.pss_mib()
                .map(|p| format!("{p:.1} MiB"))
                .unwrap_or_else(|| "?".into()),
            m.count()
        ),
        None => println!("| {name}, idle | not measured | | | 0 |"),
    };
    once("perch-desktop --no-node", Some(&no_node));
    once("perch serve alone", serve.as_ref());

    let summary_json = json!({
        "runs": runs,
        "poll_cost_ms": {"mean": poll_mean, "max": poll_max},
        "poll_interval_ms": json_of(&s.poll_interval),
        "first_start_icon_ms": json_of(&s.first_icon),
        "first_start_port_ms": json_of(&s.first_port),
        "second_start_icon_ms": json_of(&s.second_icon),
        "second_start_port_ms": json_of(&s.second_port),
        "quit_ms": json_of(&s.quit),
        "idle_rss_mib": json_of(&s.idle_rss),
        "idle_pss_mib": json_of(&s.idle_pss),
        "idle_procs": json_of(&s.idle_procs),
        "chat_rss_mib": json_of(&s.chat_rss),
        "chat_pss_mib": json_of(&s.chat_pss),
        "chat_procs": json_of(&s.chat_procs),
        "no_node_idle": {"rss_mib": no_node.rss_mib(), "pss_mib": no_node.pss_mib(),
                         "procs": no_node.count()},
        "session_services_rss_mib": {"idle_run_1": first_idle_services.rss_mib(),
                                     "chat_last_run": last_services.rss_mib()},
        "serve_idle": serve.as_ref().map(|m| json!({"rss_mib": m.rss_mib(),
                         "pss_mib": m.pss_mib(), "procs": m.count()})),
    });
    println!("\nBENCH_JSON {summary_json}");
    Ok(())
}
