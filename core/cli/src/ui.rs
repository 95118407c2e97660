//! `perch ui`: opens the host's web UI in a browser, signed in with the operator token.
//!
//! The token travels in the URL fragment (`#token=...`), which browsers never send to a
//! server; the UI moves it to session storage and drops it from the address bar. The token is
//! never printed: `--print-url` shows `<operator-token>` in its place. It is, however, an
//! argument of the opener process (`xdg-open`, `open`) for the moment it runs.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, Result, anyhow, bail};

use crate::OperatorArgs;
use crate::client::OperatorClient;

/// Shown instead of the token.
pub const TOKEN_PLACEHOLDER: &str = "<operator-token>";

/// Runs `perch ui`.
pub async fn run(print_url: bool, data_dir: Option<PathBuf>, op: OperatorArgs) -> Result<()> {
    let dir = crate::paths::data_dir(data_dir)?;
    let ws_url = crate::paths::gateway_url(op.gateway.clone(), &dir)?;
    let base = ui_base(&ws_url)?;
    let token = crate::ops::operator_token(&dir)?;
    if print_url {
        let shown = format!("{base}#token={TOKEN_PLACEHOLDER}");
        if op.json {
            crate::output::print_json(&serde_json::json!({ "url": shown }))?;
        } else {
            println!("{shown}");
        }
        return Ok(());
    }
    // Fail here, in words, rather than in a browser tab.
    let host_key = crate::ops::expected_host(&dir)?;
    let client = OperatorClient::connect(&ws_url, &token, &host_key)
        .await
        .with_context(|| {
            format!("the host at {ws_url} does not answer; is `perch serve` running?")
        })?;
    client.close().await;
    open_in_browser(&format!("{base}#token={}", fragment_encode(&token)))
        .with_context(|| format!("cannot open a browser; open {base} and paste the operator token (see `perch ui --print-url`)"))?;
    if op.json {
        crate::output::print_json(&serde_json::json!({ "opened": base }))?;
    } else {
        println!("Opened the Perch web UI at {base}");
    }
    Ok(())
}

/// `ws://HOST:PORT[/]` → `http://HOST:PORT/ui/` (`wss` → `https`).
pub fn ui_base(ws_url: &str) -> Result<String> {
    let (scheme, rest) = ws_url
        .split_once("://")
        .ok_or_else(|| anyhow!("{ws_url:?} is not a ws:// URL"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => "http",
        "wss" | "https" => "https",
        other => bail!("{ws_url:?}: unsupported scheme {other:?} (use ws:// or wss://)"),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        bail!("{ws_url:?} has no host");
    }
    Ok(format!("{scheme}://{authority}/ui/"))
}

/// Percent-encodes everything but URL-unreserved characters (tokens are base64url already).
fn fragment_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The program that opens a URL: `$BROWSER` (its first entry) when set, else the platform's
/// opener.
fn opener() -> String {
    if let Some(b) = std::env::var("BROWSER")
        .ok()
        .and_then(|b| b.split(':').next().map(str::trim).map(str::to_string))
        .filter(|b| !b.is_empty())
    {
        return b;
    }
    if cfg!(target_os = "macos") {
        "open".into()
    } else if cfg!(windows) {
        "explorer".into()
    } else {
        "xdg-open".into()
    }
}

/// Hands the URL to the opener. Its output is discarded: openers echo the URL when they fail,
/// and this one carries the token.
fn open_in_browser(url: &str) -> Result<()> {
    let program = opener();
    let status = std::process::Command::new(&program)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| anyhow!("cannot run {program}: {e}"))?;
    // Windows' explorer reports 1 even when it opened the page.
    if !status.success() && !cfg!(windows) {
        bail!("{program} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_base_follows_the_gateway_url() {
        assert_eq!(
            ui_base("ws://127.0.0.1:18789").unwrap(),
            "http://127.0.0.1:18789/ui/"
        );
        assert_eq!(
            ui_base("wss://box.lan:443/").unwrap(),
            "https://box.lan:443/ui/"
        );
        assert_eq!(
            ui_base("ws://[::1]:9000/path?x").unwrap(),
            "http://[::1]:9000/ui/"
        );
        assert!(ui_base("127.0.0.1:18789").is_err());
        assert!(ui_base("ftp://x").is_err());
        assert!(ui_base("ws://").is_err());
    }

    #[test]
    fn tokens_survive_the_fragment() {
        assert_eq!(fragment_encode("aB3-_x"), "aB3-_x");
        assert_eq!(fragment_encode("a b&c#"), "a%20b%26c%23");
    }
}
