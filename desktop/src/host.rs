//! The host supervisor: finds the data directory and settings, attaches to a Perch host that
//! already answers on the configured address or starts one in this process, watches it, and
//! turns every failure into [`HostState::Error`] with a reason instead of ending the app.
//!
//! Retry rules: an explicit [`HostSupervisor::retry`] always tries "attach, else start". The
//! automatic retries in the background (capped backoff) do the same, except after a host this
//! app attached to went away: then they only try to attach again, so a user restarting their
//! own `perch serve` does not find the port taken by the app. Pressing Retry starts the host
//! inside the app in that case.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use perch_client::Backoff;
use perch_host::{Host, HostConfig, RunningHost, StartError};

/// How long a graceful stop of the in-process host may take before the app moves on.
const STOP_GRACE: Duration = Duration::from_secs(8);
/// Consecutive failed health probes before a running host counts as gone.
const PROBE_FAILURES: u32 = 2;

pub use perch_host::paths::{DataDirError, dial_addr};

/// The data directory as the CLI picks it: the flag, else `PERCH_DATA_DIR`, else the
/// platform's data directory for `perch`.
pub fn resolve_data_dir(flag: Option<PathBuf>) -> Result<PathBuf, DataDirError> {
    perch_host::paths::data_dir(flag)
}

/// What the supervisor needs: where the data is and how patient to be.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HostOptions {
    /// The data directory (database, operator token, perch.toml).
    pub data_dir: PathBuf,
    /// Listen address overriding `[gateway] bind` (`--bind`, for tests and odd setups).
    pub bind: Option<SocketAddr>,
    /// How often a running host is checked.
    pub probe_interval: Duration,
    /// How long one health probe may take.
    pub probe_timeout: Duration,
    /// First automatic retry delay after a failure.
    pub retry_base: Duration,
    /// Longest automatic retry delay.
    pub retry_cap: Duration,
}

impl HostOptions {
    /// Options with the defaults: probe every 2 s (1 s limit), retry from 1 s up to 30 s.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            bind: None,
            probe_interval: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(1),
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(30),
        }
    }
}

/// Whose host this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HostMode {
    /// Started by this app, in this process; it stops when the app quits.
    Embedded,
    /// Already running (`perch serve`, another app instance); the app only uses it.
    Attached,
}

/// What the tray and the shell page show about the host.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum HostState {
    /// Loading settings, probing, or starting.
    Starting,
    /// A host answers.
    #[serde(rename_all = "camelCase")]
    Running {
        /// Where it listens (the address actually bound).
        addr: SocketAddr,
        /// Started here or found running.
        mode: HostMode,
        /// Its host id.
        host_id: String,
    },
    /// No host: why, and what the user can do about it.
    #[serde(rename_all = "camelCase")]
    Error {
        /// One line for the tray ("cannot listen on 127.0.0.1:18789: address in use").
        reason: String,
        /// What to do, for the shell page.
        hint: Option<String>,
    },
    /// The app is quitting.
    Stopped,
}

/// What happened to the host; the input of [`HostState::next`].
#[derive(Debug, Clone, PartialEq)]
pub enum HostEvent {
    /// An attempt starts; `explicit` when the user asked (Retry) or at launch.
    Attempt {
        /// Asked for, rather than a background retry.
        explicit: bool,
    },
    /// A host answers.
    Up {
        /// Its address.
        addr: SocketAddr,
        /// Whose it is.
        mode: HostMode,
        /// Its id.
        host_id: String,
    },
    /// The attempt failed, or the running host went away.
    Failed {
        /// One line.
        reason: String,
        /// What to do.
        hint: Option<String>,
    },
    /// The app is quitting.
    Stop,
}

impl HostState {
    /// The transition function. `Stopped` is final; a background retry keeps showing the
    /// error it is trying to fix (no flicker through `Starting` every few seconds), while an
    /// explicit attempt shows `Starting`.
    pub fn next(&self, event: HostEvent) -> HostState {
        match (self, event) {
            (HostState::Stopped, _) | (_, HostEvent::Stop) => HostState::Stopped,
            (HostState::Error { .. }, HostEvent::Attempt { explicit: false }) => self.clone(),
            (_, HostEvent::Attempt { .. }) => HostState::Starting,
            (
                _,
                HostEvent::Up {
                    addr,
                    mode,
                    host_id,
                },
            ) => HostState::Running {
                addr,
                mode,
                host_id,
            },
            (_, HostEvent::Failed { reason, hint }) => HostState::Error { reason, hint },
        }
    }

    /// The address of a running host.
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            HostState::Running { addr, .. } => Some(*addr),
            _ => None,
        }
    }
}

/// Attach to what answers, or also start one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    AttachOrStart,
    AttachOnly,
}

