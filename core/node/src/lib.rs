//! Perch's node runtime, the client side of the gateway protocol: it keeps the device's
//! Ed25519 identity and device tokens, connects to a host over one WebSocket, answers the
//! connect challenge with a signed `connect`, waits on the same socket while the user approves
//! a pairing request, serves `node.invoke.request` events through pluggable capability
//! handlers, and reconnects with jittered exponential backoff.
//!
//! It runs inside `perch node run`, the desktop app in node mode and (through `perch-ffi`)
//! the iOS and Android apps. The embedder builds a [`NodeConfig`] and a [`Capabilities`]
//! registry, creates a [`Node`], watches [`NodeState`] and calls [`Node::run`].
//!
//! **Architecture Invariant:** depends only on `perch-protocol` plus networking and runtime
//! crates (tokio, tokio-tungstenite); never on the gateway, kernel, store or host.
//!
//! **Architecture Invariant:** builds for iOS and Android: everything desktop-only (notify-rust,
//! sysinfo, battery) lives in [`desktop`] behind the `desktop` feature, and the crate compiles
//! and tests without it.
//!
//! **Architecture Invariant:** capability handlers are trait objects ([`CapabilityHandler`]);
//! the runtime knows no platform and no command beyond dispatching by name.
//!
//! **Architecture Invariant:** tokens and private keys are never logged, and the identity file
//! is never regenerated behind the user's back (a new key is a new, unpaired device).
//!
//! **Architecture Invariant:** a pinned host key is changed only by the user, never by the
//! network: mDNS answers are hints, and a host that cannot prove the pinned key (or the key a
//! setup code names) gets nothing secret from this node.

#![warn(missing_docs)]

pub mod advert;
pub mod capability;
#[cfg(feature = "desktop")]
pub mod desktop;
#[cfg(feature = "mdns")]
pub mod discovery;
pub mod host_calls;
pub mod identity_store;
pub mod lifecycle;
pub mod location_watch;
pub mod runtime;
pub mod setup;
pub mod shapes;

pub use capability::{
    Capabilities, CapabilityHandler, CommandError, DuplicateCommand, parse_params,
};
pub use host_calls::{HostCallError, HostCalls};
pub use identity_store::{
    FileVault, HostPins, IdentityStore, PinnedHost, SecretVault, StoreError, TokenStore,
};
pub use lifecycle::{AppPhase, Lifecycle};
pub use perch_protocol::backoff::{self, Backoff};
pub use runtime::{
    ActivitySource, BootstrapToken, ExpectedHost, Node, NodeConfig, NodeError, NodeState,
    normalize_gateway_url, run,
};
