//! The canonical event pipeline: every turn passes through a fixed list of [`Stage`]s, and
//! handlers (built-ins, and later extensions adapted by the extension host) take part in them
//! without the kernel knowing who they are.
//!
//! # Stages
//!
//! | stage | payload | decision handlers | what a cancel means |
//! |---|---|---|---|
//! | [`Stage::IngressReceived`] | [`IngressPayload`] | no (raw audit) | – |
//! | [`Stage::IngressNormalized`] | [`IngressPayload`] | yes | the message is not handled |
//! | [`Stage::ContextAssembling`] | [`ContextPayload`] | yes (add blocks) | the turn stops |
//! | [`Stage::PromptBuilt`] | [`ModelRequest`] | yes | the turn stops |
//! | [`Stage::ModelRequest`] | [`ModelCallPayload`] | yes | this model call is not made |
//! | [`Stage::ToolCallBefore`] | [`ToolCallPayload`] | yes (rewrite, block) | this tool call is blocked |
//! | [`Stage::ToolCallAfter`] | [`ToolResultPayload`] | yes (rewrite the result) | the result is withheld |
//! | [`Stage::EgressPreparing`] | [`EgressPayload`] | yes | the reply is not sent |
//! | [`Stage::EgressSent`] | [`EgressPayload`] | no (after the fact) | – |
//! | [`Stage::TranscriptWrite`] | [`TranscriptPayload`] | hot path only | the message is not written |
//!
//! The agent loop emits them in this order; the loop stages (model request, tool calls,
//! transcript writes) repeat within one turn. What a cancel means for the turn is the caller's
//! decision; the pipeline reports it in the [`StageOutcome`].
//!
//! # Execution modes
//!
//! Within one stage, in this order:
//! 1. **Decision handlers** ([`DecisionHandler`]) run one after the other, by priority (higher
//!    first), then by id (ascending). Each sees the payload as the previous one left it and
//!    answers [`Decision::Continue`], [`Decision::Modify`] or [`Decision::Cancel`]. A cancel is
//!    terminal: later handlers do not run.
//! 2. **Hot-path handlers** ([`HotPathHandler`], transcript write only) run inline and
//!    synchronously in the same order, with the same three answers.
//! 3. **Observers** ([`Observer`]) get the final payload (and the cancel, if any) and never
//!    block the turn: the stage spawns one task in which its observers run concurrently, and
//!    returns without waiting for it.
//!
//! # Deadlines and failures
//!
//! Every handler has a deadline ([`DEFAULT_DEADLINE`], overridable per handler). A handler that
//! overruns it, fails, or panics yields a [`Diagnostic`] (logged with `tracing` and collected
//! for the turn) and the turn goes on:
//! - a decision handler that overruns, fails or panics counts as [`Decision::Continue`] (fail
//!   open), and a stage's decisions can take at most the sum of their deadlines;
//! - a hot-path handler cannot be interrupted: its overrun is measured afterwards and reported,
//!   and its answer still applies;
//! - an observer is dropped at its deadline; at most
//!   [`PipelineConfig::max_pending_observers`] run at once, further ones are skipped with a
//!   [`DiagnosticKind::Dropped`] diagnostic so that slow observers cannot pile up.
//!
//! Handlers must not block the thread; the pipeline needs a tokio runtime with time enabled.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::model::{ChatMessage, ModelRequest};

/// How long a handler may take unless its registration says otherwise.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// How many observer invocations may be in flight at once, across all turns, by default.
pub const DEFAULT_MAX_PENDING_OBSERVERS: usize = 1024;

/// The stages of a turn, in the order the agent loop emits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// A message arrived, as received; for audit.
    #[serde(rename = "ingress.received")]
    IngressReceived,
    /// The message in its normalized form; handlers may rewrite or refuse it.
    #[serde(rename = "ingress.normalized")]
    IngressNormalized,
    /// Context blocks for the prompt are being gathered; handlers add blocks (e.g. location).
    #[serde(rename = "context.assembling")]
    ContextAssembling,
    /// The prompt is built and about to be used for the first model call.
    #[serde(rename = "prompt.built")]
    PromptBuilt,
    /// A model call is about to be made (once per call; repeats after tool calls).
    #[serde(rename = "model.request")]
    ModelRequest,
    /// The model asked for a tool; handlers may rewrite or block the call.
    #[serde(rename = "tool.call.before")]
    ToolCallBefore,
    /// A tool call finished; handlers may rewrite the result before the model sees it.
    #[serde(rename = "tool.call.after")]
    ToolCallAfter,
    /// The reply is about to be delivered; the last chance to change or stop it.
    #[serde(rename = "egress.preparing")]
    EgressPreparing,
    /// The reply was delivered.
    #[serde(rename = "egress.sent")]
    EgressSent,
    /// A message is about to be written to the transcript (the synchronous hot path).
    #[serde(rename = "transcript.write")]
    TranscriptWrite,
}

