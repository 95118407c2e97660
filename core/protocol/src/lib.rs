//! Perch's wire protocol: the JSON text frames that operators, nodes and the host exchange
//! over one WebSocket, the connect handshake, Ed25519 device identity, node command payloads
//! and structured errors. The shapes follow OpenClaw's gateway protocol so that its nodes can
//! talk to a Perch host; `docs/protocol.md` records where and why Perch differs.
//!
//! **Architecture Invariant:** this crate does no I/O and depends on no runtime (no tokio, no
//! sockets, no files); it is plain data plus pure functions, so every other crate, including
//! the mobile FFI, can depend on it.
//!
//! **Architecture Invariant:** depends on no other Perch crate.

pub mod access;
pub mod backoff;
pub mod canvas;
pub mod chat;
pub mod error;
pub mod events;
pub mod frame;
pub mod geo;
pub mod handshake;
pub mod identity;
pub mod location;
pub mod methods;
pub mod node_commands;
pub mod node_reports;
pub mod notify_replies;
pub mod presence;
pub mod scopes;
pub mod sessions;
pub mod settings;
pub mod setup_code;
pub mod verification;

pub use error::{ErrorCode, ErrorShape, Reason};
pub use frame::{Frame, FrameError};
pub use identity::{DeviceId, DeviceIdentity, IdentityError};
pub use setup_code::{SetupCode, SetupCodeError};

/// The protocol version this build speaks natively.
pub const PROTOCOL_VERSION: u32 = 4;
/// The oldest protocol version an operator client may speak.
pub const MIN_OPERATOR_PROTOCOL: u32 = 4;
/// The oldest protocol version a node may speak (one version of grace, as OpenClaw allows).
pub const MIN_NODE_PROTOCOL: u32 = 3;
/// Frames larger than this are refused before the handshake has completed.
pub const PRE_HANDSHAKE_MAX_FRAME: usize = 64 * 1024;
/// Default `maxPayload` after the handshake: generous for canvas snapshots, bounded for safety.
pub const DEFAULT_MAX_PAYLOAD: usize = 25 * 1024 * 1024;
/// Default keepalive interval; a peer silent for two intervals is closed.
pub const DEFAULT_TICK_INTERVAL_MS: u64 = 15_000;
/// Default port, shared with OpenClaw so nodes configured by address find us.
pub const DEFAULT_PORT: u16 = 18789;
/// Default per-call deadline for `node.invoke`.
pub const DEFAULT_INVOKE_TIMEOUT_MS: u64 = 30_000;
/// Largest deadline a caller may ask for on `node.invoke`.
pub const MAX_INVOKE_TIMEOUT_MS: u64 = 600_000;
/// How far a device's `signedAt` may be from the host's clock.
pub const SIGNATURE_SKEW_MS: i64 = 2 * 60 * 1000;

/// WebSocket close codes the host uses, so clients can tell a policy close from a crash.
pub mod close_code {
    /// Normal closure (shutdown, client said goodbye).
    pub const NORMAL: u16 = 1000;
    /// Protocol version mismatch.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Policy: auth failure, pairing rejected, device revoked, frame before connect.
    pub const POLICY: u16 = 1008;
    /// A frame was larger than the negotiated limit.
    pub const TOO_BIG: u16 = 1009;
    /// The host is going away (graceful shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// The peer was silent for two tick intervals.
    pub const TICK_TIMEOUT: u16 = 4000;
    /// The client did not complete `connect` within the handshake deadline.
    pub const HANDSHAKE_TIMEOUT: u16 = 4001;
}
