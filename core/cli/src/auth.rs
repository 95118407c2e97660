//! `perch auth` and `perch doctor`: model credentials and a health check, saying where things
//! are and what is missing, never a secret.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use perch_host::paths::{operator_token_path, read_operator_token};
use perch_kernel::credentials::{ModelsConfig, ProviderKind, Secret, TIERS, keyring_account};
use perch_kernel::vault::{Vault, VaultSources};

use crate::output::print_json;

/// `perch auth ...`.
#[derive(Subcommand, Debug)]
pub enum AuthCmd {
    /// Store a provider credential (read from standard input or a hidden prompt, never argv).
    Set {
        /// openai or anthropic.
        provider: String,
        /// The secret is an API key.
        #[arg(long, conflicts_with = "token")]
        api_key: bool,
        /// The secret is an OAuth token (Anthropic).
        #[arg(long)]
        token: bool,
    },
    /// Which tiers have a credential, and where it comes from.
    Status,
}

/// Flags shared by `perch auth` and `perch doctor`.
#[derive(Args, Debug)]
pub struct LocalArgs {
    /// Data directory (perch.toml, secrets).
    #[arg(long, env = "PERCH_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

fn read_secret(what: &str) -> Result<Secret> {
    let mut s = String::new();
    if std::io::stdin().is_terminal() {
        s = rpassword::prompt_password(format!("{what}: ")).context("cannot read the secret")?;
    } else {
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the secret from stdin")?;
    }
    let s = s.trim();
    if s.is_empty() {
        bail!("no secret given");
    }
    Ok(Secret::new(s))
}

/// Runs `perch auth`.
pub fn auth(cmd: AuthCmd, args: LocalArgs) -> Result<()> {
    let dir = crate::paths::data_dir(args.data_dir)?;
    let vault = Vault::new(&dir);
    match cmd {
        AuthCmd::Set {
            provider,
            api_key,
            token,
        } => {
            let kind = match provider.as_str() {
                "openai" => ProviderKind::Openai,
                "anthropic" => ProviderKind::Anthropic,
                other => bail!("unknown provider {other:?}; use openai or anthropic"),
            };
            if !api_key && !token {
                bail!("say what the secret is: --api-key or --token");
            }
            if token && kind == ProviderKind::Openai {
                bail!("openai takes an API key (--api-key), not a token");
            }
            let secret = read_secret(if token { "OAuth token" } else { "API key" })?;
            let account = keyring_account(kind, token);
            let backend = vault.set(&account, &secret)?;
            if args.json {
                print_json(
                    &json!({"provider": provider, "account": account, "storedIn": backend.to_string()}),
                )?;
            } else {
                println!(
                    "Stored the {provider} {} in {backend}.",
                    if token { "token" } else { "API key" }
                );
            }
        }
        AuthCmd::Status => {
            let report = status_report(&dir, &vault)?;
            if args.json {
                print_json(&report)?;
            } else {
                println!(
                    "Secrets are kept in {}",
                    report["secretsBackend"].as_str().unwrap_or("?")
                );
                for t in report["tiers"].as_array().into_iter().flatten() {
                    println!(
                        "  {:<8} {}",
                        t["tier"].as_str().unwrap_or(""),
                        t["summary"].as_str().unwrap_or("")
                    );
                }
            }
        }
    }
    Ok(())
}

fn status_report(dir: &std::path::Path, vault: &Vault) -> Result<Value> {
    let path = perch_host::config::config_path(dir);
    let text =
        perch_host::config::read_text(&path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let models = ModelsConfig::from_toml(&text)?;
    let sources = VaultSources(vault.clone());
    // Read-only: where each tier's key may go is checked, nothing is recorded.
    let origins = perch_kernel::credential_origins::CredentialOrigins::new(dir);
    let tiers: Vec<Value> = TIERS
        .iter()
        .map(|tier| match models.tiers.get(*tier) {
            None => json!({"tier": tier, "configured": false,
                           "summary": format!("not configured (add [models.{tier}] to perch.toml)")}),
            Some(cfg) => match models.resolve_bound(tier, &sources, &origins).map(|(r, _)| r) {
                Ok(r) => json!({"tier": tier, "configured": true, "provider": cfg.provider.as_str(),
                                "model": cfg.model, "credential": r.source.to_string(),
                                "summary": format!("{} {}: credential from {}", cfg.provider.as_str(), cfg.model, r.source)}),
                Err(e) => json!({"tier": tier, "configured": true, "provider": cfg.provider.as_str(),
                                 "model": cfg.model, "error": e.to_string(),
                                 "summary": format!("{} {}: MISSING ({e})", cfg.provider.as_str(), cfg.model)}),
            },
        })
        .collect();
    Ok(json!({"secretsBackend": vault.backend().to_string(), "tiers": tiers}))
}

/// Runs `perch doctor`: every check, each with a verdict and what to do.
pub async fn doctor(args: LocalArgs) -> Result<()> {
    let dir = crate::paths::data_dir(args.data_dir)?;
    let mut checks: Vec<Value> = Vec::new();
    let mut add = |name: &str, ok: bool, detail: String| {
        checks.push(json!({"check": name, "ok": ok, "detail": detail}));
    };
    add(
        "data directory",
        dir.is_dir(),
        if dir.is_dir() {
            dir.display().to_string()
        } else {
            format!(
                "{} does not exist yet (perch serve creates it)",
                dir.display()
            )
        },
    );
    let cfg = perch_host::HostConfig::load(&dir).map(|c| c.gateway);
    match &cfg {
        Ok(c) => add(
            "perch.toml",
            true,
            format!("gateway on {}, mDNS {}", c.bind, c.mdns.as_str()),
        ),
        Err(e) => add("perch.toml", false, e.to_string()),
    }
    let token = read_operator_token(&operator_token_path(&dir));
    add(
        "operator token",
        token.is_ok(),
        match &token {
            Ok(_) => format!("{} (mode 0600)", operator_token_path(&dir).display()),
            Err(e) => e.to_string(),
        },
    );
    let host_key = crate::ops::expected_host(&dir);
    if let (Ok(c), Ok(t), Ok(key)) = (&cfg, &token, &host_key) {
        let url = format!("ws://{}", perch_host::paths::dial_addr(c.bind));
        match crate::client::OperatorClient::connect(&url, t, key).await {
            Ok(client) => {
                client.close().await;
                add("host", true, format!("answering at {url}"));
            }
            Err(e) => add("host", false, format!("{url}: {e}")),
        }
    }
    let vault = Vault::new(&dir);
    let (backend, report) = tokio::task::spawn_blocking(move || {
        let b = vault.backend();
        let r = status_report(&dir, &vault);
        (b, r)
    })
    .await?;
    add(
        "secrets",
        true,
        match &backend {
            perch_kernel::vault::Backend::Keyring => "the OS keyring".to_string(),
            other => format!("WARNING: {other}"),
        },
    );
    match report {
        Ok(r) => {
            for t in r["tiers"].as_array().into_iter().flatten() {
                let ok = t["configured"] == false || t.get("error").is_none();
                add(
                    &format!("model tier {}", t["tier"].as_str().unwrap_or("")),
                    ok,
                    t["summary"].as_str().unwrap_or("").to_string(),
                );
            }
        }
        Err(e) => add("model tiers", false, e.to_string()),
    }
    add(
        "notifications",
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() || cfg!(not(target_os = "linux")),
        if cfg!(target_os = "linux") && std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
            "no D-Bus session bus: system.notify will answer NOTIFICATIONS_UNAVAILABLE on this machine".into()
        } else {
            "a session bus is available".into()
        },
    );
    let all_ok = checks.iter().all(|c| c["ok"] == true);
    if args.json {
        print_json(&json!({"ok": all_ok, "checks": checks}))?;
    } else {
        for c in &checks {
            println!(
                "{} {:<20} {}",
                if c["ok"] == true { "ok  " } else { "FAIL" },
                c["check"].as_str().unwrap_or(""),
                c["detail"].as_str().unwrap_or("")
            );
        }
    }
    if !all_ok {
        bail!("some checks failed");
    }
    Ok(())
}