impl Stage {
    /// Every stage, in canonical order, so that callers and tests can iterate them.
    pub const ALL: [Stage; 10] = [
        Stage::IngressReceived,
        Stage::IngressNormalized,
        Stage::ContextAssembling,
        Stage::PromptBuilt,
        Stage::ModelRequest,
        Stage::ToolCallBefore,
        Stage::ToolCallAfter,
        Stage::EgressPreparing,
        Stage::EgressSent,
        Stage::TranscriptWrite,
    ];

    /// Position in [`Stage::ALL`], used to index per-stage tables.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Stable dotted name for logs, diagnostics and configuration.
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::IngressReceived => "ingress.received",
            Stage::IngressNormalized => "ingress.normalized",
            Stage::ContextAssembling => "context.assembling",
            Stage::PromptBuilt => "prompt.built",
            Stage::ModelRequest => "model.request",
            Stage::ToolCallBefore => "tool.call.before",
            Stage::ToolCallAfter => "tool.call.after",
            Stage::EgressPreparing => "egress.preparing",
            Stage::EgressSent => "egress.sent",
            Stage::TranscriptWrite => "transcript.write",
        }
    }

    /// The payload shape this stage carries, so mismatches are caught at the boundary.
    pub const fn payload_kind(self) -> PayloadKind {
        match self {
            Stage::IngressReceived | Stage::IngressNormalized => PayloadKind::Ingress,
            Stage::ContextAssembling => PayloadKind::Context,
            Stage::PromptBuilt => PayloadKind::Prompt,
            Stage::ModelRequest => PayloadKind::ModelCall,
            Stage::ToolCallBefore => PayloadKind::ToolCall,
            Stage::ToolCallAfter => PayloadKind::ToolResult,
            Stage::EgressPreparing | Stage::EgressSent => PayloadKind::Egress,
            Stage::TranscriptWrite => PayloadKind::Transcript,
        }
    }

    /// Whether handlers of `mode` may subscribe to this stage: observers anywhere, decisions
    /// where something can still be changed, hot-path handlers only at the transcript write.
    pub const fn allows(self, mode: Mode) -> bool {
        match mode {
            Mode::Observer => true,
            Mode::Decision => !matches!(
                self,
                Stage::IngressReceived | Stage::EgressSent | Stage::TranscriptWrite
            ),
            Mode::HotPath => matches!(self, Stage::TranscriptWrite),
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of stages as a bit set, so subscriptions are cheap to store and test.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct StageSet(u16);

impl StageSet {
    /// No stage.
    pub const EMPTY: StageSet = StageSet(0);
    /// Every stage.
    pub const ALL: StageSet = StageSet((1 << Stage::ALL.len()) - 1);
    /// Every stage that accepts decision handlers.
    pub const DECISIONS: StageSet = StageSet::EMPTY
        .with(Stage::IngressNormalized)
        .with(Stage::ContextAssembling)
        .with(Stage::PromptBuilt)
        .with(Stage::ModelRequest)
        .with(Stage::ToolCallBefore)
        .with(Stage::ToolCallAfter)
        .with(Stage::EgressPreparing);

    /// A set holding one stage.
    pub const fn only(stage: Stage) -> StageSet {
        StageSet(1 << stage.index())
    }

    /// This set plus `stage`.
    pub const fn with(self, stage: Stage) -> StageSet {
        StageSet(self.0 | (1 << stage.index()))
    }

    /// Whether `stage` is in the set.
    pub const fn contains(self, stage: Stage) -> bool {
        self.0 & (1 << stage.index()) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The stages in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Stage> {
        Stage::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl From<Stage> for StageSet {
    fn from(stage: Stage) -> Self {
        StageSet::only(stage)
    }
}

impl FromIterator<Stage> for StageSet {
    fn from_iter<I: IntoIterator<Item = Stage>>(iter: I) -> Self {
        iter.into_iter().fold(StageSet::EMPTY, StageSet::with)
    }
}

impl<const N: usize> From<[Stage; N]> for StageSet {
    fn from(stages: [Stage; N]) -> Self {
        stages.into_iter().collect()
    }
}

impl fmt::Debug for StageSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// How a handler takes part in a stage; each handler has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Runs concurrently with the turn; sees, never changes.
    Observer,
    /// Runs in order before the stage completes; may continue, modify or cancel.
    Decision,
    /// Runs inline and synchronously at the transcript write; must be fast.
    HotPath,
}

/// Which payload variant a stage carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadKind {
    /// [`StagePayload::Ingress`].
    Ingress,
    /// [`StagePayload::Context`].
    Context,
    /// [`StagePayload::Prompt`].
    Prompt,
    /// [`StagePayload::ModelCall`].
    ModelCall,
    /// [`StagePayload::ToolCall`].
    ToolCall,
    /// [`StagePayload::ToolResult`].
    ToolResult,
    /// [`StagePayload::Egress`].
    Egress,
    /// [`StagePayload::Transcript`].
    Transcript,
}

/// An incoming message, before and after normalization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngressPayload {
    /// Where it came from, for example `cli`, `operator` or `node:<id>`.
    pub channel: String,
    /// Who sent it, when the channel says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// The text.
    pub text: String,
}

/// Whether a context block's content may be followed as instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    /// Written by the host or the user's own configuration.
    Trusted,
    /// Reported by a device or third party: data, never instructions.
    Untrusted,
}

/// One block of context for the prompt (device context, memory, guidance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextBlock {
    /// Who added it (a handler id), for audit and de-duplication.
    pub source: String,
    /// Short heading, for example `device context`.
    pub label: String,
    /// How far the model may trust it; the prompt builder fences untrusted blocks.
    pub trust: Trust,
    /// The content.
    pub text: String,
}

