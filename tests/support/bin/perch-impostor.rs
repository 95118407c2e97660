//! `perch-impostor`: a fake Perch host as its own process, so an attack can run it inside a
//! network namespace (`ip netns exec NS perch-impostor ...`).
//!
//! `perch-impostor record URL FINGERPRINT CLIENT_NONCE OUT`: connects to the real host (over
//! `wss://` it must prove FINGERPRINT) with CLIENT_NONCE and writes its challenge payload to OUT.
//!
//! `perch-impostor replay LISTEN CHALLENGE LOG NODE_ID [--tls]`: listens on LISTEN, greets every
//! client with the challenge in the file CHALLENGE, then a forged hello-ok and an invoke of
//! `location.get` for NODE_ID; with `--tls`, over TLS with a certificate of its own key. Every
//! thing it hears is appended to LOG as a JSON line ([`perch_attack_tests::impostor::Heard`]).

use std::io::Write;
use std::process::ExitCode;

use perch_attack_tests::impostor::{self, Heard, Script};
use perch_tls::HostPin;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["record", url, fingerprint, client_nonce, out] => {
            record(url, fingerprint, client_nonce, out).await
        }
        ["replay", listen, challenge, log, node_id] => {
            replay(listen, challenge, log, node_id, false).await
        }
        ["replay", listen, challenge, log, node_id, "--tls"] => {
            replay(listen, challenge, log, node_id, true).await
        }
        _ => Err(
            "usage: perch-impostor record URL FINGERPRINT CLIENT_NONCE OUT | \
                  perch-impostor replay LISTEN CHALLENGE LOG NODE_ID [--tls]"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("perch-impostor: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn record(url: &str, fingerprint: &str, client_nonce: &str, out: &str) -> Result<(), String> {
    let pin = HostPin::Fingerprint(fingerprint.to_string());
    let challenge = impostor::record_challenge(url, client_nonce, pin)
        .await
        .map_err(|e| e.to_string())?;
    std::fs::write(out, challenge.to_string()).map_err(|e| e.to_string())
}

async fn replay(
    listen: &str,
    challenge: &str,
    log: &str,
    node_id: &str,
    tls: bool,
) -> Result<(), String> {
    let text = std::fs::read_to_string(challenge).map_err(|e| e.to_string())?;
    let challenge = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let tls = if tls {
        Some(impostor::tls_of_another_key().map_err(|e| e.to_string())?)
    } else {
        None
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| e.to_string())?;
    // Ready: the test waits for this line before it expects clients to arrive.
    writeln!(file, "{}", serde_json::json!({"kind": "listening"})).map_err(|e| e.to_string())?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Heard>();
    tokio::spawn(impostor::serve(
        listener,
        Script::replay_to_node(challenge, node_id),
        tls,
        tx,
    ));
    while let Some(h) = rx.recv().await {
        writeln!(file, "{}", h.to_line()).map_err(|e| e.to_string())?;
        file.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}
