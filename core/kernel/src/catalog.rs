//! The capability catalog: every tool the model may call is an entry here (built-in tools,
//! node commands the gateway registers for each connected node, later extension tools), and
//! [`Catalog::compile`] turns the entries into the tool list the model sees plus a route table.
//!
//! # Arbitration
//!
//! Entries that provide the same capability (for example `location.get` on three phones) are
//! arbitrated per capability ([`Arbitration`], set with [`Catalog::set_arbitration`]):
//! - **ranked** (the default): one tool; a call goes to the provider the model named in the
//!   optional `node` argument, or else to the best-ranked provider *at call time*: higher
//!   [`RankHints::priority`], then the active device, then the freshest data, then the most
//!   precise, then the smallest entry id;
//! - **exclusive slot**: one provider owns the capability (the configured owner, or else the
//!   best by priority, source and id); the others are left out and reported;
//! - **parallel**: every provider is its own tool, named `<tool>__<node or extension>`.
//!
//! # Names
//!
//! Model-visible names match `^[a-zA-Z0-9_-]{1,64}$`: other characters (dots, spaces) become
//! `_`, and each compiled tool keeps its original name ([`CompiledTools::original_name`]). Two
//! tools that want the same name are settled by source (built-in, then node, then extension),
//! then by entry id; the loser is renamed `<name>__<source tag>` (or dropped, per
//! [`CollisionPolicy`]) and the collision is reported in [`CatalogReport`]. The result depends
//! only on the set of entries, never on the order they were registered in.
//!
//! **Architecture Invariant:** the catalog knows entries and executors, not nodes or
//! extensions as such: the gateway and the extension host adapt theirs into [`CatalogEntry`]s.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::model::ToolSpec;

#[cfg(test)]
mod tests;

/// Longest tool name providers accept.
pub const MAX_TOOL_NAME_LEN: usize = 64;

/// The argument a ranked tool uses to name a provider; reserved: it replaces any `node`
/// property of the entry's schema and is removed before the executor sees the arguments.
pub const NODE_ARG: &str = "node";

/// Why a tool call did not produce a result; shown to the model as the tool's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// No tool has this name in the compiled list.
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    /// The arguments are malformed or name a provider that does not exist.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The provider (or every provider) is gone, for example a node went offline.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The provider did not answer in time.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// The provider answered with an error; its stable code (for example
    /// `COMMAND_NOT_ALLOWED`) travels beside the message so the model reads it exactly once.
    #[error("{code}: {message}")]
    Failed {
        /// The provider's error code.
        code: String,
        /// What went wrong, without the code.
        message: String,
    },
}

impl ToolError {
    /// A provider's failure with its own code.
    pub fn failed(code: impl Into<String>, message: impl Into<String>) -> Self {
        ToolError::Failed {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl From<ToolError> for crate::agent::ToolFailure {
    fn from(e: ToolError) -> Self {
        let (code, message) = match e {
            ToolError::UnknownTool(t) => {
                ("UNKNOWN_TOOL".to_string(), format!("unknown tool `{t}`"))
            }
            ToolError::InvalidArguments(m) => ("INVALID_ARGUMENTS".to_string(), m),
            ToolError::Unavailable(m) => ("UNAVAILABLE".to_string(), m),
            ToolError::Timeout(ms) => ("TIMEOUT".to_string(), format!("no answer within {ms} ms")),
            ToolError::Failed { code, message } => (code, message),
        };
        crate::agent::ToolFailure::new(code, message)
    }
}

/// Who a call is for and where it was routed; handed to the executor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolContext {
    /// The session of the turn.
    pub session_key: String,
    /// The turn.
    pub turn_id: String,
    /// The model's call id.
    pub call_id: String,
    /// The tool name the model used (filled in by [`CompiledTools::call`]).
    pub tool: String,
    /// The capability (filled in by [`CompiledTools::call`]).
    pub capability: String,
    /// The entry the call was routed to (filled in by [`CompiledTools::call`]).
    pub entry_id: String,
}

impl ToolContext {
    /// A context for one call; the routing fields are filled in when the call is routed.
    pub fn new(
        session_key: impl Into<String>,
        turn_id: impl Into<String>,
        call_id: impl Into<String>,
    ) -> Self {
        ToolContext {
            session_key: session_key.into(),
            turn_id: turn_id.into(),
            call_id: call_id.into(),
            ..ToolContext::default()
        }
    }
}

/// Runs a tool; the kernel's only view of whatever provides it (built-in code, a node invoke,
/// an extension runtime).
pub trait ToolExecutor: Send + Sync + 'static {
    /// Runs one call. `args` is a JSON object, without the catalog's own `node` argument.
    fn execute(&self, args: Value, ctx: ToolContext) -> BoxFuture<'_, Result<Value, ToolError>>;
}

/// Where an entry comes from; decides name precedence and parallel tool names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// Part of the host.
    Builtin,
    /// A command of a connected node.
    Node {
        /// Device id.
        node_id: String,
        /// Name the user gave the device.
        display_name: String,
    },
    /// Contributed by an extension.
    Extension {
        /// Extension id.
        id: String,
    },
}