/// What a health probe found at an address.
#[derive(Debug, Clone, PartialEq)]
enum Probe {
    /// A Perch host, with its id.
    Perch(String),
    /// Nothing listens (connection refused): free to start one.
    Nothing(String),
    /// Something answered, but not as a Perch host (or not in time).
    Other(String),
}

/// A host that answers, and the gateway when it runs in this process.
struct Up {
    addr: SocketAddr,
    mode: HostMode,
    host_id: String,
    gateway: Option<RunningHost>,
}

/// How a running host's watch ended.
enum Watched {
    Stop,
    Lost(String),
    /// The user asked to restart the host in this process (to apply perch.toml).
    Restart,
}

/// Keeps one host available to the app, or says why it cannot.
#[derive(Clone)]
pub struct HostSupervisor {
    inner: Arc<Inner>,
}

struct Inner {
    options: HostOptions,
    state: watch::Sender<HostState>,
    wake: Notify,
    /// Set with a wake when the user asks for a restart of the in-process host.
    restart: std::sync::atomic::AtomicBool,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl HostSupervisor {
    /// Starts supervising at once (attach or start); must be called inside a tokio runtime.
    pub fn start(options: HostOptions) -> HostSupervisor {
        let (state, _) = watch::channel(HostState::Starting);
        let inner = Arc::new(Inner {
            options,
            state,
            wake: Notify::new(),
            restart: std::sync::atomic::AtomicBool::new(false),
            stop: CancellationToken::new(),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(supervise(inner.clone()));
        if let Ok(mut slot) = inner.task.lock() {
            *slot = Some(task);
        }
        HostSupervisor { inner }
    }

    /// A live view of the host state.
    pub fn state(&self) -> watch::Receiver<HostState> {
        self.inner.state.subscribe()
    }

    /// The host state now.
    pub fn current(&self) -> HostState {
        self.inner.state.borrow().clone()
    }

    /// The data directory in use.
    pub fn data_dir(&self) -> &Path {
        &self.inner.options.data_dir
    }

    /// Tries again now (attach, else start) when there is no host; does nothing while one
    /// runs.
    pub fn retry(&self) {
        self.inner.wake.notify_one();
    }

    /// Restarts the host running in this process, so it picks up a changed perch.toml (bind
    /// address, mDNS, name). Does nothing for an attached host, which is not ours to stop;
    /// with no host it is a Retry.
    pub fn restart(&self) {
        self.inner
            .restart
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.wake.notify_one();
    }

    /// Stops supervising and, if the host runs in this process, shuts it down gracefully.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        let task = self.inner.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task
            && let Err(e) = task.await
        {
            tracing::warn!(error = %e, "host supervisor ended abnormally");
        }
    }
}

async fn supervise(inner: Arc<Inner>) {
    let step = |event: HostEvent| {
        inner.state.send_modify(|s| *s = s.next(event));
    };
    let options = &inner.options;
    let mut backoff = Backoff::new(options.retry_base, options.retry_cap);
    let mut plan = Plan::AttachOrStart;
    let mut explicit = true;
    loop {
        step(HostEvent::Attempt { explicit });
        let attempt = tokio::select! {
            a = attempt(options, plan) => a,
            _ = inner.stop.cancelled() => break,
        };
        match attempt {
            Ok(mut up) => {
                backoff.reset();
                tracing::info!(addr = %up.addr, mode = ?up.mode, host_id = %up.host_id, "host available");
                step(HostEvent::Up {
                    addr: up.addr,
                    mode: up.mode,
                    host_id: up.host_id.clone(),
                });
                let watched = watch_running(&inner, &up).await;
                if let Some(gw) = up.gateway.take() {
                    stop_gateway(gw).await;
                }
                match watched {
                    Watched::Stop => break,
                    Watched::Restart => {
                        tracing::info!("restarting the host to apply its settings");
                        explicit = true;
                        plan = Plan::AttachOrStart;
                        continue;
                    }
                    Watched::Lost(reason) => {
                        tracing::warn!(%reason, "host lost");
                        plan = match up.mode {
                            HostMode::Attached => Plan::AttachOnly,
                            HostMode::Embedded => Plan::AttachOrStart,
                        };
                        let hint = match up.mode {
                            HostMode::Attached => Some(
                                "Perch keeps looking for that host. Press Retry to start the host inside Perch instead."
                                    .to_string(),
                            ),
                            HostMode::Embedded => None,
                        };
                        step(HostEvent::Failed { reason, hint });
                    }
                }
            }
            Err((reason, hint)) => {
                tracing::warn!(%reason, "no host");
                step(HostEvent::Failed { reason, hint });
            }
        }
        let delay = backoff.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(delay) => explicit = false,
            _ = inner.wake.notified() => {
                // With no host, a restart is just a Retry.
                inner.restart.store(false, std::sync::atomic::Ordering::SeqCst);
                explicit = true;
                plan = Plan::AttachOrStart;
            }
            _ = inner.stop.cancelled() => break,
        }
    }
    step(HostEvent::Stop);
}

/// Watches a running host until it stops answering or the app quits. A Retry while it runs
/// is consumed here, so it does not trigger a restart later.
async fn watch_running(inner: &Inner, up: &Up) -> Watched {
    let options = &inner.options;
    let mut failures = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(options.probe_interval) => {}
            _ = inner.wake.notified() => {
                let restart = inner.restart.swap(false, std::sync::atomic::Ordering::SeqCst);
                if restart && up.mode == HostMode::Embedded {
                    return Watched::Restart;
                }
                continue;
            }
            _ = inner.stop.cancelled() => return Watched::Stop,
        }
        match probe(up.addr, options.probe_timeout).await {
            Probe::Perch(id) if id == up.host_id => failures = 0,
            Probe::Perch(id) => {
                return Watched::Lost(format!(
                    "another Perch host ({id}) now answers at {}",
                    up.addr
                ));
            }
            Probe::Nothing(why) | Probe::Other(why) => {
                failures += 1;
                if failures >= PROBE_FAILURES {
                    return Watched::Lost(format!(
                        "the Perch host at {} stopped answering: {why}",
                        up.addr
                    ));
                }
            }
        }
    }
}