/// The context blocks gathered so far; handlers add theirs with [`Decision::Modify`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContextPayload {
    /// Blocks in the order they were added.
    pub blocks: Vec<ContextBlock>,
}

impl ContextPayload {
    /// This payload with one more block, the usual answer of an augmenting handler.
    pub fn with_block(mut self, block: ContextBlock) -> Self {
        self.blocks.push(block);
        self
    }
}

/// A model call about to be made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCallPayload {
    /// Provider name, for example `openai`.
    pub provider: String,
    /// The request as it will be sent.
    pub request: ModelRequest,
}

/// A tool call the model asked for, with parsed arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallPayload {
    /// The provider-assigned call id.
    pub call_id: String,
    /// The tool name as the model sees it.
    pub tool: String,
    /// Arguments (a JSON object).
    pub arguments: Value,
}

/// The result of a tool call, before the model sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResultPayload {
    /// The call it answers.
    pub call_id: String,
    /// The tool name as the model sees it.
    pub tool: String,
    /// The result, or an error description when `is_error`.
    pub output: Value,
    /// Whether the tool failed.
    pub is_error: bool,
}

/// A reply on its way out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EgressPayload {
    /// Where it goes (the channel the message came from, usually).
    pub channel: String,
    /// The text.
    pub text: String,
}

/// A message about to be written to the transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptPayload {
    /// The message.
    pub message: ChatMessage,
}

/// What a stage carries; typed so handlers need no string keys and mismatches are caught.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum StagePayload {
    /// Ingress stages.
    Ingress(IngressPayload),
    /// Context assembly.
    Context(ContextPayload),
    /// The built prompt.
    Prompt(ModelRequest),
    /// One model call.
    ModelCall(ModelCallPayload),
    /// A tool call before it runs.
    ToolCall(ToolCallPayload),
    /// A tool result.
    ToolResult(ToolResultPayload),
    /// Egress stages.
    Egress(EgressPayload),
    /// Transcript write.
    Transcript(TranscriptPayload),
}

impl StagePayload {
    /// Which variant this is.
    pub const fn kind(&self) -> PayloadKind {
        match self {
            StagePayload::Ingress(_) => PayloadKind::Ingress,
            StagePayload::Context(_) => PayloadKind::Context,
            StagePayload::Prompt(_) => PayloadKind::Prompt,
            StagePayload::ModelCall(_) => PayloadKind::ModelCall,
            StagePayload::ToolCall(_) => PayloadKind::ToolCall,
            StagePayload::ToolResult(_) => PayloadKind::ToolResult,
            StagePayload::Egress(_) => PayloadKind::Egress,
            StagePayload::Transcript(_) => PayloadKind::Transcript,
        }
    }
}

/// Who cancelled a stage and why, reported to the caller and to observers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    /// The handler that cancelled.
    pub handler_id: String,
    /// Its reason, for the user and the logs.
    pub reason: String,
}

