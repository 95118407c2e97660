//! The Perch gateway: the WebSocket endpoint that operators (CLI, apps) and nodes (phones,
//! desktops) connect to. It owns the handshake, device pairing and tokens, the registry of
//! connected nodes, the routing of `node.invoke` to them, and the method table.
//!
//! **Architecture Invariant:** the gateway never reads `perch.toml` and never builds a model
//! provider: it is handed a [`GatewayConfig`] and a [`HostServices`] by the host composition
//! (perch-host), which owns the settings file, the kernel and the tools.
//!
//! **Architecture Invariant:** node capabilities are claims; the gateway enforces what may run
//! (advertised commands and host policy) before anything reaches a node.
//!
//! **Architecture Invariant:** the gateway persists through `perch-store` only and never
//! writes SQL itself; every change spanning several rows is one store transaction.
//!
//! **Architecture Invariant:** LAN discovery is best effort and public: the mDNS advertiser
//! never fails or delays the gateway, publishes only hint keys (never tokens, user names or
//! paths), and resolves a name conflict a bounded number of times, never in a loop.
//!
//! **Architecture Invariant:** the host signs every challenge with its key before a client
//! sends anything secret; setup codes and mDNS carry that key's fingerprint, never a secret
//! other than the single-use bootstrap token a setup code exists to deliver.
//!
//! **Architecture Invariant:** a misbehaving client costs only its own connection: bad frames
//! get structured errors, slow readers are closed, and no client input can panic a task that
//! others depend on.

pub mod accept;
pub mod access;
pub mod chat;
pub mod config;
pub mod conn_limits;
mod connection;
pub mod dispatch;
mod fd_limit;
pub mod frame_limit;
pub mod handshake;
pub mod host_check;
pub mod hub;
mod idempotency;
pub mod invoke;
pub mod location;
pub mod location_changes;
pub mod mdns;
pub mod node_events;
pub mod node_reports;
pub mod operator;
pub mod pairing;
pub mod phase;
pub mod presence;
pub mod secrets;
pub mod selector;
pub mod server;
pub mod services;
pub mod sessions;
pub mod setup_code;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod tier_secret;
pub mod web;
pub mod ws_upgrade;

pub use config::GatewayConfig;
pub use server::{GatewayError, RunningGateway, start};
pub use services::{GatewayOnly, HostServices, TurnRequest};