async fn stop_gateway(gw: RunningHost) {
    if tokio::time::timeout(STOP_GRACE, gw.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("the in-process host did not stop in time");
    }
}

/// One attempt: settings, then attach or start.
async fn attempt(options: &HostOptions, plan: Plan) -> Result<Up, (String, Option<String>)> {
    // Read here only to know where to probe; starting reads it (once) for itself.
    let config = HostConfig::load(&options.data_dir).map_err(|e| {
        let e = StartError::from(e);
        (e.to_string(), Some(e.hint().to_string()))
    })?;
    let bind = options.bind.unwrap_or(config.gateway.bind);
    // Port 0 means "any free port": nothing can be listening there yet.
    if bind.port() != 0 {
        let target = dial_addr(bind);
        match own_host(
            probe(target, options.probe_timeout).await,
            &options.data_dir,
        ) {
            Probe::Perch(host_id) => {
                return Ok(Up {
                    addr: target,
                    mode: HostMode::Attached,
                    host_id,
                    gateway: None,
                });
            }
            Probe::Nothing(why) if plan == Plan::AttachOnly => {
                return Err((
                    format!("the Perch host at {target} stopped answering: {why}"),
                    Some(
                        "Perch keeps looking for that host. Press Retry to start the host inside Perch instead."
                            .into(),
                    ),
                ));
            }
            Probe::Other(why) if plan == Plan::AttachOnly => {
                return Err((format!("no Perch host answers at {target}: {why}"), None));
            }
            // Nothing there, or something else: starting says exactly what is wrong.
            Probe::Nothing(_) | Probe::Other(_) => {}
        }
    }
    let mut start = perch_host::HostOptions::new(&options.data_dir);
    if let Some(bind) = options.bind {
        start = start.with_bind(bind);
    }
    match Host::start(start).await {
        Ok(host) => Ok(Up {
            // Bound to every interface: this machine reaches it on loopback.
            addr: dial_addr(host.addr()),
            mode: HostMode::Embedded,
            host_id: host.host_id().to_string(),
            gateway: Some(host),
        }),
        Err(e) => Err(describe_start_error(&e)),
    }
}

/// One line for the tray and a hint for the shell page.
fn describe_start_error(e: &StartError) -> (String, Option<String>) {
    (e.to_string(), Some(e.hint().to_string()))
}

/// A Perch host counts only if it is the host of `data_dir` (its id derives from the key
/// there); any other is "something else", so the app never attaches to it. The operator
/// connection then makes the host prove that key before the token is sent.
fn own_host(found: Probe, data_dir: &Path) -> Probe {
    let Probe::Perch(id) = found else {
        return found;
    };
    match perch_host::paths::read_host_fingerprint(data_dir) {
        Ok(Some(fp)) if perch_protocol::identity::host_id_for(&fp) != id => Probe::Other(format!(
            "another Perch host ({id}) answers there, not the one of {}",
            data_dir.display()
        )),
        _ => Probe::Perch(id),
    }
}

