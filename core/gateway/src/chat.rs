//! `chat.send`: the host side of the agent. It resolves the tier's provider and credential,
//! compiles the tools from the nodes connected right now, runs the kernel's agent loop over the
//! store's transcript, streams the turn to the operator that asked, and announces its start
//! and end to every operator (`agent.turn`).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use perch_kernel::agent::{
    Agent, AgentConfig, ToolFailure, Toolbox, Transcript, TurnError, TurnEvent, TurnRecord,
};
use perch_kernel::catalog::{
    Catalog, CatalogConfig, CatalogEntry, CompiledTools, Source, ToolContext, ToolError,
    ToolExecutor,
};
use perch_kernel::credentials::{ModelsConfig, ProviderKind};
use perch_kernel::location::{LocationPolicy, LocationPrompts, PromptTarget};
use perch_kernel::model::{ChatMessage, ToolCall, ToolSpec};
use perch_kernel::provider::ModelProvider;
use perch_kernel::provider::anthropic::{AnthropicConfig, AnthropicProvider};
use perch_kernel::provider::openai::{OpenAiConfig, OpenAiProvider};
use perch_kernel::vault::{Vault, VaultSources};
use perch_protocol::chat::{
    AGENT_TURN_EVENT, AgentTurn, CHAT_EVENT, ChatEvent, ChatResult, ChatSendParams, TurnState,
    turn_preview,
};
use perch_protocol::methods::InvokeParams;
use perch_protocol::node_commands::{
    DEVICE_INFO, DEVICE_STATUS, LOCATION_GET, LocationFix, SYSTEM_NOTIFY,
};
use perch_protocol::sessions::{MAIN_SESSION, valid_session_key};
use perch_protocol::{DeviceId, ErrorCode, ErrorShape};
use perch_store::{MessageRole, NewMessage, Store};

use crate::hub::{Hub, Outbox, now_ms};
use crate::secrets::random_b64;

/// The store's transcript, in kernel terms.
struct StoreTranscript(Store);

