//! `perch service install|uninstall|status`: run the host as a per-user service that starts at
//! login and comes back after a failure.
//!
//! Linux: a systemd user unit, `$XDG_CONFIG_HOME/systemd/user/perch.service` (default
//! `~/.config/systemd/user/`), driven with `systemctl --user`. macOS: a launchd agent,
//! `~/Library/LaunchAgents/dev.perch.host.plist`, driven with `launchctl bootstrap`/`bootout`;
//! that path follows launchd's documented format but has not yet been run on a Mac.
//!
//! The file's text comes from pure functions ([`systemd_unit`], [`launchd_plist`]) that compile
//! and are tested on every platform; only writing the file and asking the service manager
//! depend on where `perch` runs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use perch_host::{MdnsMode, parse_bind};

/// The systemd user unit's name.
pub const SYSTEMD_UNIT: &str = "perch.service";
/// The launchd agent's label; its file is `<label>.plist`.
pub const LAUNCHD_LABEL: &str = "dev.perch.host";

/// `perch service ...`.
#[derive(Subcommand, Debug)]
pub enum ServiceCmd {
    /// Write the service file, then enable and start it (now and at every login).
    Install(InstallArgs),
    /// Stop and disable the service, and remove its file.
    Uninstall,
    /// Whether the service file exists, where, what it runs, and whether it is running.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `perch service install` options.
#[derive(Args, Debug)]
pub struct InstallArgs {
    /// Listen address the service passes to `perch serve --bind` (default: perch.toml's).
    #[arg(long)]
    pub bind: Option<String>,
    /// mDNS advertisement the service passes to `perch serve --mdns`.
    #[arg(long, value_name = "off|minimal|full")]
    pub mdns: Option<String>,
    /// Only write the file: do not enable or start the service.
    #[arg(long)]
    pub no_start: bool,
    /// Replace a service file that runs a different perch executable.
    #[arg(long)]
    pub force: bool,
}

/// What the service runs: `EXE serve --data-dir DIR [--bind ADDR] [--mdns MODE]`. Every part
/// is an absolute path or a plain value without control characters, so both file formats can
/// hold it exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    exe: String,
    data_dir: String,
    bind: Option<String>,
    mdns: Option<String>,
}

impl ServiceSpec {
    /// Checks the parts: absolute UTF-8 paths and no control characters anywhere.
    pub fn new(
        exe: &Path,
        data_dir: &Path,
        bind: Option<String>,
        mdns: Option<String>,
    ) -> Result<Self> {
        let spec = Self {
            exe: absolute_text("the perch executable", exe)?,
            data_dir: absolute_text("the data directory", data_dir)?,
            bind,
            mdns,
        };
        for word in spec.argv() {
            plain_text("an argument", &word)?;
        }
        Ok(spec)
    }

    /// The program and its arguments, in order.
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec![
            self.exe.clone(),
            "serve".into(),
            "--data-dir".into(),
            self.data_dir.clone(),
        ];
        if let Some(b) = &self.bind {
            v.extend(["--bind".into(), b.clone()]);
        }
        if let Some(m) = &self.mdns {
            v.extend(["--mdns".into(), m.clone()]);
        }
        v
    }
}

/// A path as text for a service file: absolute, UTF-8, no control characters.
fn absolute_text(what: &str, p: &Path) -> Result<String> {
    if !p.is_absolute() {
        bail!("{what} ({}) is not an absolute path", p.display());
    }
    let s = p
        .to_str()
        .ok_or_else(|| anyhow!("{what} ({}) is not valid UTF-8", p.display()))?;
    plain_text(what, s)?;
    Ok(s.to_string())
}

/// Refuses control characters, which neither a unit file line nor XML 1.0 text can carry.
fn plain_text(what: &str, s: &str) -> Result<()> {
    if s.chars().any(char::is_control) {
        bail!("{what} ({s:?}) contains a control character, which a service file cannot hold");
    }
    Ok(())
}

