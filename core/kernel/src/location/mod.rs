//! Location-aware prompts: with the user's consent, per device, the prompt learns where the
//! user is (a named place, or the nearest city), their time zone and local time, and which
//! device they are at, without the location leaving the user's machines except as the
//! precision they chose.
//!
//! - [`gazetteer`]: offline nearest city and time zone, and local time;
//! - [`places`]: the user's named places and which one a fix is in;
//! - [`context`]: the pure function that turns a fix into the fenced, untrusted
//!   device-context block and the audit entry for the read;
//! - [`prompts`]: the read for one prompt (consent, fetch, block, audit) over a
//!   [`LocationLedger`] the host implements, and the same for one call of a node tool whose
//!   result carries a position ([`LocationPrompts::read_for_tool`]: refused when off, reduced
//!   at city, audited always).
//!
//! **Architecture Invariant:** off unless the user opted in for the device; coordinates reach
//! a prompt only at [`Precision::Exact`] and never inside a named place; every read for a
//! prompt is audited, and a read whose audit fails is not used.

pub mod context;
pub mod gazetteer;
pub mod prompts;

pub use context::{
    AuditEntry, AuditOutcome, ChangeDescription, ContextInput, DeviceFix, FENCE_CLOSE, FENCE_NOTE,
    FENCE_OPEN, FixError, LocationPolicy, LocationRead, Precision, ReadPath, build_context,
    describe_change, reduce_for_tool,
};
pub use gazetteer::{Gazetteer, Place, local_time};
pub use perch_protocol::geo::{NamedPlace, haversine_m, place_containing};
pub use prompts::{
    Clock, LedgerError, LocationLedger, LocationPrompts, MemoryLedger, PromptTarget, ToolRead,
};