impl Transcript for StoreTranscript {
    fn history(
        &self,
        session: &str,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<ChatMessage>, String>> {
        let session = session.to_string();
        Box::pin(async move {
            let rows = self
                .0
                .sessions()
                .messages(&session, limit)
                .await
                .map_err(|e| e.to_string())?;
            Ok(rows
                .into_iter()
                .filter_map(|r| {
                    let m = r.message;
                    match m.role {
                        MessageRole::User => Some(ChatMessage::User { text: m.content }),
                        MessageRole::Assistant => Some(ChatMessage::Assistant {
                            text: m.content,
                            tool_calls: m
                                .tool_calls
                                .and_then(|t| serde_json::from_str::<Vec<ToolCall>>(&t).ok())
                                .unwrap_or_default(),
                        }),
                        MessageRole::Tool => Some(ChatMessage::Tool {
                            call_id: m.tool_call_id.unwrap_or_default(),
                            name: m.tool_name.unwrap_or_default(),
                            content: m.content,
                            is_error: m.is_error,
                        }),
                        MessageRole::Error => None,
                    }
                })
                .collect())
        })
    }

    fn append(
        &self,
        session: &str,
        turn_id: &str,
        records: Vec<TurnRecord>,
    ) -> BoxFuture<'_, Result<(), String>> {
        let (session, turn_id) = (session.to_string(), turn_id.to_string());
        Box::pin(async move {
            let rows: Vec<NewMessage> = records
                .into_iter()
                .map(|r| match r {
                    TurnRecord::Message { message, usage } => {
                        let mut row = match message {
                            ChatMessage::User { text } => NewMessage::text(MessageRole::User, text),
                            ChatMessage::Assistant { text, tool_calls } => NewMessage {
                                tool_calls: (!tool_calls.is_empty()).then(|| {
                                    serde_json::to_string(&tool_calls).unwrap_or_default()
                                }),
                                ..NewMessage::text(MessageRole::Assistant, text)
                            },
                            ChatMessage::Tool {
                                call_id,
                                name,
                                content,
                                is_error,
                            } => NewMessage {
                                tool_call_id: Some(call_id),
                                tool_name: Some(name),
                                is_error,
                                ..NewMessage::text(MessageRole::Tool, content)
                            },
                        };
                        if let Some(u) = usage {
                            row.input_tokens = Some(u.input_tokens);
                            row.output_tokens = Some(u.output_tokens);
                        }
                        row
                    }
                    TurnRecord::Error(reason) => NewMessage::text(MessageRole::Error, reason),
                })
                .collect();
            self.0
                .sessions()
                .append_turn(&session, &turn_id, &rows, now_ms())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

/// A node command as a tool: runs `node.invoke` through the same gates as an operator.
struct NodeCommand {
    hub: Arc<Hub>,
    node_id: DeviceId,
    command: String,
}

impl ToolExecutor for NodeCommand {
    fn execute(&self, args: Value, ctx: ToolContext) -> BoxFuture<'_, Result<Value, ToolError>> {
        Box::pin(async move {
            let params = InvokeParams {
                node_id: self.node_id.to_string(),
                command: self.command.clone(),
                params: Some(args),
                timeout_ms: None,
                idempotency_key: format!("turn:{}:{}", ctx.turn_id, ctx.call_id),
            };
            match crate::invoke::invoke(&self.hub, params).await {
                Ok(r) => Ok(r.payload),
                Err(e) if e.code == ErrorCode::NodeNotConnected => {
                    Err(ToolError::Unavailable(e.to_string()))
                }
                Err(e) if e.code == ErrorCode::Timeout => Err(ToolError::Timeout(30_000)),
                Err(e) => Err(ToolError::Failed(e.to_string())),
            }
        })
    }
}

/// Descriptions and argument schemas the model sees for the built-in node commands.
fn describe(command: &str) -> Option<(&'static str, Value)> {
    match command {
        LOCATION_GET => Some((
            "Where one of the user's devices is now: latitude, longitude, accuracy, time.",
            json!({"type": "object", "properties": {
                "desiredAccuracy": {"type": "string", "enum": ["coarse", "balanced", "precise"]}}}),
        )),
        SYSTEM_NOTIFY => Some((
            "Show a notification on one of the user's devices.",
            json!({"type": "object", "required": ["title", "body"], "properties": {
                "title": {"type": "string"}, "body": {"type": "string"}}}),
        )),
        DEVICE_INFO => Some((
            "Facts about one of the user's devices: name, operating system, version.",
            json!({"type": "object", "properties": {}}),
        )),
        DEVICE_STATUS => Some((
            "Battery and uptime of one of the user's devices.",
            json!({"type": "object", "properties": {}}),
        )),
        _ => None,
    }
}

/// Compiles the tools of the nodes connected now; a node that left is simply not there.
pub fn node_tools(hub: &Arc<Hub>) -> CompiledTools {
    let catalog = Catalog::new(CatalogConfig::default());
    for node in hub.nodes() {
        for command in &node.commands {
            if !hub.config.commands.allows(command) {
                continue;
            }
            let Some((description, schema)) = describe(command) else {
                continue;
            };
            let entry = CatalogEntry::new(
                format!("{}:{command}", node.node_id),
                command.clone(),
                Source::Node {
                    node_id: node.node_id.to_string(),
                    display_name: node.display_name.clone(),
                },
                Arc::new(NodeCommand {
                    hub: hub.clone(),
                    node_id: node.node_id.clone(),
                    command: command.clone(),
                }),
            )
            .with_description(description)
            .with_parameters(schema);
            if let Err(e) = catalog.register(entry) {
                tracing::warn!(error = %e, "node command not offered to the model");
            }
        }
    }
    catalog.set_active_node(hub.presence_list().active_device_id.as_deref());
    catalog.compile()
}

/// The compiled catalog as the agent's toolbox for one turn.
struct TurnTools {
    compiled: CompiledTools,
    session: String,
    turn: String,
}

impl Toolbox for TurnTools {
    fn specs(&self) -> Vec<ToolSpec> {
        self.compiled.tools.clone()
    }
    fn call(
        &self,
        name: &str,
        arguments: Value,
    ) -> Option<BoxFuture<'static, Result<Value, ToolFailure>>> {
        let ctx = ToolContext::new(self.session.clone(), self.turn.clone(), String::new());
        match self.compiled.route(name, arguments) {
            Err(ToolError::UnknownTool(_)) => None,
            Err(e) => Some(Box::pin(async move { Err(failure(e)) })),
            Ok(routed) => {
                let fut = routed.run(name, ctx);
                Some(Box::pin(async move { fut.await.map_err(failure) }))
            }
        }
    }
}

fn failure(e: ToolError) -> ToolFailure {
    let code = match &e {
        ToolError::UnknownTool(_) => "UNKNOWN_TOOL",
        ToolError::InvalidArguments(_) => "INVALID_ARGUMENTS",
        ToolError::Unavailable(_) => "UNAVAILABLE",
        ToolError::Timeout(_) => "TIMEOUT",
        ToolError::Failed(_) => "FAILED",
    };
    ToolFailure::new(code, e.to_string())
}

/// The device-context block for this turn, when a connected node shares its location: the
/// device the user is at first, then the others by id. Consent, the read and the audit are the
/// kernel's [`LocationPrompts`]; nothing is read from a device whose sharing is off.
async fn location_context(hub: &Arc<Hub>, session: &str) -> Option<String> {
    let ledger = crate::location_ledger::StoreLedger(hub.store.clone());
    let active = hub.presence_list().active_device_id;
    let mut candidates: Vec<_> = hub
        .nodes()
        .into_iter()
        .filter(|n| {
            n.commands.iter().any(|c| c == LOCATION_GET) && hub.config.commands.allows(LOCATION_GET)
        })
        .collect();
    candidates.sort_by_key(|n| (Some(n.node_id.to_string()) != active, n.node_id.clone()));
    let active_name = candidates
        .iter()
        .find(|n| Some(n.node_id.to_string()) == active)
        .map(|n| n.display_name.clone());
    let prompts = LocationPrompts::new(LocationPolicy::default());
    for node in candidates {
        let sharing = hub.store.location().sharing(&node.node_id).await.ok()?;
        if sharing == perch_store::LocationPrecision::Off {
            continue;
        }
        let target = PromptTarget {
            device_id: node.node_id.clone(),
            device_name: node.display_name.clone(),
            session_key: session.to_string(),
            active_device: active_name.clone(),
        };
        let fetch = || async {
            let params = InvokeParams {
                node_id: node.node_id.to_string(),
                command: LOCATION_GET.to_string(),
                params: None,
                timeout_ms: Some(LOCATION_READ_TIMEOUT_MS),
                idempotency_key: format!("ctx:{}", random_b64(9).unwrap_or_default()),
            };
            let r = crate::invoke::invoke(hub, params)
                .await
                .map_err(|e| e.to_string())?;
            serde_json::from_value::<LocationFix>(r.payload).map_err(|e| e.to_string())
        };
        let read = prompts.read(&ledger, &target, fetch).await;
        if read.block.is_some() {
            return read.block;
        }
    }
    None
}

/// How long a prompt waits for a device's position.
const LOCATION_READ_TIMEOUT_MS: u64 = 5_000;

async fn provider_for(
    hub: &Hub,
    tier: &str,
) -> Result<(Arc<dyn ModelProvider>, String), ErrorShape> {
    let path = hub.config.data_dir.join(crate::config::CONFIG_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(ErrorShape::new(
                ErrorCode::Unavailable,
                format!("cannot read {}: {e}", path.display()),
            ));
        }
    };
    let models = ModelsConfig::from_toml(&text)
        .map_err(|e| ErrorShape::new(ErrorCode::InvalidRequest, e.to_string()))?;
    // The keyring may talk to a D-Bus service: off the async threads.
    let (dir, m, t) = (
        hub.config.data_dir.clone(),
        models.clone(),
        tier.to_string(),
    );
    let resolved =
        tokio::task::spawn_blocking(move || m.resolve(&t, &VaultSources(Vault::new(&dir))))
            .await
            .map_err(|e| ErrorShape::new(ErrorCode::Internal, e.to_string()))?
            .map_err(|e| ErrorShape::new(ErrorCode::CredentialMissing, e.to_string()))?;
    let cfg = &models.tiers[tier];
    let provider: Arc<dyn ModelProvider> = match cfg.provider {
        ProviderKind::Openai => Arc::new(
            OpenAiProvider::new(OpenAiConfig {
                base_url: cfg.base_url.clone(),
                credential: resolved.credential,
                ..Default::default()
            })
            .map_err(|e| ErrorShape::new(ErrorCode::InvalidRequest, e.to_string()))?,
        ),
        ProviderKind::Anthropic => Arc::new(
            AnthropicProvider::new(AnthropicConfig {
                base_url: cfg.base_url.clone(),
                credential: resolved.credential,
                ..Default::default()
            })
            .map_err(|e| ErrorShape::new(ErrorCode::InvalidRequest, e.to_string()))?,
        ),
    };
    Ok((provider, cfg.model.clone()))
}

/// Runs one turn for an operator, streaming `chat` events to it.
pub async fn send(
    hub: &Arc<Hub>,
    caller: &Outbox,
    p: ChatSendParams,
) -> Result<ChatResult, ErrorShape> {
    let session = p.session_key.unwrap_or_else(|| MAIN_SESSION.to_string());
    if !valid_session_key(&session) {
        return Err(ErrorShape::new(
            ErrorCode::InvalidRequest,
            "invalid sessionKey",
        ));
    }
    if p.message.trim().is_empty() {
        return Err(ErrorShape::new(
            ErrorCode::InvalidRequest,
            "the message is empty",
        ));
    }
    let tier = p.tier.unwrap_or_else(|| "default".to_string());
    let turn_id = random_b64(9).map_err(|e| ErrorShape::new(ErrorCode::Internal, e.to_string()))?;
    let turn = TurnGuard::start(hub, &turn_id, &session);
    let result = run_turn(hub, caller, session, &tier, turn_id, &p.message).await;
    turn.end(&result);
    result
}

/// Announces a turn to every operator (`agent.turn`) and counts it in `status`; the end is
/// announced exactly once, also when the caller cancels and the turn's future is dropped.
struct TurnGuard {
    hub: Arc<Hub>,
    turn_id: String,
    session_key: String,
    ended: bool,
}

impl TurnGuard {
    fn start(hub: &Arc<Hub>, turn_id: &str, session_key: &str) -> Self {
        hub.count_turn(true);
        let guard = Self {
            hub: hub.clone(),
            turn_id: turn_id.to_string(),
            session_key: session_key.to_string(),
            ended: false,
        };
        guard.announce(TurnState::Started);
        guard
    }