/// The systemd user unit that runs `spec`.
pub fn systemd_unit(spec: &ServiceSpec) -> String {
    let exec = spec
        .argv()
        .iter()
        .map(|w| systemd_word(w))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "# Written by `perch service install`; `perch service uninstall` removes it.\n\
         [Unit]\n\
         Description=Perch host (the gateway your devices pair with)\n\
         # Ordering only: it waits for the network where the user manager knows this target.\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={exec}\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n"
    )
}

/// One ExecStart word in systemd's syntax: `%` doubles (specifiers), `$` doubles (variable
/// expansion), backslash and double quote are escaped, and a word with whitespace, quotes,
/// backslashes or `;` is double-quoted.
fn systemd_word(w: &str) -> String {
    let mut body = String::with_capacity(w.len() + 2);
    for c in w.chars() {
        match c {
            '\\' => body.push_str("\\\\"),
            '"' => body.push_str("\\\""),
            '%' => body.push_str("%%"),
            '$' => body.push_str("$$"),
            c => body.push(c),
        }
    }
    let bare = !w.is_empty()
        && !w
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';'));
    if bare { body } else { format!("\"{body}\"") }
}

/// The words of a unit's (last) `ExecStart=`, unquoted: what [`systemd_unit`] wrote, or enough
/// of a hand-written unit to name its program. `None` when there is no such line.
pub fn systemd_exec_start(unit: &str) -> Option<Vec<String>> {
    let value = unit
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("ExecStart="))
        .next_back()?;
    // Prefixes that change how systemd runs the command, not what it runs.
    let value = value
        .trim_start()
        .trim_start_matches(['-', '@', ':', '+', '!']);
    let mut words = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut word = String::new();
        let mut quote = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) => match chars.next() {
                    Some('n') => word.push('\n'),
                    Some('t') => word.push('\t'),
                    Some(other) => word.push(other),
                    None => {}
                },
                ('"' | '\'', None) => quote = Some(c),
                (c, Some(q)) if c == q => quote = None,
                (c, None) if c.is_whitespace() => break,
                (c, _) => word.push(c),
            }
        }
        words.push(word.replace("%%", "%").replace("$$", "$"));
    }
    Some(words)
}

/// The launchd agent that runs `spec`, logging to `log_file`.
pub fn launchd_plist(spec: &ServiceSpec, log_file: &str) -> String {
    let args: String = spec
        .argv()
        .iter()
        .map(|w| format!("\t\t<string>{}</string>\n", xml_escape(w)))
        .collect();
    let log = xml_escape(log_file);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <!-- Written by `perch service install`; `perch service uninstall` removes it. -->\n\
         <plist version=\"1.0\">\n\
         <dict>\n\
         \t<key>Label</key>\n\
         \t<string>{LAUNCHD_LABEL}</string>\n\
         \t<key>ProgramArguments</key>\n\
         \t<array>\n\
         {args}\
         \t</array>\n\
         \t<key>RunAtLoad</key>\n\
         \t<true/>\n\
         \t<key>KeepAlive</key>\n\
         \t<dict>\n\
         \t\t<key>SuccessfulExit</key>\n\
         \t\t<false/>\n\
         \t</dict>\n\
         \t<key>ProcessType</key>\n\
         \t<string>Background</string>\n\
         \t<key>StandardOutPath</key>\n\
         \t<string>{log}</string>\n\
         \t<key>StandardErrorPath</key>\n\
         \t<string>{log}</string>\n\
         </dict>\n\
         </plist>\n"
    )
}

/// Text as XML character data or attribute value.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`xml_escape`] (and decimal or hex character references).
fn xml_unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..].find(';')? + i;
        let entity = &rest[i + 1..end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = match entity.strip_prefix("#x") {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => entity.strip_prefix('#')?.parse().ok()?,
                };
                char::from_u32(code)?
            }
        };
        out.push(c);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The `ProgramArguments` of a launchd plist as [`launchd_plist`] writes it. `None` when the