/// What a handler sees: the stage, whose turn it is, and the payload.
#[derive(Debug, Clone)]
pub struct TurnEvent {
    /// The stage.
    pub stage: Stage,
    /// The session the turn belongs to, for example `main`.
    pub session_key: Arc<str>,
    /// The turn, unique within the session.
    pub turn_id: Arc<str>,
    /// The payload as the previous handlers left it.
    pub payload: Arc<StagePayload>,
    /// For observers: the cancel that ended the stage's decisions, if any; always `None` for
    /// decision and hot-path handlers.
    pub cancelled: Option<Cancellation>,
}

/// A decision or hot-path handler's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Leave the payload as it is.
    Continue,
    /// Replace the payload (same variant as the stage's); later handlers see the new one.
    Modify(StagePayload),
    /// Stop the stage: later handlers do not run and the caller is told.
    Cancel {
        /// Why, for the user and the logs.
        reason: String,
    },
}

/// A handler's own failure; the pipeline turns it into a [`Diagnostic`] and goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl HandlerError {
    /// Wraps a message.
    pub fn new(message: impl Into<String>) -> Self {
        HandlerError(message.into())
    }
}

/// Side effects only (audit, telemetry, memory capture); runs concurrently with the turn.
pub trait Observer: Send + Sync + 'static {
    /// Looks at one stage's final event.
    fn observe<'a>(&'a self, event: &'a TurnEvent) -> BoxFuture<'a, Result<(), HandlerError>>;
}

/// May change or stop a stage; runs in order, awaited by the turn.
pub trait DecisionHandler: Send + Sync + 'static {
    /// Decides on one stage's event.
    fn decide<'a>(&'a self, event: &'a TurnEvent) -> BoxFuture<'a, Result<Decision, HandlerError>>;
}

/// Runs inline at the transcript write; synchronous by type so it cannot await anything.
pub trait HotPathHandler: Send + Sync + 'static {
    /// Decides on the message about to be written.
    fn handle(&self, event: &TurnEvent) -> Result<Decision, HandlerError>;
}

/// A handler of one of the three modes.
#[derive(Clone)]
pub enum Handler {
    /// See [`Observer`].
    Observer(Arc<dyn Observer>),
    /// See [`DecisionHandler`].
    Decision(Arc<dyn DecisionHandler>),
    /// See [`HotPathHandler`].
    HotPath(Arc<dyn HotPathHandler>),
}

impl Handler {
    /// The mode this handler runs in.
    pub const fn mode(&self) -> Mode {
        match self {
            Handler::Observer(_) => Mode::Observer,
            Handler::Decision(_) => Mode::Decision,
            Handler::HotPath(_) => Mode::HotPath,
        }
    }
}

impl fmt::Debug for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handler::{:?}", self.mode())
    }
}

/// A handler with its id, stages, priority and deadline, ready to register.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Unique id; the tie-break after priority, and the name in diagnostics.
    pub id: String,
    /// Stages it subscribes to.
    pub stages: StageSet,
    /// Higher runs first among decision and hot-path handlers; default 0.
    pub priority: i32,
    /// Its own deadline; `None` means the pipeline default.
    pub deadline: Option<Duration>,
    /// The handler.
    pub handler: Handler,
}

impl Registration {
    /// An observer of `stages`.
    pub fn observer(
        id: impl Into<String>,
        stages: impl Into<StageSet>,
        handler: impl Observer,
    ) -> Self {
        Self::new(id, stages, Handler::Observer(Arc::new(handler)))
    }

    /// A decision handler for `stages`.
    pub fn decision(
        id: impl Into<String>,
        stages: impl Into<StageSet>,
        handler: impl DecisionHandler,
    ) -> Self {
        Self::new(id, stages, Handler::Decision(Arc::new(handler)))
    }

    /// A hot-path handler; it always subscribes to [`Stage::TranscriptWrite`].
    pub fn hot_path(id: impl Into<String>, handler: impl HotPathHandler) -> Self {
        Self::new(
            id,
            Stage::TranscriptWrite,
            Handler::HotPath(Arc::new(handler)),
        )
    }

    /// Any handler, for callers that already hold an `Arc`.
    pub fn new(id: impl Into<String>, stages: impl Into<StageSet>, handler: Handler) -> Self {
        Registration {
            id: id.into(),
            stages: stages.into(),
            priority: 0,
            deadline: None,
            handler,
        }
    }

    /// Sets the priority (higher runs first).
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets this handler's deadline.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

/// Why a registration was refused; refused at registration so a bad handler never runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// The id is empty.
    #[error("a pipeline handler needs a non-empty id")]
    EmptyId,
    /// Another handler already has this id.
    #[error("a pipeline handler with id `{0}` is already registered")]
    DuplicateId(String),
    /// The handler subscribes to no stage.
    #[error("pipeline handler `{0}` subscribes to no stage")]
    NoStages(String),
    /// The mode is not allowed at one of its stages.
    #[error("pipeline handler `{id}`: {mode:?} handlers are not allowed at `{stage}`")]
    ModeNotAllowed {
        /// The handler.
        id: String,
        /// The stage that refuses it.
        stage: Stage,
        /// Its mode.
        mode: Mode,
    },
    /// A zero deadline would make every call an overrun.
    #[error("pipeline handler `{0}` has a zero deadline")]
    ZeroDeadline(String),
}

