//! The Perch kernel: turns a user's message into model calls and tool calls, and keeps the
//! transcript. It owns sessions, the agent loop, model providers, the canonical event pipeline,
//! the capability catalog with arbitration, and prompt context (location-aware prompts).
//!
//! **Architecture Invariant:** the kernel never depends on the extension host, the gateway, the
//! node runtime or the CLI. It defines the traits it needs (tool executors, stores, providers)
//! and others implement them; no extension or transport shape leaks in.
//!
//! **Architecture Invariant:** provider adapters are the only code that knows a provider's wire
//! format; everything else speaks [`model`] types.

pub mod agent;
pub mod catalog;
pub mod credential_origins;
pub mod credentials;
pub mod location;
pub mod model;
pub mod pipeline;
pub mod provider;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod untrusted;
pub mod vault;