/// file has none or is shaped differently.
pub fn launchd_program(plist: &str) -> Option<Vec<String>> {
    let after_key = &plist[plist.find("<key>ProgramArguments</key>")? + 27..];
    let array = after_key.trim_start().strip_prefix("<array>")?;
    let array = &array[..array.find("</array>")?];
    let mut words = Vec::new();
    let mut rest = array.trim();
    while !rest.is_empty() {
        let inner = rest.strip_prefix("<string>")?;
        let end = inner.find("</string>")?;
        words.push(xml_unescape(&inner[..end])?);
        rest = inner[end + "</string>".len()..].trim_start();
    }
    Some(words)
}

/// Whether the service manager says the host runs, as far as it can be asked.
#[derive(Debug, Clone, PartialEq)]
enum State {
    /// The manager's own word: `active`, `inactive`, `failed`, `loaded`, ...
    Known(String),
    /// The manager could not be asked; why.
    Unknown(String),
}

/// One service manager: where its file lives and how to ask it to start, stop and report.
struct Manager {
    /// "systemd user unit", "launchd agent".
    kind: &'static str,
    /// The service file's path.
    file: fn() -> Result<PathBuf>,
    /// The file's text for a spec.
    contents: fn(&ServiceSpec) -> Result<String>,
    /// The program and arguments a file of this kind runs.
    program: fn(&str) -> Option<Vec<String>>,
    /// Loads and starts the written file; prints what it did, or what the user must run.
    start: fn(&Path) -> Result<()>,
    /// Stops and unloads the service before its file goes; prints notes.
    stop: fn(&Path),
    /// Tells the manager the file is gone.
    forget: fn(),
    /// Whether it runs.
    state: fn() -> State,
    /// What the user runs to start it by hand.
    start_hint: &'static str,
}

#[cfg(target_os = "linux")]
fn manager() -> Result<&'static Manager> {
    Ok(&systemd::MANAGER)
}

#[cfg(target_os = "macos")]
fn manager() -> Result<&'static Manager> {
    Ok(&launchd::MANAGER)
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn manager() -> Result<&'static Manager> {
    bail!(
        "`perch service` knows systemd (Linux) and launchd (macOS); here, run `perch serve` from your own service manager"
    )
}

/// `perch service ...`.
pub fn run(cmd: ServiceCmd, data_dir: Option<PathBuf>) -> Result<()> {
    let m = manager()?;
    match cmd {
        ServiceCmd::Install(args) => install(m, args, data_dir),
        ServiceCmd::Uninstall => uninstall(m),
        ServiceCmd::Status { json } => status(m, json),
    }
}

/// The running perch executable, which the service will run.
fn this_executable() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot tell where this perch executable is")?;
    if !exe.is_file() {
        bail!(
            "this perch executable ({}) is no longer on disk (replaced while running?); run the installed perch",
            exe.display()
        );
    }
    Ok(exe)
}

/// The file's current text: `None` when there is no file.
fn read_existing(file: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(file) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
}

/// Writes through a temporary file in the same directory, so a reader never sees half a file.
fn write_file(file: &Path, text: &str) -> Result<()> {
    let dir = file
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", file.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("perch");
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("cannot write {}", file.display()))
}

