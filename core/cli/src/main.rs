//! `perch`: the command line for the Perch host and nodes. It starts the host (`serve`), runs
//! a headless node (`node run`), and speaks the gateway protocol as an operator for
//! everything else.
//!
//! **Architecture Invariant:** the CLI holds no business logic: `serve` starts the gateway,
//! `node run` starts the node runtime, and operator commands are thin clients of gateway
//! methods, printing what the host answers.

mod access;
mod auth;
mod client;
mod completions;
mod discover;
mod node;
mod ops;
mod output;
mod paths;
mod qr;
mod replies;
mod serve;
mod service;
mod ui;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Perch: a personal assistant host that your devices pair with.
#[derive(Parser, Debug)]
#[command(name = "perch", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Data directory (database, operator token, perch.toml).
    #[arg(long, env = "PERCH_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
struct OperatorArgs {
    /// Gateway WebSocket URL (default: the local host from perch.toml).
    #[arg(long, env = "PERCH_GATEWAY", global = true)]
    gateway: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the host: the gateway that devices pair with.
    Serve {
        /// Listen address, ADDR:PORT (overrides [gateway] bind in perch.toml).
        #[arg(long)]
        bind: Option<String>,
        /// mDNS/Bonjour advertisement: off, minimal or full (overrides [gateway] mdns).
        #[arg(long, value_name = "off|minimal|full")]
        mdns: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Host overview.
    Status {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        op: OperatorArgs,
    },
    /// Paired devices and pairing requests.
    Devices {
        #[command(subcommand)]
        cmd: DevicesCmd,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        op: OperatorArgs,
    },
    /// Nodes and their commands.
    Nodes {
        #[command(subcommand)]
        cmd: NodesCmd,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        op: OperatorArgs,
    },
    /// Model credentials: store them, see what is configured (never the secrets).
    Auth {
        #[command(subcommand)]
        cmd: auth::AuthCmd,
        #[command(flatten)]
        local: auth::LocalArgs,
    },
    /// Check the setup: data directory, settings, host, credentials, notifications.
    Doctor {
        #[command(flatten)]
        local: auth::LocalArgs,
    },
    /// Talk to the assistant: one message, or an interactive prompt without one.
    Chat {
        /// The message (omit for an interactive prompt).
        message: Option<String>,
        /// The session (default main).
        #[arg(long)]
        session: Option<String>,
        /// The model tier: fast, default or smart.
        #[arg(long)]
        tier: Option<String>,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        op: OperatorArgs,
    },
    /// Conversations with the assistant and their transcripts.
    Sessions {
        #[command(subcommand)]
        cmd: SessionsCmd,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        op: OperatorArgs,
    },
    /// Places you named (home, office): a location inside one is told by name.
    Places {
        #[command(subcommand)]
        cmd: PlacesCmd,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        op: OperatorArgs,
    },
    /// Whether, and how precisely, each device's location may reach the assistant.
    Location {
        #[command(subcommand)]
        cmd: LocationCmd,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        op: OperatorArgs,
    },
    /// Who is connected, and which device the user is at.
    Presence {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        op: OperatorArgs,
    },
    /// Open the host's web UI in a browser, signed in (the token is never printed).
    Ui {
        /// Print the URL (with `<operator-token>` in place of the token) instead of opening it.
        #[arg(long)]
        print_url: bool,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        op: OperatorArgs,
    },
    /// Find Perch hosts on the local network (mDNS/Bonjour).
    Discover(discover::DiscoverArgs),
    /// Run this machine as a node of a Perch host.
    Node {
        #[command(subcommand)]
        cmd: NodeCmd,
    },
    /// Run the host as a per-user service: systemd on Linux, launchd on macOS (untested there).
    ///
    /// `install` writes ~/.config/systemd/user/perch.service (or
    /// ~/Library/LaunchAgents/dev.perch.host.plist on macOS) to run this perch executable's
    /// `serve` with the data directory, then enables and starts it; `--no-start` only writes
    /// it. The macOS launchd agent follows launchd's documented format but has not been run on
    /// a Mac yet.
    Service {
        #[command(subcommand)]
        cmd: service::ServiceCmd,
        #[command(flatten)]
        common: Common,
    },
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    ///
    /// bash: `perch completions bash > ~/.local/share/bash-completion/completions/perch`;
    /// zsh: `perch completions zsh > ~/.zfunc/_perch` (with ~/.zfunc in fpath);
    /// fish: `perch completions fish > ~/.config/fish/completions/perch.fish`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// Commands that run until stopped, as services do: a closed stdout must not end them.
    fn runs_until_stopped(&self) -> bool {
        matches!(
            self,
            Command::Serve { .. }
                | Command::Node {
                    cmd: NodeCmd::Run(_)
                }
        )
    }
}

#[derive(Subcommand, Debug)]
enum DevicesCmd {
    /// Paired devices and pending requests.
    List,
    /// Approve a pending pairing request.
    Approve {
        /// The request id shown by `perch devices list`.
        request_id: String,
    },
    /// Reject a pending pairing request.
    Reject {
        /// The request id shown by `perch devices list`.
        request_id: String,
    },
    /// Lock a paired device out and close its connections.
    Revoke {
        /// Device id, unambiguous id prefix, or display name.
        device: String,
    },
    /// Forget a device (paired or revoked); it may ask to pair again.
    Remove {
        /// Device id, unambiguous id prefix, or display name.
        device: String,
    },
    /// A setup code (and QR code) that pairs a device without approval: single use, 10 minutes.
    SetupCode,
    /// What was run on a node, newest first: who asked (an assistant turn or an operator),
    /// the command, when, and what came of it.
    Access {
        /// Node id, unambiguous id prefix, or display name.
        node: String,
        /// How many rows (1 to 500).
        #[arg(long, default_value_t = perch_protocol::access::DEFAULT_ACCESS_LIMIT)]
        limit: u32,
        /// Rows older than this cursor (the `nextBefore` of a previous page).
        #[arg(long)]
        before: Option<String>,
    },
    /// Replies to notifications that came back from devices (a tapped action, typed text),
    /// newest first, and whether the assistant has read them yet.
    Replies {
        /// How many rows (1 to 500).
        #[arg(long, default_value_t = perch_protocol::notify_replies::DEFAULT_REPLIES_LIMIT)]
        limit: u32,
    },
}

#[derive(Subcommand, Debug)]
enum PlacesCmd {
    /// Name a place: NAME LAT,LON RADIUS_M.
    Add {
        /// The place's name, for example Home.
        name: String,
        /// Its center, LAT,LON.
        #[arg(value_name = "LAT,LON", allow_hyphen_values = true)]
        center: String,
        /// Its radius in meters.
        radius_m: u32,
    },
    /// The places you named.
    List,
    /// Forget a place.
    Remove {
        /// The place's name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum LocationCmd {
    /// Share a node's location with the assistant: exact, city, or off (the default).
    Share {
        /// Node id, id prefix, or display name.
        node: String,
        /// exact: coordinates too; city: place or city and local time, never coordinates.
        #[arg(long, value_parser = ["exact", "city", "off"])]
        precision: String,
    },
    /// What each node shares.
    Status,
    /// Every location read made for a prompt, newest first.
    Audit {
        /// How many rows.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Location changes devices reported on their own (a move, a place entered or left),
    /// newest first, as each device's sharing precision let the host keep them.
    Changes {
        /// How many rows (1 to 500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Subcommand, Debug)]
enum SessionsCmd {
    /// Every session, most recently used first.
    List,
    /// A session's transcript.
    Show {
        /// The session key (`main`, or a name).
        key: String,
        /// Show at most this many of the latest messages.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Subcommand, Debug)]
enum NodesCmd {
    /// Known nodes, online or not.
    List,
    /// One node in detail.
    Describe {
        /// Node id, unambiguous id prefix, or display name.
        node: String,
    },
    /// Run a command on a node.
    Invoke {
        /// Node id, unambiguous id prefix, or display name.
        node: String,
        /// Command, for example location.get.
        command: String,
        /// Command params as JSON.
        #[arg(long)]
        params: Option<String>,
        /// Deadline in milliseconds.
        #[arg(long)]
        timeout: Option<u64>,
        /// Idempotency key (default: a fresh one).
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Where a node is (location.get).
    Location {
        /// Node id, unambiguous id prefix, or display name.
        node: String,
        /// Deadline in milliseconds.
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Show a notification on a node (system.notify).
    Notify {
        /// Node id, unambiguous id prefix, or display name.
        node: String,
        /// Title line.
        #[arg(long)]
        title: String,
        /// Body text.
        #[arg(long)]
        body: String,
    },
}

#[derive(Subcommand, Debug)]
enum NodeCmd {
    /// Connect to a host, pair, and answer its invokes until stopped.
    Run(node::RunArgs),
    /// Hosts this node trusts (their pinned keys).
    Hosts(node::HostsArgs),
    /// Forget a host's pinned key (after reinstalling that host).
    ForgetHost(node::ForgetHostArgs),
    /// What the host ran on this node, newest first, read from the host as this node.
    Access(access::NodeAccessArgs),
}

fn init_tracing(default: &str) {
    let filter = EnvFilter::try_from_env("PERCH_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Frames carry tokens and keys: the wire libraries never log them, whatever was asked.
    let filter = perch_host::log_caps::cap_wire_logs(filter);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    // Before anything prints (clap's --help included): see `output` for why.
    output::on_closed_pipe(output::ClosedPipe::Stop);
    let cli = Cli::parse();
    if cli.command.runs_until_stopped() {
        output::on_closed_pipe(output::ClosedPipe::CarryOn);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { bind, mdns, common } => {
            init_tracing("info");
            report(serve::serve(common.data_dir, bind, mdns).await, false)
        }
        Command::Node { cmd } => match cmd {
            NodeCmd::Run(args) => {
                init_tracing("info");
                report(node::run(args).await, false)
            }
            NodeCmd::Hosts(args) => {
                init_tracing("warn");
                let json = args.json;
                report(node::hosts(args), json)
            }
            NodeCmd::ForgetHost(args) => {
                init_tracing("warn");
                report(node::forget_host(args), false)
            }
            NodeCmd::Access(args) => {
                init_tracing("warn");
                let json = args.json;
                report(access::node_access(args).await, json)
            }
        },
        Command::Service { cmd, common } => {
            init_tracing("warn");
            let json = matches!(cmd, service::ServiceCmd::Status { json: true });
            report(service::run(cmd, common.data_dir), json)
        }
        Command::Completions { shell } => {
            report(completions::print(shell, &mut Cli::command()), false)
        }
        Command::Discover(args) => {
            init_tracing("warn");
            let json = args.json;
            report(discover::run(args).await, json)
        }
        Command::Auth { cmd, local } => {
            init_tracing("warn");
            let json = local.json;
            report(
                tokio::task::spawn_blocking(move || auth::auth(cmd, local))
                    .await
                    .map_err(anyhow::Error::from)
                    .and_then(|r| r),
                json,
            )
        }
        Command::Doctor { local } => {
            init_tracing("warn");
            let json = local.json;
            report(auth::doctor(local).await, json)
        }
        Command::Chat {
            message,
            session,
            tier,
            common,
            op,
        } => {
            init_tracing("warn");
            let json = op.json;
            report(
                ops::chat(message, session, tier, common.data_dir, op).await,
                json,
            )
        }
        Command::Sessions { cmd, common, op } => {
            init_tracing("warn");
            let json = op.json;
            report(ops::sessions(cmd, common.data_dir, op).await, json)
        }
        Command::Places { cmd, common, op } => {
            init_tracing("warn");
            let json = op.json;
            report(ops::places(cmd, common.data_dir, op).await, json)
        }
        Command::Location { cmd, common, op } => {
            init_tracing("warn");
            let json = op.json;
            report(ops::location(cmd, common.data_dir, op).await, json)
        }
        Command::Presence { common, op } => {
            init_tracing("warn");
            let json = op.json;
            report(ops::presence(common.data_dir, op).await, json)
        }
        Command::Ui {
            print_url,
            common,
            op,
        } => {
            init_tracing("warn");
            let json = op.json;
            report(ui::run(print_url, common.data_dir, op).await, json)
        }
        Command::Status { common, op } => {
            init_tracing("warn");
            let json = op.json;
            report(ops::status(common.data_dir, op).await, json)
        }
        Command::Devices { cmd, common, op } => {
            init_tracing("warn");
            let json = op.json;
            report(ops::devices(cmd, common.data_dir, op).await, json)
        }
        Command::Nodes { cmd, common, op } => {
            init_tracing("warn");
            let json = op.json;
            report(ops::nodes(cmd, common.data_dir, op).await, json)
        }
    }
}

/// Prints an error the way the user asked for output, and picks the exit code.
fn report(result: anyhow::Result<()>, json: bool) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let host = e.downcast_ref::<client::CallError>().and_then(|c| match c {
                client::CallError::Host(shape) => Some(shape.clone()),
                client::CallError::Transport(_) => None,
            });
            if json {
                let body = match host {
                    Some(shape) => serde_json::json!({ "error": shape }),
                    None => {
                        serde_json::json!({ "error": { "code": "CLIENT_ERROR", "message": format!("{e:#}") } })
                    }
                };
                println!("{body}");
            } else {
                // Not eprintln!: a service whose stderr reader is gone must not panic here.
                let _ = writeln!(std::io::stderr(), "error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}