impl Source {
    /// Name precedence: built-in first, then nodes, then extensions.
    pub const fn precedence(&self) -> u8 {
        match self {
            Source::Builtin => 0,
            Source::Node { .. } => 1,
            Source::Extension { .. } => 2,
        }
    }

    /// Whether two sources are the same provider (display names aside).
    pub fn same_provider(&self, other: &Source) -> bool {
        match (self, other) {
            (Source::Builtin, Source::Builtin) => true,
            (Source::Node { node_id: a, .. }, Source::Node { node_id: b, .. }) => a == b,
            (Source::Extension { id: a }, Source::Extension { id: b }) => a == b,
            _ => false,
        }
    }

    /// Short tag that tells providers apart in renamed tool names.
    fn tag(&self) -> String {
        match self {
            Source::Builtin => "builtin".to_owned(),
            Source::Node { node_id, .. } => {
                sanitize_label(&node_id.chars().take(8).collect::<String>())
            }
            Source::Extension { id } => sanitize_label(id),
        }
    }

    /// Suffix of parallel tool names: none for built-ins, the device's name for nodes.
    fn parallel_suffix(&self) -> Option<String> {
        match self {
            Source::Builtin => None,
            Source::Node {
                node_id,
                display_name,
            } => Some(sanitize_label(if display_name.trim().is_empty() {
                node_id
            } else {
                display_name
            })),
            Source::Extension { id } => Some(sanitize_label(id)),
        }
    }

    /// What the model may pass as `node` for this provider, before de-duplication.
    fn selector_label(&self) -> String {
        match self {
            Source::Builtin => "host".to_owned(),
            Source::Node {
                node_id,
                display_name,
            } => {
                if display_name.trim().is_empty() {
                    node_id.clone()
                } else {
                    display_name.trim().to_owned()
                }
            }
            Source::Extension { id } => id.clone(),
        }
    }
}

/// Signals for picking among providers of a ranked capability; updated as they change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RankHints {
    /// The user is at this device right now (presence).
    pub active: bool,
    /// Age of the provider's latest data (for location: the fix), in ms; lower is better,
    /// unknown ranks last.
    pub freshness_ms: Option<u64>,
    /// Precision of that data in metres; lower is better, unknown ranks last.
    pub precision_m: Option<f64>,
    /// Operator preference; higher wins before any other signal.
    pub priority: i32,
}

/// One tool provided by one source.
#[derive(Clone)]
pub struct CatalogEntry {
    /// Unique id, for example `node:<device id>:location.get`.
    pub id: String,
    /// Tool name before sanitizing, for example `location.get`.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of the arguments (an object).
    pub parameters: Value,
    /// The capability it provides, for example `location.get`; arbitration groups by it.
    pub capability: String,
    /// Who provides it.
    pub source: Source,
    /// Runs it.
    pub executor: Arc<dyn ToolExecutor>,
    /// Initial ranking signals; later changes go through [`Catalog::set_hints`].
    pub hints: RankHints,
}

impl CatalogEntry {
    /// An entry whose tool name is its capability, with an empty object schema.
    pub fn new(
        id: impl Into<String>,
        capability: impl Into<String>,
        source: Source,
        executor: Arc<dyn ToolExecutor>,
    ) -> Self {
        let capability = capability.into();
        CatalogEntry {
            id: id.into(),
            name: capability.clone(),
            description: String::new(),
            parameters: json!({"type": "object", "properties": {}}),
            capability,
            source,
            executor,
            hints: RankHints::default(),
        }
    }

