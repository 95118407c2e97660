//! Perch's node runtime for phones: [`perch_node`] exported through uniffi, so the iOS and
//! Android apps (and Python, in tests) run the same Rust node as `perch node run` and a
//! protocol or security fix lands on every platform at once.
//!
//! It owns the foreign-facing surface: [`check_discovered_host`] for services the platform's
//! Bonjour browser finds; [`PerchNode`] (configure, pair by setup code, by approval or with a
//! discovered host, start, stop, status, forget a host, read the access record, reply to a
//! notification, report location changes); the events a [`NodeListener`] receives; the
//! platform traits ([`LocationProvider`], [`DeviceInfoProvider`], [`NotificationPresenter`],
//! [`CanvasPresenter`], [`SecretStore`]) and their adapters into perch-node
//! [`perch_node::CapabilityHandler`]s; and the one tokio runtime every call runs on.
//! Generate bindings in library mode with this crate's `uniffi-bindgen` binary (`cli`
//! feature); see `docs/mobile.md`.
//!
//! **Architecture Invariant:** depends on `perch-node` and `perch-protocol` only (plus uniffi,
//! tokio, serde_json, thiserror, tracing): never the kernel, gateway, store or host, so the
//! phone library stays small.
//!
//! **Architecture Invariant:** no platform code: everything the phone knows (location,
//! notifications, device facts) comes in through foreign traits, and the answers keep the
//! JSON shapes of `perch_protocol::node_commands`, shaped by `perch_node::shapes` like the
//! desktop handlers.
//!
//! **Architecture Invariant:** one tokio runtime for the whole process, owned here; exported
//! calls never need the caller's runtime, so any platform thread may call them.
//!
//! **Architecture Invariant:** a foreign call never blocks the runtime or an invoke past its
//! deadline: providers run on blocking threads under a timeout, and listeners are called off
//! the runtime's workers, in order.
//!
//! **Architecture Invariant:** nothing from the foreign side or the network can panic the
//! library: bad input is a typed [`PerchError`] or a command error.

#![warn(missing_docs)]

uniffi::setup_scaffolding!();

#[cfg(feature = "bench")]
mod bench;
mod canvas;
mod discovery;
mod error;
mod events;
mod location_changes;
mod node;
mod notifications;
mod providers;
mod rt;
mod secrets;

#[cfg(feature = "bench")]
pub use bench::bench_location_callbacks;
pub use canvas::CanvasPresenter;
pub use discovery::{BrowsedService, DiscoveredHost, check_discovered_host, perch_service_type};
pub use error::{PerchError, ProviderError};
pub use events::{NodeEvent, NodeListener};
pub use location_changes::{LocationChangeReason, LocationReport, WatchedPlace};
pub use node::{
    AccessEntry, AccessOutcome, AppState, NodePhase, NodeSettings, NodeStatus, PairedHost,
    PerchNode,
};
pub use notifications::{
    Notification, NotificationAction, NotificationPresenter, NotificationReply,
};
pub use providers::{
    BatteryInfo, BatteryState, DeviceInfo, DeviceInfoProvider, DeviceStatus, Location,
    LocationAccess, LocationAccuracy, LocationPermission, LocationProvider, LocationRequest,
    LocationSource, NetworkInfo, NetworkKind, StorageInfo,
};
pub use secrets::SecretStore;
