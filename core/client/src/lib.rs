//! Perch's operator client for embedders (the menu-bar app, tests, later other tools): one
//! long-lived operator connection to a host. A background task owns the WebSocket; callers
//! share a cheap [`Client`] handle to make concurrent requests ([`Client::call`]), follow host
//! events ([`Client::subscribe`]) and watch the connection ([`Client::state`]). The task
//! reconnects with capped, jittered backoff and stops on [`Client::shutdown`].
//!
//! **Architecture Invariant:** depends only on `perch-protocol` plus networking and runtime
//! crates; never on the gateway, store, kernel or node runtime. It speaks the wire protocol
//! of `docs/protocol.md` and nothing else.
//!
//! **Architecture Invariant:** [`ConnectionState::Connected`] is reported only after the host
//! answered `connect` with `hello-ok`, and every state change goes through
//! [`ConnectionState::next`], so the watch never claims more than the socket has proved.
//!
//! **Architecture Invariant:** a refused operator token parks the client in
//! [`ConnectionState::Unauthorized`] until the embedder asks again; it never retries a
//! credential the host has said is wrong.
//!
//! **Architecture Invariant:** the operator token is never logged and never part of an error,
//! a state or a `Debug` string.

#![warn(missing_docs)]

mod client;
mod connection;
pub mod error;
pub mod state;

pub use client::{Client, ClientConfig, OperatorToken};
pub use error::ClientError;
pub use perch_protocol::backoff::Backoff;
pub use state::{ConnEvent, ConnectionState};