/// A command line for people to read: words with spaces or quotes are single-quoted.
fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|w| {
            let plain = !w.is_empty()
                && w.chars()
                    .all(|c| c.is_alphanumeric() || "/._-:=@%+,".contains(c));
            if plain {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn install(m: &Manager, args: InstallArgs, data_dir: Option<PathBuf>) -> Result<()> {
    if let Some(b) = &args.bind {
        parse_bind(b).map_err(|e| anyhow!("--bind: {e}"))?;
    }
    if let Some(mode) = &args.mdns {
        MdnsMode::parse(mode).map_err(|e| anyhow!("--mdns: {e}"))?;
    }
    let exe = this_executable()?;
    let dir = crate::paths::data_dir(data_dir)?;
    let dir = std::path::absolute(&dir)
        .with_context(|| format!("cannot make {} absolute", dir.display()))?;
    let spec = ServiceSpec::new(&exe, &dir, args.bind, args.mdns)?;
    let file = (m.file)()?;
    if let Some(existing) = read_existing(&file)? {
        let theirs = (m.program)(&existing).and_then(|argv| argv.into_iter().next());
        if theirs.as_deref() != Some(spec.exe.as_str()) && !args.force {
            bail!(
                "{} already runs {}, not this perch ({}); pass --force to replace it, or run `perch service uninstall` with that perch first",
                file.display(),
                theirs
                    .as_deref()
                    .unwrap_or("a program perch cannot read from it"),
                spec.exe
            );
        }
    }
    write_file(&file, &(m.contents)(&spec)?)?;
    println!("Wrote the {} {}", m.kind, file.display());
    println!("  runs {}", shell_line(&spec.argv()));
    if args.no_start {
        println!("Not started (--no-start). To start it now and at every login, run:");
        println!("  {}", m.start_hint);
        return Ok(());
    }
    (m.start)(&file)
}

fn uninstall(m: &Manager) -> Result<()> {
    let file = (m.file)()?;
    if read_existing(&file)?.is_none() {
        println!(
            "No Perch service is installed ({} does not exist).",
            file.display()
        );
        return Ok(());
    }
    (m.stop)(&file);
    std::fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))?;
    (m.forget)();
    println!("Removed {}", file.display());
    Ok(())
}

fn status(m: &Manager, json: bool) -> Result<()> {
    let file = (m.file)()?;
    let existing = read_existing(&file)?;
    let argv = existing.as_deref().and_then(m.program);
    let this = this_executable()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string));
    let same = match (&argv, &this) {
        (Some(a), Some(t)) => a.first() == Some(t),
        _ => false,
    };
    let state = existing.is_some().then(m.state);
    if json {
        let (state_text, note) = match &state {
            Some(State::Known(s)) => (Some(s.clone()), None),
            Some(State::Unknown(why)) => (None, Some(why.clone())),
            None => (None, None),
        };
        return crate::output::print_json(&json!({
            "installed": existing.is_some(),
            "kind": m.kind,
            "path": file,
            "command": argv,
            "thisExecutable": same,
            "state": state_text,
            "stateNote": note,
        }));
    }
    if existing.is_none() {
        println!(
            "Perch service: not installed ({} does not exist)",
            file.display()
        );
        println!("Install it with: perch service install");
        return Ok(());
    }
    println!("Perch service: installed ({})", m.kind);
    println!("  file   {}", file.display());
    match &argv {
        Some(a) => println!("  runs   {}", shell_line(a)),
        None => println!("  runs   (perch cannot read the command from this file)"),
    }
    if !same {
        println!(
            "  note   not this perch ({}); `perch service install --force` points it here",
            this.as_deref().unwrap_or("unknown")
        );
    }
    match state {
        Some(State::Known(s)) => println!("  state  {s}"),
        Some(State::Unknown(why)) => println!("  state  unknown ({why})"),
        None => {}
    }
    Ok(())
}

/// Linux: a systemd user unit and `systemctl --user`.
mod systemd {
    #![cfg_attr(not(target_os = "linux"), allow(dead_code))]

    use std::path::{Path, PathBuf};
    use std::process::Command;

    use anyhow::{Result, anyhow};

    use super::{Manager, SYSTEMD_UNIT, ServiceSpec, State};