/// A caller's mistake when emitting a stage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    /// The payload variant does not belong to the stage.
    #[error("stage `{stage}` carries a {expected:?} payload, got {got:?}")]
    PayloadMismatch {
        /// The stage emitted.
        stage: Stage,
        /// What it carries.
        expected: PayloadKind,
        /// What was given.
        got: PayloadKind,
    },
}

/// What went wrong with one handler invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosticKind {
    /// It ran past its deadline.
    Overrun,
    /// It returned an error (or a payload of the wrong variant).
    Failed,
    /// It panicked.
    Panicked,
    /// An observer was not started because too many were already in flight.
    Dropped,
}

/// A structured report of a handler that overran, failed or panicked; the turn went on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// The handler.
    pub handler_id: String,
    /// The stage it was handling.
    pub stage: Stage,
    /// Its mode.
    pub mode: Mode,
    /// What happened.
    pub kind: DiagnosticKind,
    /// How long it ran before the pipeline gave up or it returned.
    pub elapsed: Duration,
    /// The error or panic message, or the deadline that passed.
    pub detail: String,
}

/// Pipeline-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Deadline of handlers that set none.
    pub default_deadline: Duration,
    /// Cap on observer invocations in flight, across turns.
    pub max_pending_observers: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            default_deadline: DEFAULT_DEADLINE,
            max_pending_observers: DEFAULT_MAX_PENDING_OBSERVERS,
        }
    }
}

/// A registered handler as listed for operators (`perch doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerInfo {
    /// Its id.
    pub id: String,
    /// Its mode.
    pub mode: Mode,
    /// Its stages.
    pub stages: StageSet,
    /// Its priority.
    pub priority: i32,
    /// Its effective deadline.
    pub deadline: Duration,
}

/// One registered handler as the runner uses it.
struct Entry {
    id: Arc<str>,
    deadline: Duration,
    handler: Handler,
}

/// The handlers of one stage, each list already in run order.
#[derive(Default)]
struct StageHandlers {
    decisions: Vec<Arc<Entry>>,
    hot_path: Vec<Arc<Entry>>,
    observers: Vec<Arc<Entry>>,
}

/// An immutable snapshot of all subscriptions; a turn keeps the one it started with.
#[derive(Default)]
struct Index {
    stages: [StageHandlers; Stage::ALL.len()],
}

#[derive(Default)]
struct Registry {
    by_id: BTreeMap<String, Registration>,
    index: Arc<Index>,
}

struct Shared {
    config: PipelineConfig,
    registry: RwLock<Registry>,
    observer_permits: Arc<Semaphore>,
}

/// The runner: holds the registered handlers and starts turns. Cheap to clone (shared).
#[derive(Clone)]
pub struct Pipeline {
    shared: Arc<Shared>,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline::new(PipelineConfig::default())
    }
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("config", &self.shared.config)
            .field("handlers", &self.handlers().len())
            .finish()
    }
}

impl Pipeline {
    /// A pipeline with no handlers.
    pub fn new(config: PipelineConfig) -> Self {
        Pipeline {
            shared: Arc::new(Shared {
                config,
                registry: RwLock::new(Registry::default()),
                observer_permits: Arc::new(Semaphore::new(config.max_pending_observers)),
            }),
        }
    }

    /// The settings it was made with.
    pub fn config(&self) -> PipelineConfig {
        self.shared.config
    }

    /// Adds a handler; turns already running keep the handlers they started with.
    pub fn register(&self, registration: Registration) -> Result<(), RegistrationError> {
        let id = registration.id.clone();
        if id.is_empty() {
            return Err(RegistrationError::EmptyId);
        }
        if registration.stages.is_empty() {
            return Err(RegistrationError::NoStages(id));
        }
        if registration.deadline == Some(Duration::ZERO) {
            return Err(RegistrationError::ZeroDeadline(id));
        }
        let mode = registration.handler.mode();
        if let Some(stage) = registration.stages.iter().find(|s| !s.allows(mode)) {
            return Err(RegistrationError::ModeNotAllowed { id, stage, mode });
        }
        let mut registry = self.write();
        if registry.by_id.contains_key(&id) {
            return Err(RegistrationError::DuplicateId(id));
        }
        tracing::debug!(handler = %id, ?mode, stages = ?registration.stages, "pipeline handler registered");
        registry.by_id.insert(id, registration);
        registry.index = Arc::new(self.build_index(&registry.by_id));
        Ok(())
    }

