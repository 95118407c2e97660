//! The host supervisor against real gateways: start in-process, attach, lose and find again,
//! and every way it can fail becoming an error state with a reason.

mod common;

use std::time::Duration;

use perch_desktop::host::{HostMode, HostState, HostSupervisor};

use common::*;

fn state(s: &HostSupervisor) -> HostState {
    s.current()
}

async fn until_state(
    s: &HostSupervisor,
    what: &str,
    pred: impl Fn(&HostState) -> bool,
) -> HostState {
    until(what, || Some(state(s)).filter(&pred)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn starts_a_host_in_process_when_none_answers() {
    let dir = data_dir("");
    let sup = HostSupervisor::start(host_options(dir.path(), "127.0.0.1:0"));
    let s = until_state(&sup, "running", |s| s.addr().is_some()).await;
    let HostState::Running {
        addr,
        mode,
        host_id,
    } = s
    else {
        unreachable!()
    };
    assert_eq!(mode, HostMode::Embedded);
    assert_eq!(host_id.len(), 16);
    let health: serde_json::Value = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["hostId"], host_id.as_str());
    assert!(dir.path().join("operator.token").exists());
    sup.shutdown().await;
    assert_eq!(sup.current(), HostState::Stopped);
    // The in-process host is gone with it.
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "host still listening after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn attaches_to_a_running_host_and_follows_it_away_and_back() {
    let dir = data_dir("");
    let gw = gateway(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let addr = gw.addr();
    let host_id = gw.host_id().to_string();
    let sup = HostSupervisor::start(host_options(dir.path(), &addr.to_string()));
    let s = until_state(&sup, "attached", |s| s.addr().is_some()).await;
    assert_eq!(
        s,
        HostState::Running {
            addr,
            mode: HostMode::Attached,
            host_id: host_id.clone()
        }
    );
    gw.shutdown().await;
    let s = until_state(&sup, "an error", |s| matches!(s, HostState::Error { .. })).await;
    let HostState::Error { reason, hint } = &s else {
        unreachable!()
    };
    assert!(
        reason.contains("stopped answering") && reason.contains(&addr.to_string()),
        "{reason}"
    );
    assert!(hint.as_deref().unwrap_or("").contains("Retry"), "{hint:?}");
    // Background retries only look for that host: the port stays free for its owner.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(matches!(sup.current(), HostState::Error { .. }));
    let gw = gateway(dir.path(), addr).await;
    let s = until_state(&sup, "attached again", |s| s.addr().is_some()).await;
    assert!(matches!(
        s,
        HostState::Running {
            mode: HostMode::Attached,
            ..
        }
    ));
    sup.shutdown().await;
    // Quitting the app leaves an attached host running.
    assert!(reqwest::get(format!("http://{addr}/healthz")).await.is_ok());
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_an_attached_host_died_starts_one_in_process() {
    let dir = data_dir("");
    let gw = gateway(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let addr = gw.addr();
    let sup = HostSupervisor::start(host_options(dir.path(), &addr.to_string()));
    until_state(&sup, "attached", |s| s.addr().is_some()).await;
    gw.shutdown().await;
    until_state(&sup, "an error", |s| matches!(s, HostState::Error { .. })).await;
    sup.retry();
    let s = until_state(&sup, "embedded", |s| s.addr().is_some()).await;
    assert!(matches!(s, HostState::Running { mode: HostMode::Embedded, addr: a, .. } if a == addr));
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_taken_port_is_an_error_and_retry_recovers() {
    let dir = data_dir("");
    // Something that is not Perch holds the port (it never answers HTTP).
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    let sup = HostSupervisor::start(host_options(dir.path(), &format!("127.0.0.1:{port}")));
    let s = until_state(&sup, "an error", |s| matches!(s, HostState::Error { .. })).await;
    let HostState::Error { reason, hint } = s else {
        unreachable!()
    };
    assert_eq!(
        reason,
        format!("cannot listen on 127.0.0.1:{port}: address in use")
    );
    assert!(hint.unwrap().contains("Settings"));
    drop(squatter);
    sup.retry();
    let s = until_state(&sup, "running", |s| s.addr().is_some()).await;
    assert!(matches!(
        s,
        HostState::Running {
            mode: HostMode::Embedded,
            ..
        }
    ));
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_perch_toml_is_an_error_naming_the_line() {
    let dir = data_dir("bind = 127.0.0.1:9\n");
    let sup = HostSupervisor::start(host_options(dir.path(), "127.0.0.1:0"));
    let s = until_state(&sup, "an error", |s| matches!(s, HostState::Error { .. })).await;
    let HostState::Error { reason, .. } = s else {
        unreachable!()
    };
    assert!(
        reason.contains("perch.toml") && reason.contains("line 3"),
        "{reason}"
    );
    // Fixed by hand (or by Settings), the next try works.
    std::fs::write(dir.path().join("perch.toml"), "[gateway]\nmdns = \"off\"\n").unwrap();
    sup.retry();
    until_state(&sup, "running", |s| s.addr().is_some()).await;
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unusable_data_dir_is_an_error() {
    let base = tempfile::tempdir().unwrap();
    let dir = unusable_dir(base.path());
    let sup = HostSupervisor::start(host_options(&dir, "127.0.0.1:0"));
    let s = until_state(&sup, "an error", |s| matches!(s, HostState::Error { .. })).await;
    let HostState::Error { reason, .. } = s else {
        unreachable!()
    };
    assert!(reason.contains("not-a-dir"), "{reason}");
    // It keeps trying in the background without crashing, and still reports the reason.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(matches!(sup.current(), HostState::Error { .. }));
    sup.shutdown().await;
}