    pub(super) static MANAGER: Manager = Manager {
        kind: "systemd user unit",
        file: unit_file,
        contents: |spec: &ServiceSpec| Ok(super::systemd_unit(spec)),
        program: super::systemd_exec_start,
        start,
        stop,
        forget,
        state,
        start_hint: "systemctl --user daemon-reload && systemctl --user enable --now perch.service",
    };

    /// `$XDG_CONFIG_HOME/systemd/user/perch.service`, the first place a user manager looks.
    fn unit_file() -> Result<PathBuf> {
        let base = directories::BaseDirs::new()
            .ok_or_else(|| anyhow!("no home directory to install a user service in"))?;
        Ok(base
            .config_dir()
            .join("systemd")
            .join("user")
            .join(SYSTEMD_UNIT))
    }

    /// Runs `systemctl --user ARGS`: its stdout, or why it failed (not installed, no user
    /// manager or session bus, or the command's own error).
    fn systemctl(args: &[&str]) -> Result<String, String> {
        let out = Command::new("systemctl")
            .arg("--user")
            .args(args)
            .output()
            .map_err(|e| format!("cannot run systemctl: {e}"))?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(if err.is_empty() {
            format!(
                "systemctl --user {} ended with {}",
                args.join(" "),
                out.status
            )
        } else {
            err
        })
    }

    fn start(_file: &Path) -> Result<()> {
        if let Err(why) = systemctl(&["daemon-reload"]) {
            println!("systemctl --user is not usable here ({why}).");
            println!("The unit is written; in a login session with a user manager, start it with:");
            println!("  {}", MANAGER.start_hint);
            return Ok(());
        }
        systemctl(&["enable", SYSTEMD_UNIT])
            .map_err(|why| anyhow!("systemctl --user enable {SYSTEMD_UNIT} failed: {why}"))?;
        // restart, not start: a service that already runs picks up the new unit.
        systemctl(&["restart", SYSTEMD_UNIT])
            .map_err(|why| anyhow!("systemctl --user restart {SYSTEMD_UNIT} failed: {why}"))?;
        println!("Enabled and started {SYSTEMD_UNIT}: the host runs now and at every login.");
        println!("  status: systemctl --user status {SYSTEMD_UNIT}");
        println!("  logs:   journalctl --user -u {SYSTEMD_UNIT}");
        println!("To keep it running while you are logged out: loginctl enable-linger $USER");
        Ok(())
    }

    fn stop(file: &Path) {
        match systemctl(&["disable", "--now", SYSTEMD_UNIT]) {
            Ok(_) => println!("Stopped and disabled {SYSTEMD_UNIT}"),
            Err(why) => {
                println!("Could not ask systemd to stop it ({why}).");
                // What `disable` would have removed: the link that starts it at login.
                if let Some(dir) = file.parent() {
                    let wants = dir.join("default.target.wants").join(SYSTEMD_UNIT);
                    if wants.is_symlink() && std::fs::remove_file(&wants).is_ok() {
                        println!("Removed {}", wants.display());
                    }
                }
                println!(
                    "If it runs in another session, stop it there with: systemctl --user stop {SYSTEMD_UNIT}"
                );
            }
        }
    }

    fn forget() {
        // The manager drops the removed unit on a reload; without a manager there is nothing
        // to tell.
        let _ = systemctl(&["daemon-reload"]);
    }

    fn state() -> State {
        match Command::new("systemctl")
            .args(["--user", "is-active", SYSTEMD_UNIT])
            .output()
        {
            Err(e) => State::Unknown(format!("cannot run systemctl: {e}")),
            Ok(out) => {
                // is-active prints the state and exits non-zero for anything but "active".
                let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if said.is_empty() {
                    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
                    State::Unknown(format!("systemctl --user is not usable here: {err}"))
                } else {
                    State::Known(said)
                }
            }
        }
    }
}

/// macOS: a launchd agent and `launchctl`. Compiled on every Unix so it is type-checked where
/// the tests run; chosen only on macOS, where it has not been run yet.
#[cfg(unix)]
mod launchd {
    #![cfg_attr(not(target_os = "macos"), allow(dead_code))]