    /// Removes a handler by id; returns whether it was there.
    pub fn unregister(&self, id: &str) -> bool {
        let mut registry = self.write();
        if registry.by_id.remove(id).is_none() {
            return false;
        }
        registry.index = Arc::new(self.build_index(&registry.by_id));
        tracing::debug!(handler = %id, "pipeline handler unregistered");
        true
    }

    /// The registered handlers, by id.
    pub fn handlers(&self) -> Vec<HandlerInfo> {
        let registry = self.read();
        registry
            .by_id
            .values()
            .map(|r| HandlerInfo {
                id: r.id.clone(),
                mode: r.handler.mode(),
                stages: r.stages,
                priority: r.priority,
                deadline: r.deadline.unwrap_or(self.shared.config.default_deadline),
            })
            .collect()
    }

    /// Starts a turn with a snapshot of the current handlers.
    pub fn begin_turn(
        &self,
        session_key: impl Into<Arc<str>>,
        turn_id: impl Into<Arc<str>>,
    ) -> Turn {
        let index = self.read().index.clone();
        Turn {
            index,
            permits: self.shared.observer_permits.clone(),
            session_key: session_key.into(),
            turn_id: turn_id.into(),
            diagnostics: Arc::new(Mutex::new(Vec::new())),
            pending: Vec::new(),
            cancellations: Vec::new(),
            stages: Vec::new(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.shared
            .registry
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.shared
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn build_index(&self, by_id: &BTreeMap<String, Registration>) -> Index {
        // `by_id` iterates by id; a stable sort by descending priority keeps id order on ties.
        let mut ordered: Vec<&Registration> = by_id.values().collect();
        ordered.sort_by_key(|r| std::cmp::Reverse(r.priority));
        let mut index = Index::default();
        for r in ordered {
            let entry = Arc::new(Entry {
                id: Arc::from(r.id.as_str()),
                deadline: r.deadline.unwrap_or(self.shared.config.default_deadline),
                handler: r.handler.clone(),
            });
            for stage in r.stages.iter() {
                let handlers = &mut index.stages[stage.index()];
                let list = match r.handler {
                    Handler::Observer(_) => &mut handlers.observers,
                    Handler::Decision(_) => &mut handlers.decisions,
                    Handler::HotPath(_) => &mut handlers.hot_path,
                };
                list.push(entry.clone());
            }
        }
        index
    }
}

/// What one stage produced.
#[derive(Debug, Clone)]
pub struct StageOutcome {
    /// The payload after every decision and hot-path handler.
    pub payload: Arc<StagePayload>,
    /// The cancel that ended the stage, if any.
    pub cancelled: Option<Cancellation>,
    /// Diagnostics of this stage's decision and hot-path handlers (observers report later,
    /// through [`Turn::diagnostics`] and [`Turn::settle`]).
    pub diagnostics: Vec<Diagnostic>,
}

impl StageOutcome {
    /// Whether a handler cancelled the stage.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.is_some()
    }

    /// The payload, cloned only if an observer still holds it.
    pub fn into_payload(self) -> StagePayload {
        Arc::try_unwrap(self.payload).unwrap_or_else(|shared| (*shared).clone())
    }
}

/// A stage that was cancelled during a turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageCancel {
    /// The stage.
    pub stage: Stage,
    /// Who and why.
    pub cancellation: Cancellation,
}

/// Everything the pipeline has to say about a finished turn.
#[derive(Debug, Clone, Default)]
pub struct TurnReport {
    /// Stages emitted, in order.
    pub stages: Vec<Stage>,
    /// Stages that were cancelled.
    pub cancellations: Vec<StageCancel>,
    /// Every diagnostic collected (observers' only if they reported in time).
    pub diagnostics: Vec<Diagnostic>,
}

/// One turn going through the pipeline; emit its stages in order, then finish or settle it.
pub struct Turn {
    index: Arc<Index>,
    permits: Arc<Semaphore>,
    session_key: Arc<str>,
    turn_id: Arc<str>,
    diagnostics: Arc<Mutex<Vec<Diagnostic>>>,
    pending: Vec<JoinHandle<()>>,
    cancellations: Vec<StageCancel>,
    stages: Vec<Stage>,
}

impl fmt::Debug for Turn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Turn")
            .field("session_key", &self.session_key)
            .field("turn_id", &self.turn_id)
            .field("stages", &self.stages)
            .finish_non_exhaustive()
    }
}