    /// Sets the tool name (when it differs from the capability).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Sets the argument schema.
    pub fn with_parameters(mut self, parameters: Value) -> Self {
        self.parameters = parameters;
        self
    }

    /// Sets the initial ranking signals.
    pub fn with_hints(mut self, hints: RankHints) -> Self {
        self.hints = hints;
        self
    }
}

impl fmt::Debug for CatalogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CatalogEntry")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("capability", &self.capability)
            .field("source", &self.source)
            .field("hints", &self.hints)
            .finish_non_exhaustive()
    }
}

/// How providers of one capability share it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Arbitration {
    /// One tool; calls go to the named or best-ranked provider at call time.
    #[default]
    Ranked,
    /// One provider owns the capability; the others are ignored and reported.
    ExclusiveSlot {
        /// The owner's entry id; when set and absent, the capability is not exposed at all
        /// (no silent fallback) and the report says so.
        owner: Option<String>,
    },
    /// Every provider is a tool of its own.
    Parallel,
}

/// What happens to the loser of a name collision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CollisionPolicy {
    /// Renamed `<name>__<source tag>`.
    #[default]
    Rename,
    /// Left out.
    Drop,
}

/// Catalog-wide settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogConfig {
    /// What happens to name collision losers.
    pub on_collision: CollisionPolicy,
}

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The entry is malformed.
    #[error("invalid catalog entry `{id}`: {reason}")]
    Invalid {
        /// The entry id (may be empty).
        id: String,
        /// What is wrong.
        reason: String,
    },
}

/// How a name collision was settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "resolution", rename_all = "snake_case")]
pub enum CollisionResolution {
    /// The loser got another name.
    Renamed {
        /// Its new name.
        to: String,
    },
    /// The loser was left out.
    Dropped,
}

/// Two tools wanted the same model-visible name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collision {
    /// The contested (sanitized) name.
    pub name: String,
    /// Entry id of the tool that kept it.
    pub winner: String,
    /// Entry id of the tool that lost it.
    pub loser: String,
    /// What happened to the loser.
    pub resolution: CollisionResolution,
}

/// An exclusive slot with more than one provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotConflict {
    /// The capability.
    pub capability: String,
    /// The entry that owns it.
    pub owner: String,
    /// The entries left out.
    pub ignored: Vec<String>,
}

/// An exclusive slot whose configured owner is not in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingOwner {
    /// The capability, not exposed.
    pub capability: String,
    /// The configured owner.
    pub owner: String,
    /// The entries that could have provided it.
    pub ignored: Vec<String>,
}

/// Everything compilation settled that an operator may want to know.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogReport {
    /// Name collisions, sorted by name then loser.
    pub collisions: Vec<Collision>,
    /// Exclusive slots with several providers, sorted by capability.
    pub slot_conflicts: Vec<SlotConflict>,
    /// Exclusive slots whose owner is missing, sorted by capability.
    pub missing_owners: Vec<MissingOwner>,
}

impl CatalogReport {
    /// Whether nothing needed settling.
    pub fn is_clean(&self) -> bool {
        self.collisions.is_empty()
            && self.slot_conflicts.is_empty()
            && self.missing_owners.is_empty()
    }
}

/// How a compiled tool picks its provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    /// Always the one entry (exclusive owner, parallel provider).
    Direct,
    /// The named or best-ranked of several entries, chosen at call time.
    Ranked,
}

/// A compiled tool's route and reverse mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRoute {
    /// The name the model sees.
    pub tool: String,
    /// The entry's name before sanitizing and renaming.
    pub original_name: String,
    /// The capability.
    pub capability: String,
    /// How it routes.
    pub kind: RouteKind,
    /// Entry ids that may serve it, by id.
    pub providers: Vec<String>,
    /// `node` argument values (and node ids) to entry ids; empty for direct routes.
    pub selectors: BTreeMap<String, String>,
}

/// A call after routing: the entry to run and the arguments to give it.
#[derive(Debug, Clone)]
pub struct RoutedCall {
    /// The entry chosen.
    pub entry: Arc<CatalogEntry>,
    /// The arguments, without `node`.
    pub args: Value,
}