    use std::path::{Path, PathBuf};
    use std::process::Command;

    use anyhow::{Context, Result, anyhow};

    use super::{LAUNCHD_LABEL, Manager, ServiceSpec, State};

    pub(super) static MANAGER: Manager = Manager {
        kind: "launchd agent",
        file: agent_file,
        contents,
        program: super::launchd_program,
        start,
        stop,
        forget: || {},
        state,
        start_hint: "launchctl bootstrap gui/$(id -u) ~/Library/LaunchAgents/dev.perch.host.plist",
    };

    fn home() -> Result<PathBuf> {
        directories::BaseDirs::new()
            .map(|b| b.home_dir().to_path_buf())
            .ok_or_else(|| anyhow!("no home directory to install a user service in"))
    }

    /// `~/Library/LaunchAgents/dev.perch.host.plist`.
    fn agent_file() -> Result<PathBuf> {
        Ok(home()?
            .join("Library")
            .join("LaunchAgents")
            .join(format!("{LAUNCHD_LABEL}.plist")))
    }

    /// `~/Library/Logs/Perch/perch.log`, made if missing (launchd does not make it).
    fn contents(spec: &ServiceSpec) -> Result<String> {
        let dir = home()?.join("Library").join("Logs").join("Perch");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let log = super::absolute_text("the log file", &dir.join("perch.log"))?;
        Ok(super::launchd_plist(spec, &log))
    }

    /// `gui/UID`: the logged-in user's launchd domain.
    fn domain() -> String {
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        format!("gui/{uid}")
    }

    fn launchctl(args: &[&str]) -> Result<(), String> {
        let out = Command::new("launchctl")
            .args(args)
            .output()
            .map_err(|e| format!("cannot run launchctl: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(if err.is_empty() {
            format!("launchctl {} ended with {}", args.join(" "), out.status)
        } else {
            err
        })
    }

    fn start(file: &Path) -> Result<()> {
        let domain = domain();
        let file_text = file
            .to_str()
            .ok_or_else(|| anyhow!("{} is not valid UTF-8", file.display()))?;
        // An agent loaded from an earlier install keeps its old arguments until unloaded.
        let _ = launchctl(&["bootout", &format!("{domain}/{LAUNCHD_LABEL}")]);
        match launchctl(&["bootstrap", &domain, file_text]) {
            Ok(()) => {
                println!("Loaded {LAUNCHD_LABEL}: the host runs now and at every login.");
                println!("  status: launchctl print {domain}/{LAUNCHD_LABEL}");
                println!("  logs:   ~/Library/Logs/Perch/perch.log");
                Ok(())
            }
            Err(why) => {
                println!("launchctl could not load it ({why}).");
                println!("The agent file is written; load it with:");
                println!("  {}", MANAGER.start_hint);
                Ok(())
            }
        }
    }

    fn stop(_file: &Path) {
        match launchctl(&["bootout", &format!("{}/{LAUNCHD_LABEL}", domain())]) {
            Ok(()) => println!("Stopped and unloaded {LAUNCHD_LABEL}"),
            Err(why) => println!("launchctl bootout: {why} (it may not have been loaded)"),
        }
    }