/// Why a guarded call produced no answer.
struct Failure {
    kind: DiagnosticKind,
    detail: String,
}

impl Turn {
    /// The session key.
    pub fn session_key(&self) -> &str {
        &self.session_key
    }

    /// The turn id.
    pub fn turn_id(&self) -> &str {
        &self.turn_id
    }

    /// Runs one stage: decision handlers, then hot-path handlers, then starts the observers.
    pub async fn emit(
        &mut self,
        stage: Stage,
        payload: StagePayload,
    ) -> Result<StageOutcome, PipelineError> {
        if payload.kind() != stage.payload_kind() {
            return Err(PipelineError::PayloadMismatch {
                stage,
                expected: stage.payload_kind(),
                got: payload.kind(),
            });
        }
        self.stages.push(stage);
        let index = self.index.clone();
        let handlers = &index.stages[stage.index()];
        let mut event = TurnEvent {
            stage,
            session_key: self.session_key.clone(),
            turn_id: self.turn_id.clone(),
            payload: Arc::new(payload),
            cancelled: None,
        };
        let mut diagnostics = Vec::new();

        for entry in &handlers.decisions {
            let Handler::Decision(handler) = &entry.handler else {
                continue;
            };
            let started = Instant::now();
            let result = guarded(entry.deadline, || handler.decide(&event)).await;
            let answer = result.map_err(|f| (f, started.elapsed()));
            if apply(entry, Mode::Decision, answer, &mut event, &mut diagnostics) {
                break;
            }
        }

        if event.cancelled.is_none() {
            for entry in &handlers.hot_path {
                let Handler::HotPath(handler) = &entry.handler else {
                    continue;
                };
                let started = Instant::now();
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| handler.handle(&event)));
                let elapsed = started.elapsed();
                if elapsed > entry.deadline {
                    diagnostics.push(diagnostic(
                        entry,
                        stage,
                        Mode::HotPath,
                        elapsed,
                        Failure {
                            kind: DiagnosticKind::Overrun,
                            detail: format!(
                                "took {} µs, over its {} µs deadline (answer kept)",
                                elapsed.as_micros(),
                                entry.deadline.as_micros()
                            ),
                        },
                    ));
                }
                let answer = match result {
                    Ok(Ok(decision)) => Ok(decision),
                    Ok(Err(e)) => Err((
                        Failure {
                            kind: DiagnosticKind::Failed,
                            detail: e.0,
                        },
                        elapsed,
                    )),
                    Err(panic) => Err((
                        Failure {
                            kind: DiagnosticKind::Panicked,
                            detail: panic_message(panic.as_ref()),
                        },
                        elapsed,
                    )),
                };
                if apply(entry, Mode::HotPath, answer, &mut event, &mut diagnostics) {
                    break;
                }
            }
        }

        if let Some(cancellation) = &event.cancelled {
            tracing::debug!(
                stage = %stage,
                handler = %cancellation.handler_id,
                reason = %cancellation.reason,
                "pipeline stage cancelled"
            );
            self.cancellations.push(StageCancel {
                stage,
                cancellation: cancellation.clone(),
            });
        }

        if !handlers.observers.is_empty() {
            self.start_observers(&handlers.observers, &event, &mut diagnostics);
        }

        if !diagnostics.is_empty() {
            lock(&self.diagnostics).extend(diagnostics.iter().cloned());
        }
        Ok(StageOutcome {
            payload: event.payload,
            cancelled: event.cancelled,
            diagnostics,
        })
    }

    /// Diagnostics so far, including those observers have reported by now.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        lock(&self.diagnostics).clone()
    }

    /// Ends the turn without waiting for observers; they go on until their deadlines.
    pub fn finish(self) -> TurnReport {
        TurnReport {
            diagnostics: lock(&self.diagnostics).clone(),
            stages: self.stages,
            cancellations: self.cancellations,
        }
    }

    /// Ends the turn after this turn's observers are done (each bounded by its deadline), for
    /// shutdown and tests.
    pub async fn settle(mut self) -> TurnReport {
        for handle in std::mem::take(&mut self.pending) {
            // Observers catch their own panics; a join error means the runtime is going away.
            let _ = handle.await;
        }
        self.finish()
    }

    fn start_observers(
        &mut self,
        observers: &[Arc<Entry>],
        event: &TurnEvent,
        diagnostics: &mut Vec<Diagnostic>,
    ) {
        if self.pending.len() >= 256 {
            self.pending.retain(|h| !h.is_finished());
        }
        let mut admitted = Vec::with_capacity(observers.len());
        for entry in observers {
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => admitted.push((entry.clone(), permit)),
                Err(_) => diagnostics.push(diagnostic(
                    entry,
                    event.stage,
                    Mode::Observer,
                    Duration::ZERO,
                    Failure {
                        kind: DiagnosticKind::Dropped,
                        detail: "too many observers in flight; skipped".to_owned(),
                    },
                )),
            }
        }
        if admitted.is_empty() {
            return;
        }
        // One task per stage: its observers run concurrently in it, each with its own
        // deadline and panic guard, so a spawn costs the turn once per stage, not per observer.
        let event = event.clone();
        let sink = self.diagnostics.clone();
        let task = async move {
            let runs = admitted
                .into_iter()
                .map(|(entry, permit)| run_observer(entry, &event, &sink, permit));
            futures_util::future::join_all(runs).await;
        };
        self.pending.push(tokio::spawn(task));
    }
}