impl RoutedCall {
    /// Runs the call on the entry's executor, filling in the context's routing fields; the
    /// future owns what it needs, so it can be spawned or returned from a `'static` API.
    pub fn run(
        self,
        tool: &str,
        mut ctx: ToolContext,
    ) -> BoxFuture<'static, Result<Value, ToolError>> {
        tool.clone_into(&mut ctx.tool);
        ctx.capability.clone_from(&self.entry.capability);
        ctx.entry_id.clone_from(&self.entry.id);
        Box::pin(async move { self.entry.executor.execute(self.args, ctx).await })
    }
}

/// One stored entry with its current hints.
struct Record {
    entry: Arc<CatalogEntry>,
    hints: RankHints,
}

#[derive(Default)]
struct Inner {
    entries: BTreeMap<String, Record>,
    modes: HashMap<String, Arbitration>,
    generation: u64,
}

struct Shared {
    config: CatalogConfig,
    inner: RwLock<Inner>,
    reported_generation: AtomicU64,
}

/// The catalog; cheap to clone (shared), safe to change while turns run.
#[derive(Clone)]
pub struct Catalog {
    shared: Arc<Shared>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::new(CatalogConfig::default())
    }
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.read();
        f.debug_struct("Catalog")
            .field("entries", &inner.entries.len())
            .field("generation", &inner.generation)
            .finish()
    }
}

impl Catalog {
    /// An empty catalog.
    pub fn new(config: CatalogConfig) -> Self {
        Catalog {
            shared: Arc::new(Shared {
                config,
                inner: RwLock::new(Inner::default()),
                reported_generation: AtomicU64::new(u64::MAX),
            }),
        }
    }

    /// Adds an entry, replacing one with the same id (a reconnecting node re-announces its
    /// commands); returns whether one was replaced.
    pub fn register(&self, entry: CatalogEntry) -> Result<bool, CatalogError> {
        let invalid = |reason: &str| CatalogError::Invalid {
            id: entry.id.clone(),
            reason: reason.to_owned(),
        };
        if entry.id.is_empty() {
            return Err(invalid("empty id"));
        }
        if entry.name.trim().is_empty() {
            return Err(invalid("empty tool name"));
        }
        if entry.capability.trim().is_empty() {
            return Err(invalid("empty capability"));
        }
        if !entry.parameters.is_object() {
            return Err(invalid("parameters must be a JSON Schema object"));
        }
        let hints = entry.hints;
        let id = entry.id.clone();
        let mut inner = self.write();
        let replaced = inner
            .entries
            .insert(
                id.clone(),
                Record {
                    entry: Arc::new(entry),
                    hints,
                },
            )
            .is_some();
        inner.generation += 1;
        tracing::debug!(entry = %id, replaced, "catalog entry registered");
        Ok(replaced)
    }

    /// Removes one entry; returns whether it was there.
    pub fn unregister(&self, id: &str) -> bool {
        let mut inner = self.write();
        let removed = inner.entries.remove(id).is_some();
        if removed {
            inner.generation += 1;
        }
        removed
    }

    /// Removes every entry of a provider (a node that went offline, an unloaded extension);
    /// returns how many.
    pub fn unregister_source(&self, source: &Source) -> usize {
        let mut inner = self.write();
        let before = inner.entries.len();
        inner
            .entries
            .retain(|_, r| !r.entry.source.same_provider(source));
        let removed = before - inner.entries.len();
        if removed > 0 {
            inner.generation += 1;
            tracing::debug!(?source, removed, "catalog entries of a source removed");
        }
        removed
    }

    /// Removes every entry of a node, by device id.
    pub fn unregister_node(&self, node_id: &str) -> usize {
        self.unregister_source(&Source::Node {
            node_id: node_id.to_owned(),
            display_name: String::new(),
        })
    }

    /// Sets how a capability is arbitrated.
    pub fn set_arbitration(&self, capability: impl Into<String>, mode: Arbitration) {
        let mut inner = self.write();
        inner.modes.insert(capability.into(), mode);
        inner.generation += 1;
    }

    /// How a capability is arbitrated.
    pub fn arbitration(&self, capability: &str) -> Arbitration {
        self.read()
            .modes
            .get(capability)
            .cloned()
            .unwrap_or_default()
    }

    /// Updates an entry's ranking signals; returns whether the entry exists.
    pub fn set_hints(&self, id: &str, hints: RankHints) -> bool {
        let mut inner = self.write();
        let Some(record) = inner.entries.get_mut(id) else {
            return false;
        };
        let priority_changed = record.hints.priority != hints.priority;
        record.hints = hints;
        if priority_changed {
            // Priority can change an exclusive slot's owner, hence the compiled list.
            inner.generation += 1;
        }
        true
    }

