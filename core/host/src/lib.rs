//! perch-host: the composition root. One call ([`Host::start`]) turns a data directory into a
//! running host: it reads `perch.toml` once (and again when `settings.set` changes it), builds
//! the model providers when settings change (never per turn), wires the kernel's agent to the
//! store's transcript and location ledger, registers connected nodes' commands as catalog
//! entries, and starts the gateway with all of that as its [`perch_gateway::HostServices`].
//! `perch serve` and the menu-bar app each make that one call.
//!
//! **Architecture Invariant:** this is the only crate that wires the parts together; the CLI
//! and the desktop app start a host through it and hold no gateway wiring of their own.
//!
//! **Architecture Invariant:** `perch.toml` is read in one module ([`config`]); a chat turn
//! reads no settings file.
//!
//! **Architecture Invariant:** the gateway does not depend on this crate: it asks for what it
//! needs through the `HostServices` trait, so transport and composition stay apart.

pub mod assistant;
pub mod config;
pub mod context;
mod host;
pub mod location_ledger;
pub mod log_caps;
pub mod models;
pub mod options;
pub mod paths;
pub mod services;
pub mod settings;
pub mod tools;
pub mod transcript;

pub use config::{CONFIG_FILE, ConfigError, HostConfig};
pub use host::{Host, RunningHost, StartError};
pub use options::HostOptions;
pub use perch_gateway::GatewayError;
pub use perch_gateway::config::{MdnsMode, parse_bind};