    fn state() -> State {
        match Command::new("launchctl")
            .args(["print", &format!("{}/{LAUNCHD_LABEL}", domain())])
            .output()
        {
            Err(e) => State::Unknown(format!("cannot run launchctl: {e}")),
            Ok(out) if out.status.success() => State::Known("loaded".into()),
            Ok(_) => State::Known("not loaded".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(exe: &str, data: &str) -> ServiceSpec {
        ServiceSpec::new(
            Path::new(exe),
            Path::new(data),
            Some("0.0.0.0:18789".into()),
            Some("off".into()),
        )
        .unwrap()
    }

    #[test]
    fn unit_runs_serve_with_the_data_dir_and_flags_and_restarts_on_failure() {
        let unit = systemd_unit(&spec(
            "/usr/local/bin/perch",
            "/home/ana/.local/share/perch",
        ));
        let lines: Vec<&str> = unit.lines().collect();
        for want in [
            "[Unit]",
            "After=network-online.target",
            "[Service]",
            "ExecStart=/usr/local/bin/perch serve --data-dir /home/ana/.local/share/perch --bind 0.0.0.0:18789 --mdns off",
            "Restart=on-failure",
            "[Install]",
            "WantedBy=default.target",
        ] {
            assert!(lines.contains(&want), "missing {want:?} in\n{unit}");
        }
        assert!(lines.iter().any(|l| l.starts_with("Description=Perch")));
        // Sections in order, each key under its own section.
        let at = |s: &str| lines.iter().position(|l| *l == s).unwrap();
        assert!(at("[Unit]") < at("After=network-online.target"));
        assert!(at("[Service]") < at("Restart=on-failure"));
        assert!(at("[Install]") < at("WantedBy=default.target"));
        assert!(at("[Unit]") < at("[Service]") && at("[Service]") < at("[Install]"));
    }

    #[test]
    fn unit_omits_flags_that_were_not_given() {
        let s = ServiceSpec::new(Path::new("/opt/perch"), Path::new("/d"), None, None).unwrap();
        assert_eq!(s.argv(), ["/opt/perch", "serve", "--data-dir", "/d"]);
        assert!(
            systemd_unit(&s)
                .lines()
                .any(|l| l == "ExecStart=/opt/perch serve --data-dir /d")
        );
    }

    #[test]
    fn unit_quotes_spaces_and_doubles_percent_and_dollar() {
        let unit = systemd_unit(&spec(
            "/Users/Ana Lima/my apps/perch",
            "/home/ana/100% sure $HOME/d",
        ));
        let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
        assert_eq!(
            exec,
            "ExecStart=\"/Users/Ana Lima/my apps/perch\" serve --data-dir \"/home/ana/100%% sure $$HOME/d\" --bind 0.0.0.0:18789 --mdns off"
        );
    }

    #[test]
    fn systemd_words_escape_backslashes_and_quotes() {
        assert_eq!(systemd_word("plain/path"), "plain/path");
        assert_eq!(systemd_word("50%"), "50%%");
        assert_eq!(systemd_word("a\"b"), "\"a\\\"b\"");
        assert_eq!(systemd_word("c:\\dir"), "\"c:\\\\dir\"");
        assert_eq!(systemd_word("it's"), "\"it's\"");
        assert_eq!(systemd_word("a;b"), "\"a;b\"");
        assert_eq!(systemd_word(""), "\"\"");
    }

    #[test]
    fn exec_start_reads_back_what_the_unit_wrote() {
        for (exe, data) in [
            ("/usr/bin/perch", "/var/lib/perch"),
            ("/opt/my apps/per\"ch", "/home/a/100% \\ sure/$x;y 'q'"),
            ("/tmp/%h%%/perch", "/d/ x  y/"),
        ] {
            let s = ServiceSpec::new(Path::new(exe), Path::new(data), None, None).unwrap();
            assert_eq!(
                systemd_exec_start(&systemd_unit(&s)).unwrap(),
                s.argv(),
                "{exe} {data}"
            );
        }
    }

    #[test]
    fn exec_start_of_a_hand_written_unit_names_its_program() {
        let unit = "[Service]\nExecStart=-/usr/bin/perch serve\n";
        assert_eq!(systemd_exec_start(unit).unwrap()[0], "/usr/bin/perch");
        assert_eq!(systemd_exec_start("[Service]\nType=simple\n"), None);
    }

    #[test]
    fn specs_refuse_relative_paths_and_control_characters() {
        let err = ServiceSpec::new(Path::new("perch"), Path::new("/d"), None, None).unwrap_err();
        assert!(err.to_string().contains("not an absolute path"), "{err}");
        let err = ServiceSpec::new(Path::new("/p"), Path::new("/d\nx"), None, None).unwrap_err();
        assert!(err.to_string().contains("control character"), "{err}");
        let err = ServiceSpec::new(
            Path::new("/p"),
            Path::new("/d"),
            Some("127.0.0.1:1\r".into()),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("control character"), "{err}");
    }

    #[test]
    fn plist_has_label_arguments_and_keeps_the_host_alive() {
        let p = launchd_plist(
            &spec(
                "/Applications/Perch.app/Contents/MacOS/perch",
                "/Users/ana/Perch",
            ),
            "/Users/ana/Library/Logs/Perch/perch.log",
        );
        assert!(p.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
        assert!(p.contains("<key>Label</key>\n\t<string>dev.perch.host</string>"));
        assert!(p.contains("<key>RunAtLoad</key>\n\t<true/>"));
        assert!(p.contains("<key>KeepAlive</key>"));
        assert!(p.contains(
            "<key>StandardOutPath</key>\n\t<string>/Users/ana/Library/Logs/Perch/perch.log</string>"
        ));
        assert!(p.contains(
            "<key>StandardErrorPath</key>\n\t<string>/Users/ana/Library/Logs/Perch/perch.log</string>"
        ));
        assert_eq!(
            launchd_program(&p).unwrap(),
            [
                "/Applications/Perch.app/Contents/MacOS/perch",
                "serve",
                "--data-dir",
                "/Users/ana/Perch",
                "--bind",
                "0.0.0.0:18789",
                "--mdns",
                "off"
            ]
        );
        assert!(p.trim_end().ends_with("</plist>"));
    }

    #[test]
    fn plist_escapes_xml_in_paths() {
        let s = spec("/Users/a&b/<x>/perch", "/Users/\"q\" 'o' 100%");
        let p = launchd_plist(&s, "/Users/a&b/Logs/perch.log");
        assert!(
            p.contains("<string>/Users/a&amp;b/&lt;x&gt;/perch</string>"),
            "{p}"
        );
        assert!(
            p.contains("<string>/Users/&quot;q&quot; &apos;o&apos; 100%</string>"),
            "{p}"
        );
        assert!(p.contains("<string>/Users/a&amp;b/Logs/perch.log</string>"));
        assert!(!p.contains("a&b"));
        assert_eq!(launchd_program(&p).unwrap(), s.argv());
    }

    /// Reads the plist with a real plist parser (CPython's plistlib) where python3 exists.
    #[test]
    fn plist_parses_as_a_property_list() {
        let s = spec("/Users/a&b/my <apps>/perch", "/Users/\"q\" 'o' 100%");
        let p = launchd_plist(&s, "/Users/a/Library/Logs/Perch/perch.log");
        let script = "import plistlib,sys,json; d=plistlib.loads(sys.stdin.buffer.read()); \
                      print(json.dumps([d['Label'], d['ProgramArguments'], d['RunAtLoad'], \
                      d['KeepAlive'], d['StandardOutPath']]))";
        let child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            println!("note: python3 not found; plist checked by content only");
            return;
        };
        use std::io::Write;
        child.stdin.take().unwrap().write_all(p.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "plistlib refused:\n{p}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v,
            json!([
                "dev.perch.host",
                s.argv(),
                true,
                { "SuccessfulExit": false },
                "/Users/a/Library/Logs/Perch/perch.log"
            ])
        );
    }

    #[test]
    fn shell_lines_quote_what_a_shell_would_split() {
        let argv: Vec<String> = ["/opt/my apps/perch", "serve", "--data-dir", "/it's"]
            .map(String::from)
            .into();
        assert_eq!(
            shell_line(&argv),
            "'/opt/my apps/perch' serve --data-dir '/it'\\''s'"
        );
    }
}