    /// Marks the node the user is at as active and every other node as not.
    pub fn set_active_node(&self, node_id: Option<&str>) {
        let mut inner = self.write();
        for record in inner.entries.values_mut() {
            if let Source::Node { node_id: id, .. } = &record.entry.source {
                record.hints.active = Some(id.as_str()) == node_id;
            }
        }
    }

    /// An entry's current ranking signals.
    pub fn hints(&self, id: &str) -> Option<RankHints> {
        self.read().entries.get(id).map(|r| r.hints)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.read().entries.is_empty()
    }

    /// Entry ids, sorted.
    pub fn entry_ids(&self) -> Vec<String> {
        self.read().entries.keys().cloned().collect()
    }

    /// Changes with every change that can alter [`Catalog::compile`]'s output, so callers can
    /// cache a compiled list.
    pub fn generation(&self) -> u64 {
        self.read().generation
    }

    /// Compiles the tool list the model sees, its routes, and a report of what was settled.
    pub fn compile(&self) -> CompiledTools {
        let inner = self.read();
        let mut report = CatalogReport::default();
        let mut candidates = Vec::new();

        let mut groups: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
        for record in inner.entries.values() {
            groups
                .entry(record.entry.capability.as_str())
                .or_default()
                .push(record);
        }

        for (capability, records) in groups {
            let mode = inner.modes.get(capability).cloned().unwrap_or_default();
            match mode {
                Arbitration::Parallel => {
                    for r in records {
                        candidates.push(direct_candidate(r, true));
                    }
                }
                Arbitration::Ranked => candidates.extend(ranked_candidate(capability, &records)),
                Arbitration::ExclusiveSlot { owner } => {
                    let chosen = match &owner {
                        Some(owner_id) => records.iter().find(|r| &r.entry.id == owner_id).copied(),
                        None => records.iter().copied().min_by(|a, b| {
                            b.hints
                                .priority
                                .cmp(&a.hints.priority)
                                .then(
                                    a.entry
                                        .source
                                        .precedence()
                                        .cmp(&b.entry.source.precedence()),
                                )
                                .then(a.entry.id.cmp(&b.entry.id))
                        }),
                    };
                    let Some(chosen) = chosen else {
                        report.missing_owners.push(MissingOwner {
                            capability: capability.to_owned(),
                            owner: owner.unwrap_or_default(),
                            ignored: records.iter().map(|r| r.entry.id.clone()).collect(),
                        });
                        continue;
                    };
                    let ignored: Vec<String> = records
                        .iter()
                        .filter(|r| r.entry.id != chosen.entry.id)
                        .map(|r| r.entry.id.clone())
                        .collect();
                    if !ignored.is_empty() {
                        report.slot_conflicts.push(SlotConflict {
                            capability: capability.to_owned(),
                            owner: chosen.entry.id.clone(),
                            ignored,
                        });
                    }
                    candidates.push(direct_candidate(chosen, false));
                }
            }
        }

        let (tools, routes) =
            settle_names(candidates, self.shared.config.on_collision, &mut report);
        let generation = inner.generation;
        drop(inner);

        if !report.is_clean()
            && self
                .shared
                .reported_generation
                .swap(generation, Ordering::Relaxed)
                != generation
        {
            tracing::warn!(
                collisions = report.collisions.len(),
                slot_conflicts = report.slot_conflicts.len(),
                missing_owners = report.missing_owners.len(),
                report = %serde_json::to_string(&report).unwrap_or_default(),
                "capability catalog compiled with conflicts"
            );
        }

        CompiledTools {
            tools,
            routes,
            report,
            generation,
            shared: self.shared.clone(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.shared
            .inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.shared
            .inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The tool list for one model request, and how to route the calls made from it.
#[derive(Clone)]
pub struct CompiledTools {
    /// Tools for the model, sorted by name.
    pub tools: Vec<ToolSpec>,
    /// What compilation settled.
    pub report: CatalogReport,
    /// The catalog generation this was compiled from.
    pub generation: u64,
    routes: HashMap<String, ToolRoute>,
    shared: Arc<Shared>,
}

impl fmt::Debug for CompiledTools {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledTools")
            .field("tools", &self.tools.len())
            .field("report", &self.report)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl CompiledTools {
    /// The route of a model-visible tool name.
    pub fn lookup(&self, tool: &str) -> Option<&ToolRoute> {
        self.routes.get(tool)
    }

    /// The original (unsanitized) name behind a model-visible tool name.
    pub fn original_name(&self, tool: &str) -> Option<&str> {
        self.routes.get(tool).map(|r| r.original_name.as_str())
    }

    /// Model-visible tool names that serve a capability, sorted.
    pub fn tools_for_capability(&self, capability: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .routes
            .values()
            .filter(|r| r.capability == capability)
            .map(|r| r.tool.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// The providers of a tool that are still registered, best first, with current hints.
    pub fn ranked_providers(&self, tool: &str) -> Vec<String> {
        let Some(route) = self.routes.get(tool) else {
            return Vec::new();
        };
        let inner = self
            .shared
            .inner
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut present: Vec<&Record> = route
            .providers
            .iter()
            .filter_map(|id| inner.entries.get(id))
            .collect();
        present.sort_by(|a, b| rank_order(a, b));
        present.iter().map(|r| r.entry.id.clone()).collect()
    }

    /// Picks the entry for a call and strips the catalog's own arguments; uses the catalog's
    /// current state, so a provider that left since compilation is skipped or reported.
    pub fn route(&self, tool: &str, mut args: Value) -> Result<RoutedCall, ToolError> {
        let route = self
            .routes
            .get(tool)
            .ok_or_else(|| ToolError::UnknownTool(tool.to_owned()))?;
        if args.is_null() {
            args = Value::Object(Map::new());
        }
        let inner = self
            .shared
            .inner
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        match route.kind {
            RouteKind::Direct => {
                let entry_id = route
                    .providers
                    .first()
                    .map(String::as_str)
                    .unwrap_or_default();
                let record = inner.entries.get(entry_id).ok_or_else(|| {
                    ToolError::Unavailable(format!(
                        "the provider of `{tool}` is no longer connected"
                    ))
                })?;
                Ok(RoutedCall {
                    entry: record.entry.clone(),
                    args,
                })
            }
            RouteKind::Ranked => {
                let object = args.as_object_mut().ok_or_else(|| {
                    ToolError::InvalidArguments(format!("`{tool}` takes a JSON object"))
                })?;
                let selector = match object.remove(NODE_ARG) {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) if s.trim().is_empty() => None,
                    Some(Value::String(s)) => Some(s),
                    Some(_) => {
                        return Err(ToolError::InvalidArguments(format!(
                            "`{NODE_ARG}` must be a string"
                        )));
                    }
                };
                let record = match selector {
                    Some(selector) => {
                        let entry_id =
                            find_selector(&route.selectors, &selector).ok_or_else(|| {
                                let names: Vec<&str> =
                                    route.selectors.keys().map(String::as_str).collect();
                                ToolError::InvalidArguments(format!(
                                    "no provider `{selector}` for `{tool}`; choose one of: {}",
                                    names.join(", ")
                                ))
                            })?;
                        inner.entries.get(entry_id).ok_or_else(|| {
                            ToolError::Unavailable(format!("`{selector}` is no longer connected"))
                        })?
                    }
                    None => route
                        .providers
                        .iter()
                        .filter_map(|id| inner.entries.get(id))
                        .min_by(|a, b| rank_order(a, b))
                        .ok_or_else(|| {
                            ToolError::Unavailable(format!(
                                "no provider of `{}` is connected",
                                route.capability
                            ))
                        })?,
                };
                tracing::debug!(tool, entry = %record.entry.id, "ranked tool call routed");
                Ok(RoutedCall {
                    entry: record.entry.clone(),
                    args,
                })
            }
        }
    }

    /// Routes a call and runs it on the chosen entry's executor.
    pub async fn call(
        &self,
        tool: &str,
        args: Value,
        ctx: ToolContext,
    ) -> Result<Value, ToolError> {
        self.route(tool, args)?.run(tool, ctx).await
    }
}

/// Maps a name to one providers accept: every character outside `[a-zA-Z0-9_-]` becomes `_`,
/// cut to 64 characters; an empty name becomes `tool`.
pub fn sanitize_tool_name(raw: &str) -> String {
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_TOOL_NAME_LEN)
        .collect();
    if name.is_empty() {
        name.push_str("tool");
    }
    name
}

/// Whether a name matches `^[a-zA-Z0-9_-]{1,64}$`.
pub fn is_valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOOL_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A sanitized, lowercased label for name suffixes, at most 24 characters.
fn sanitize_label(raw: &str) -> String {
    let label: String = sanitize_tool_name(raw.trim())
        .to_ascii_lowercase()
        .chars()
        .take(24)
        .collect();
    label
}

/// `base` + `__` + `suffix`, with `base` shortened so the whole fits in 64 characters.
fn join_fit(base: &str, suffix: &str) -> String {
    let keep = MAX_TOOL_NAME_LEN.saturating_sub(suffix.len() + 2);
    let base: String = base.chars().take(keep).collect();
    format!("{base}__{suffix}")
}

/// Best first: priority, active, freshness, precision, then id.
fn rank_order(a: &Record, b: &Record) -> std::cmp::Ordering {
    let (x, y) = (&a.hints, &b.hints);
    y.priority
        .cmp(&x.priority)
        .then(y.active.cmp(&x.active))
        .then(cmp_known_first(x.freshness_ms, y.freshness_ms, |p, q| {
            p.cmp(&q)
        }))
        .then(cmp_known_first(
            x.precision_m.filter(|v| !v.is_nan()),
            y.precision_m.filter(|v| !v.is_nan()),
            |p, q| p.total_cmp(&q),
        ))
        .then(a.entry.id.cmp(&b.entry.id))
}

/// Orders known values ascending and unknown ones last.
fn cmp_known_first<T>(
    a: Option<T>,
    b: Option<T>,
    cmp: impl FnOnce(T, T) -> std::cmp::Ordering,
) -> std::cmp::Ordering {
    match (a, b) {
        (Some(a), Some(b)) => cmp(a, b),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

/// A selector as given, else case-insensitively.
fn find_selector<'a>(selectors: &'a BTreeMap<String, String>, wanted: &str) -> Option<&'a str> {
    selectors
        .get(wanted)
        .or_else(|| {
            let wanted = wanted.trim();
            selectors
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(wanted))
                .map(|(_, v)| v)
        })
        .map(String::as_str)
}

/// A tool before names are settled.
struct Candidate {
    desired: String,
    precedence: (u8, String),
    tag: String,
    spec: ToolSpec,
    route: ToolRoute,
}

fn direct_candidate(record: &Record, parallel: bool) -> Candidate {
    let e = &record.entry;
    let base = sanitize_tool_name(&e.name);
    let (desired, description) = match e.source.parallel_suffix().filter(|_| parallel) {
        Some(suffix) => {
            let on = match &e.source {
                Source::Node { .. } => format!(" (on {})", e.source.selector_label()),
                _ => format!(" (from {})", e.source.selector_label()),
            };
            (join_fit(&base, &suffix), format!("{}{on}", e.description))
        }
        None => (base, e.description.clone()),
    };
    Candidate {
        precedence: (e.source.precedence(), e.id.clone()),
        tag: e.source.tag(),
        spec: ToolSpec {
            name: desired.clone(),
            description,
            parameters: e.parameters.clone(),
        },
        route: ToolRoute {
            tool: desired.clone(),
            original_name: e.name.clone(),
            capability: e.capability.clone(),
            kind: RouteKind::Direct,
            providers: vec![e.id.clone()],
            selectors: BTreeMap::new(),
        },
        desired,
    }
}

/// One tool for all providers of a capability, named and described after its representative
/// (the first by source precedence, then id), with a `node` argument when nodes provide it.
fn ranked_candidate(capability: &str, records: &[&Record]) -> Option<Candidate> {
    let rep = records
        .iter()
        .min_by(|a, b| {
            (a.entry.source.precedence(), &a.entry.id)
                .cmp(&(b.entry.source.precedence(), &b.entry.id))
        })
        .map(|r| &r.entry)?;

    // Labels: the device's name, or `name (id prefix)` when two providers share it.
    let mut label_count: HashMap<String, usize> = HashMap::new();
    for r in records {
        *label_count
            .entry(r.entry.source.selector_label().to_lowercase())
            .or_default() += 1;
    }
    let mut labels = BTreeSet::new();
    let mut selectors = BTreeMap::new();
    for r in records {
        let base = r.entry.source.selector_label();
        let label = if label_count.get(&base.to_lowercase()).copied().unwrap_or(0) > 1 {
            format!("{base} ({})", r.entry.source.tag())
        } else {
            base
        };
        if let Source::Node { node_id, .. } = &r.entry.source {
            selectors
                .entry(node_id.clone())
                .or_insert_with(|| r.entry.id.clone());
        }
        selectors.insert(label.clone(), r.entry.id.clone());
        labels.insert(label);
    }

    let mut parameters = rep.parameters.clone();
    let has_nodes = records
        .iter()
        .any(|r| matches!(r.entry.source, Source::Node { .. }));
    if has_nodes {
        add_node_argument(&mut parameters, labels.into_iter().collect());
    } else {
        selectors.clear();
    }

    let name = sanitize_tool_name(&rep.name);
    Some(Candidate {
        desired: name.clone(),
        precedence: (rep.source.precedence(), rep.id.clone()),
        tag: rep.source.tag(),
        spec: ToolSpec {
            name: name.clone(),
            description: rep.description.clone(),
            parameters,
        },
        route: ToolRoute {
            tool: name,
            original_name: rep.name.clone(),
            capability: capability.to_owned(),
            kind: RouteKind::Ranked,
            providers: records.iter().map(|r| r.entry.id.clone()).collect(),
            selectors,
        },
    })
}

/// Adds the optional `node` string argument with the providers' labels as its enum.
fn add_node_argument(parameters: &mut Value, labels: Vec<String>) {
    let Some(schema) = parameters.as_object_mut() else {
        return;
    };
    schema
        .entry("type")
        .or_insert_with(|| Value::String("object".to_owned()));
    let properties = schema
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if !properties.is_object() {
        *properties = Value::Object(Map::new());
    }
    if let Some(properties) = properties.as_object_mut() {
        properties.insert(
            NODE_ARG.to_owned(),
            json!({
                "type": "string",
                "enum": labels,
                "description": "Device to ask. Omit to let Perch choose: the device the user is \
                                at, then the freshest and most precise data.",
            }),
        );
    }
}

/// Gives every candidate a unique name: winners first (source precedence, then id), then the
/// losers, renamed away from every wanted name, or dropped.
fn settle_names(
    mut candidates: Vec<Candidate>,
    policy: CollisionPolicy,
    report: &mut CatalogReport,
) -> (Vec<ToolSpec>, HashMap<String, ToolRoute>) {
    candidates.sort_by(|a, b| {
        a.desired
            .cmp(&b.desired)
            .then_with(|| a.precedence.cmp(&b.precedence))
    });
    let mut taken: BTreeSet<String> = candidates.iter().map(|c| c.desired.clone()).collect();
    let mut winners: Vec<Candidate> = Vec::with_capacity(candidates.len());
    let mut losers: Vec<(String, Candidate)> = Vec::new();
    for candidate in candidates {
        match winners.last() {
            Some(w) if w.desired == candidate.desired => {
                losers.push((w.precedence.1.clone(), candidate));
            }
            _ => winners.push(candidate),
        }
    }
    for (winner, mut loser) in losers {
        let contested = loser.desired.clone();
        let loser_id = loser.precedence.1.clone();
        let resolution = match policy {
            CollisionPolicy::Drop => CollisionResolution::Dropped,
            CollisionPolicy::Rename => {
                let base = join_fit(&loser.desired, &loser.tag);
                let mut name = base.clone();
                let mut n = 2;
                while taken.contains(&name) {
                    let suffix = format!("_{n}");
                    let keep = MAX_TOOL_NAME_LEN.saturating_sub(suffix.len());
                    name = format!("{}{suffix}", base.chars().take(keep).collect::<String>());
                    n += 1;
                }
                taken.insert(name.clone());
                loser.spec.name.clone_from(&name);
                loser.route.tool.clone_from(&name);
                loser.desired.clone_from(&name);
                winners.push(loser);
                CollisionResolution::Renamed { to: name }
            }
        };
        report.collisions.push(Collision {
            name: contested,
            winner,
            loser: loser_id,
            resolution,
        });
    }
    report
        .collisions
        .sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.loser.cmp(&b.loser)));

    winners.sort_by(|a, b| a.desired.cmp(&b.desired));
    let mut tools = Vec::with_capacity(winners.len());
    let mut routes = HashMap::with_capacity(winners.len());
    for w in winners {
        tools.push(w.spec);
        routes.insert(w.route.tool.clone(), w.route);
    }
    (tools, routes)
}