    fn end(mut self, result: &Result<ChatResult, ErrorShape>) {
        self.ended = true;
        self.hub.count_turn(false);
        self.announce(match result {
            Ok(r) => TurnState::Finished {
                preview: turn_preview(&r.text),
            },
            Err(e) => TurnState::Failed { error: e.clone() },
        });
    }

    fn announce(&self, state: TurnState) {
        self.hub.broadcast_operators(
            AGENT_TURN_EVENT,
            &AgentTurn {
                turn_id: self.turn_id.clone(),
                session_key: self.session_key.clone(),
                state,
                ts: now_ms(),
            },
        );
    }
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        if !self.ended {
            self.hub.count_turn(false);
            self.announce(TurnState::Failed {
                error: ErrorShape::new(ErrorCode::Cancelled, "the turn was cancelled"),
            });
        }
    }
}

/// The turn itself: provider, tools, device context, the agent loop, streamed `chat` events.
async fn run_turn(
    hub: &Arc<Hub>,
    caller: &Outbox,
    session: String,
    tier: &str,
    turn_id: String,
    message: &str,
) -> Result<ChatResult, ErrorShape> {
    let (provider, model) = provider_for(hub, tier).await?;
    let agent = Agent::new(
        provider,
        Arc::new(StoreTranscript(hub.store.clone())),
        AgentConfig {
            model,
            ..Default::default()
        },
    );
    let tools = TurnTools {
        compiled: node_tools(hub),
        session: session.clone(),
        turn: turn_id.clone(),
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let out = caller.clone();
    let tid = turn_id.clone();
    let forward = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            let ev = match ev {
                TurnEvent::TextDelta(text) => ChatEvent::Delta {
                    turn_id: tid.clone(),
                    text,
                },
                TurnEvent::ToolStarted { name, .. } => ChatEvent::Tool {
                    turn_id: tid.clone(),
                    name,
                    state: "started".into(),
                },
                TurnEvent::ToolFinished { name, ok, .. } => ChatEvent::Tool {
                    turn_id: tid.clone(),
                    name,
                    state: if ok { "ok" } else { "failed" }.into(),
                },
            };
            out.event(CHAT_EVENT, &ev);
        }
    });
    let context: Vec<String> = location_context(hub, &session).await.into_iter().collect();
    let result = agent
        .run_turn(&session, &turn_id, message, &context, &tools, &tx)
        .await;
    drop(tx);
    let _ = forward.await;
    match result {
        Ok(o) => Ok(ChatResult {
            session_key: session,
            turn_id,
            text: o.text,
            tool_calls: o.tool_calls,
            input_tokens: o.usage.input_tokens,
            output_tokens: o.usage.output_tokens,
        }),
        Err(TurnError::EmptyMessage) => Err(ErrorShape::new(
            ErrorCode::InvalidRequest,
            "the message is empty",
        )),
        Err(TurnError::Transcript(e)) => {
            tracing::error!(error = %e, "transcript failure");
            Err(
                ErrorShape::new(ErrorCode::Unavailable, "the host's database is unavailable")
                    .with_retryable(true),
            )
        }
        Err(e) => Err(ErrorShape::new(ErrorCode::ModelError, e.to_string())
            .with_details(json!({"turnId": turn_id}))),
    }
}