/// Asks `http://ADDR/healthz` whether a Perch host answers.
async fn probe(addr: SocketAddr, timeout: Duration) -> Probe {
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
    {
        Ok(c) => c,
        Err(e) => return Probe::Other(format!("cannot make an HTTP client: {e}")),
    };
    let resp = match client.get(format!("http://{addr}/healthz")).send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Probe::Nothing(root_cause(&e)),
        Err(e) if e.is_timeout() => {
            return Probe::Other(format!("no answer within {} ms", timeout.as_millis()));
        }
        Err(e) => return Probe::Other(root_cause(&e)),
    };
    let body: serde_json::Value = match resp.json().await {
        Ok(v) => v,
        Err(_) => return Probe::Other("something other than a Perch host answers".into()),
    };
    match (body.get("ok"), body.get("hostId").and_then(|h| h.as_str())) {
        (Some(serde_json::Value::Bool(true)), Some(id)) => Probe::Perch(id.to_string()),
        _ => Probe::Other("something other than a Perch host answers".into()),
    }
}

/// The innermost error message (for example "Connection refused (os error 111)").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let text = cur.to_string();
    let mut chars = text.chars();
    match chars.next() {
        // "Connection refused" reads better mid-sentence in lower case.
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> HostState {
        HostState::Running {
            addr: "127.0.0.1:1".parse().unwrap(),
            mode: HostMode::Embedded,
            host_id: "h".into(),
        }
    }

    fn failed(reason: &str) -> HostEvent {
        HostEvent::Failed {
            reason: reason.into(),
            hint: None,
        }
    }

    #[test]
    fn background_retries_keep_the_error_shown() {
        let err = HostState::Starting.next(failed("port taken"));
        assert_eq!(
            err.next(HostEvent::Attempt { explicit: false }),
            err,
            "no flicker"
        );
        assert_eq!(
            err.next(HostEvent::Attempt { explicit: true }),
            HostState::Starting
        );
    }

    #[test]
    fn stopped_is_final() {
        let s = running().next(HostEvent::Stop);
        assert_eq!(s, HostState::Stopped);
        assert_eq!(s.next(HostEvent::Attempt { explicit: true }), s);
        assert_eq!(s.next(failed("x")), s);
    }

    #[test]
    fn up_and_lost() {
        let up = HostState::Starting.next(HostEvent::Up {
            addr: "127.0.0.1:5".parse().unwrap(),
            mode: HostMode::Attached,
            host_id: "abc".into(),
        });
        assert_eq!(up.addr(), Some("127.0.0.1:5".parse().unwrap()));
        let lost = up.next(failed("gone"));
        assert!(matches!(lost, HostState::Error { ref reason, .. } if reason == "gone"));
        assert_eq!(lost.addr(), None);
    }

    #[test]
    fn state_serializes_for_the_shell_page() {
        let v = serde_json::to_value(HostState::Error {
            reason: "r".into(),
            hint: Some("h".into()),
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"state": "error", "reason": "r", "hint": "h"})
        );
        let v = serde_json::to_value(running()).unwrap();
        assert_eq!(v["state"], "running");
        assert_eq!(v["hostId"], "h");
        assert_eq!(v["mode"], "embedded");
    }

    #[test]
    fn data_dir_flag_wins() {
        assert_eq!(
            resolve_data_dir(Some(PathBuf::from("/x"))).unwrap(),
            PathBuf::from("/x")
        );
    }

    #[test]
    fn only_this_data_directorys_host_is_attached_to() {
        let dir = tempfile::tempdir().unwrap();
        // No host key yet: whatever Perch host answers may be attached to (it proves its key
        // to the operator connection before any token is sent).
        assert_eq!(
            own_host(Probe::Perch("abc".into()), dir.path()),
            Probe::Perch("abc".into())
        );
        let key = perch_protocol::DeviceIdentity::from_seed(&[5; 32]);
        std::fs::write(
            dir.path().join("host-identity.json"),
            serde_json::json!({"privateKey": key.private_b64()}).to_string(),
        )
        .unwrap();
        let mine = perch_protocol::identity::host_id_for(key.device_id().as_str());
        assert_eq!(
            own_host(Probe::Perch(mine.clone()), dir.path()),
            Probe::Perch(mine)
        );
        assert!(matches!(
            own_host(Probe::Perch("0123456789abcdef".into()), dir.path()),
            Probe::Other(why) if why.contains("another Perch host")
        ));
        assert_eq!(
            own_host(Probe::Nothing("x".into()), dir.path()),
            Probe::Nothing("x".into())
        );
    }

    #[test]
    fn bind_errors_read_as_one_line() {
        let e = StartError::Gateway(perch_host::GatewayError::Bind {
            addr: "127.0.0.1:18789".parse().unwrap(),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        });
        let (reason, hint) = describe_start_error(&e);
        assert_eq!(reason, "cannot listen on 127.0.0.1:18789: address in use");
        assert!(hint.unwrap().contains("Settings"));
    }
}