/// Runs one observer invocation to its end or its deadline, recording any failure.
async fn run_observer(
    entry: Arc<Entry>,
    event: &TurnEvent,
    sink: &Mutex<Vec<Diagnostic>>,
    _permit: OwnedSemaphorePermit,
) {
    let Handler::Observer(observer) = &entry.handler else {
        return;
    };
    let started = Instant::now();
    if let Err(failure) = guarded(entry.deadline, || observer.observe(event)).await {
        let d = diagnostic(
            &entry,
            event.stage,
            Mode::Observer,
            started.elapsed(),
            failure,
        );
        lock(sink).push(d);
    }
}

/// Calls a handler with its deadline, turning errors, overruns and panics into a [`Failure`].
async fn guarded<'a, T>(
    deadline: Duration,
    start: impl FnOnce() -> BoxFuture<'a, Result<T, HandlerError>>,
) -> Result<T, Failure> {
    let future = std::panic::catch_unwind(AssertUnwindSafe(start)).map_err(|panic| Failure {
        kind: DiagnosticKind::Panicked,
        detail: panic_message(panic.as_ref()),
    })?;
    match tokio::time::timeout(deadline, AssertUnwindSafe(future).catch_unwind()).await {
        Err(_) => Err(Failure {
            kind: DiagnosticKind::Overrun,
            detail: format!("exceeded its {} ms deadline", deadline.as_millis()),
        }),
        Ok(Err(panic)) => Err(Failure {
            kind: DiagnosticKind::Panicked,
            detail: panic_message(panic.as_ref()),
        }),
        Ok(Ok(Err(e))) => Err(Failure {
            kind: DiagnosticKind::Failed,
            detail: e.0,
        }),
        Ok(Ok(Ok(value))) => Ok(value),
    }
}

/// Applies one decision to the event; returns true when the stage is cancelled.
fn apply(
    entry: &Entry,
    mode: Mode,
    answer: Result<Decision, (Failure, Duration)>,
    event: &mut TurnEvent,
    diagnostics: &mut Vec<Diagnostic>,
) -> bool {
    match answer {
        Ok(Decision::Continue) => false,
        Ok(Decision::Modify(payload)) => {
            if payload.kind() == event.stage.payload_kind() {
                event.payload = Arc::new(payload);
            } else {
                diagnostics.push(diagnostic(
                    entry,
                    event.stage,
                    mode,
                    Duration::ZERO,
                    Failure {
                        kind: DiagnosticKind::Failed,
                        detail: format!(
                            "returned a {:?} payload for a {:?} stage; ignored",
                            payload.kind(),
                            event.stage.payload_kind()
                        ),
                    },
                ));
            }
            false
        }
        Ok(Decision::Cancel { reason }) => {
            event.cancelled = Some(Cancellation {
                handler_id: entry.id.to_string(),
                reason,
            });
            true
        }
        Err((failure, elapsed)) => {
            diagnostics.push(diagnostic(entry, event.stage, mode, elapsed, failure));
            false
        }
    }
}

/// Builds a diagnostic and logs it.
fn diagnostic(
    entry: &Entry,
    stage: Stage,
    mode: Mode,
    elapsed: Duration,
    failure: Failure,
) -> Diagnostic {
    let d = Diagnostic {
        handler_id: entry.id.to_string(),
        stage,
        mode,
        kind: failure.kind,
        elapsed,
        detail: failure.detail,
    };
    tracing::warn!(
        handler = %d.handler_id,
        stage = %d.stage,
        mode = ?d.mode,
        kind = ?d.kind,
        elapsed_ms = d.elapsed.as_millis() as u64,
        detail = %d.detail,
        "pipeline handler diagnostic; the turn goes on"
    );
    d
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_owned()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
