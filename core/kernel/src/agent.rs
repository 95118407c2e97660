//! The agent loop: one user message in, model calls and tool calls until the model answers,
//! streamed out as events, and the whole turn written to the transcript at once.
//!
//! Every failure is a clear error in the turn and the transcript stays consistent: a turn that
//! fails is written as the user's message plus an error row, so the session can go on.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::model::{ChatMessage, ModelRequest, StopReason, StreamEvent, ToolCall, ToolSpec, Usage};
use crate::pipeline::{
    ContextBlock, ContextPayload, EgressPayload, IngressPayload, ModelCallPayload, Pipeline, Stage,
    StagePayload, ToolCallPayload, ToolResultPayload, TranscriptPayload, Trust, Turn,
};
use crate::provider::{ModelProvider, ProviderError};

/// Why a tool call failed; fed back to the model as an error result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ToolFailure {
    /// Stable code, for example `NODE_NOT_CONNECTED` or `INVALID_ARGUMENTS`.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

impl ToolFailure {
    /// A failure with a code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The tools a turn may use; the capability catalog implements this.
pub trait Toolbox: Send + Sync {
    /// The tools as the model sees them.
    fn specs(&self) -> Vec<ToolSpec>;
    /// Runs one tool; `None` when no tool has that name. `call_id` is the model's id for this
    /// call, unique within the turn, so executors can key side effects (idempotency) on it.
    fn call(
        &self,
        call_id: &str,
        name: &str,
        arguments: Value,
    ) -> Option<BoxFuture<'static, Result<Value, ToolFailure>>>;
}

/// One message as the transcript keeps it, with token counts for model messages.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnRecord {
    /// A conversation message.
    Message {
        /// The message.
        message: ChatMessage,
        /// Tokens of the model call that produced it (assistant messages).
        usage: Option<Usage>,
    },
    /// The turn failed here, and why.
    Error(String),
}

/// Where turns are kept; the host implements it over the store.
pub trait Transcript: Send + Sync {
    /// The latest messages of a session, oldest first (error rows left out).
    fn history(&self, session: &str, limit: u32)
    -> BoxFuture<'_, Result<Vec<ChatMessage>, String>>;
    /// Writes one turn, all of it or nothing.
    fn append(
        &self,
        session: &str,
        turn_id: &str,
        records: Vec<TurnRecord>,
    ) -> BoxFuture<'_, Result<(), String>>;
}

/// What a running turn reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnEvent {
    /// More answer text.
    TextDelta(String),
    /// A tool is about to run.
    ToolStarted {
        /// The call id.
        call_id: String,
        /// The tool.
        name: String,
    },
    /// A tool finished.
    ToolFinished {
        /// The call id.
        call_id: String,
        /// The tool.
        name: String,
        /// Whether it succeeded.
        ok: bool,
    },
}

/// Why a turn failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TurnError {
    /// The model call failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The model kept calling tools past the step limit.
    #[error("the model kept calling tools for {0} steps without answering; stopped")]
    TooManySteps(u32),
    /// The transcript could not be read or written.
    #[error("transcript: {0}")]
    Transcript(String),
    /// The message is empty.
    #[error("the message is empty")]
    EmptyMessage,
    /// A pipeline handler stopped the turn.
    #[error("stopped at {stage} by {handler}: {reason}")]
    Cancelled {
        /// The stage.
        stage: &'static str,
        /// The handler.
        handler: String,
        /// Its reason.
        reason: String,
    },
}

/// How turns run.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The model name.
    pub model: String,
    /// The system prompt.
    pub system_prompt: String,
    /// Most model calls in one turn.
    pub max_steps: u32,
    /// Deadline for one tool call.
    pub tool_timeout: Duration,
    /// Messages of history sent with each turn.
    pub history_limit: u32,
    /// How often a rate-limited call is retried (after the provider's `retry-after`).
    pub rate_limit_retries: u32,
    /// Longest `retry-after` the loop waits for; longer ones fail the turn.
    pub max_retry_wait: Duration,
    /// Output token cap per call.
    pub max_tokens: Option<u32>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            model: String::new(),
            system_prompt: "You are Perch, a personal assistant. Use the tools to act on the user's devices when it helps; say so when a device cannot be reached.".into(),
            max_steps: 8,
            tool_timeout: Duration::from_secs(30),
            history_limit: 50,
            rate_limit_retries: 1,
            max_retry_wait: Duration::from_secs(30),
            max_tokens: None,
        }
    }
}

/// What a finished turn produced.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnOutcome {
    /// The final answer text.
    pub text: String,
    /// Tokens over all model calls of the turn.
    pub usage: Usage,
    /// Tool calls made.
    pub tool_calls: u32,
}

/// Runs turns against one provider.
pub struct Agent {
    provider: Arc<dyn ModelProvider>,
    transcript: Arc<dyn Transcript>,
    config: AgentConfig,
    pipeline: Arc<Pipeline>,
}

struct ModelAnswer {
    text: String,
    tool_calls: Vec<ToolCall>,
    usage: Usage,
    stop: StopReason,
}

impl Agent {
    /// An agent over a provider and a transcript.
    pub fn new(
        provider: Arc<dyn ModelProvider>,
        transcript: Arc<dyn Transcript>,
        config: AgentConfig,
    ) -> Self {
        Self {
            provider,
            transcript,
            config,
            pipeline: Arc::new(Pipeline::default()),
        }
    }

    /// Runs every turn through `pipeline`'s handlers (observers, decisions, hot path).
    pub fn with_pipeline(mut self, pipeline: Arc<Pipeline>) -> Self {
        self.pipeline = pipeline;
        self
    }

    /// Runs one turn: the user's `text` (with `context` blocks added to the system prompt, for
    /// example the device-context block) through model and tool calls until the model answers.
    pub async fn run_turn(
        &self,
        session: &str,
        turn_id: &str,
        text: &str,
        context: &[String],
        tools: &dyn Toolbox,
        events: &mpsc::UnboundedSender<TurnEvent>,
    ) -> Result<TurnOutcome, TurnError> {
        if text.trim().is_empty() {
            return Err(TurnError::EmptyMessage);
        }
        let mut turn = self.pipeline.begin_turn(session, turn_id);
        let ingress = |text: &str| {
            StagePayload::Ingress(IngressPayload {
                channel: "operator".into(),
                sender: None,
                text: text.to_string(),
            })
        };
        emit(&mut turn, Stage::IngressReceived, ingress(text)).await?;
        let text = match emit(&mut turn, Stage::IngressNormalized, ingress(text)).await? {
            StagePayload::Ingress(i) => i.text,
            _ => text.to_string(),
        };
        let blocks = context
            .iter()
            .map(|c| ContextBlock {
                source: "host".into(),
                label: "device context".into(),
                trust: Trust::Untrusted,
                text: c.clone(),
            })
            .collect();
        let assembled = emit(
            &mut turn,
            Stage::ContextAssembling,
            StagePayload::Context(ContextPayload { blocks }),
        )
        .await?;
        let context: Vec<String> = match assembled {
            StagePayload::Context(c) => c.blocks.into_iter().map(|b| b.text).collect(),
            _ => Vec::new(),
        };
        let history = self
            .transcript
            .history(session, self.config.history_limit)
            .await
            .map_err(TurnError::Transcript)?;
        let user = ChatMessage::User { text };
        let mut records = vec![TurnRecord::Message {
            message: user.clone(),
            usage: None,
        }];
        let mut result = self
            .steps(
                &mut turn,
                history,
                user,
                &context,
                tools,
                events,
                &mut records,
            )
            .await;
        if let Ok(outcome) = &mut result {
            let egress = StagePayload::Egress(EgressPayload {
                channel: "operator".into(),
                text: outcome.text.clone(),
            });
            match emit(&mut turn, Stage::EgressPreparing, egress).await {
                Ok(StagePayload::Egress(e)) => outcome.text = e.text,
                Ok(_) => {}
                Err(e) => result = Err(e),
            }
        }
        if let Err(e) = &result {
            records.push(TurnRecord::Error(e.to_string()));
        }
        for r in &records {
            if let TurnRecord::Message { message, .. } = r {
                let payload = StagePayload::Transcript(TranscriptPayload {
                    message: message.clone(),
                });
                if let Err(e) = turn.emit(Stage::TranscriptWrite, payload).await {
                    tracing::warn!(error = %e, "transcript stage failed");
                }
            }
        }
        self.transcript
            .append(session, turn_id, records)
            .await
            .map_err(TurnError::Transcript)?;
        if let Ok(outcome) = &result {
            let sent = StagePayload::Egress(EgressPayload {
                channel: "operator".into(),
                text: outcome.text.clone(),
            });
            let _ = turn.emit(Stage::EgressSent, sent).await;
        }
        for d in &turn.finish().diagnostics {
            tracing::warn!(handler = %d.handler_id, stage = d.stage.as_str(), kind = ?d.kind, "pipeline handler diagnostic");
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn steps(
        &self,
        turn: &mut Turn,
        history: Vec<ChatMessage>,
        user: ChatMessage,
        context: &[String],
        tools: &dyn Toolbox,
        events: &mpsc::UnboundedSender<TurnEvent>,
        records: &mut Vec<TurnRecord>,
    ) -> Result<TurnOutcome, TurnError> {
        let mut system = self.config.system_prompt.clone();
        for block in context {
            system.push_str("\n\n");
            system.push_str(block);
        }
        let mut messages = history;
        messages.push(user);
        let specs = tools.specs();
        let mut total = Usage::default();
        let mut calls_made = 0u32;
        let mut first = true;
        for _ in 0..self.config.max_steps {
            let mut request = ModelRequest {
                model: self.config.model.clone(),
                system: Some(system.clone()),
                messages: messages.clone(),
                tools: specs.clone(),
                max_tokens: self.config.max_tokens,
            };
            if first {
                if let StagePayload::Prompt(r) = emit(
                    turn,
                    Stage::PromptBuilt,
                    StagePayload::Prompt(request.clone()),
                )
                .await?
                {
                    request = r;
                }
                first = false;
            }
            let call = StagePayload::ModelCall(ModelCallPayload {
                provider: self.provider.name().to_string(),
                request: request.clone(),
            });
            if let StagePayload::ModelCall(c) = emit(turn, Stage::ModelRequest, call).await? {
                request = c.request;
            }
            let answer = self.call_model(request, events).await?;
            total.input_tokens += answer.usage.input_tokens;
            total.output_tokens += answer.usage.output_tokens;
            let assistant = ChatMessage::Assistant {
                text: answer.text.clone(),
                tool_calls: answer.tool_calls.clone(),
            };
            messages.push(assistant.clone());
            records.push(TurnRecord::Message {
                message: assistant,
                usage: Some(answer.usage),
            });
            if answer.tool_calls.is_empty()
                || answer.stop != StopReason::ToolUse && answer.tool_calls.is_empty()
            {
                return Ok(TurnOutcome {
                    text: answer.text,
                    usage: total,
                    tool_calls: calls_made,
                });
            }
            for mut call in answer.tool_calls {
                calls_made += 1;
                // Decision handlers may rewrite the arguments or block the call.
                let parsed: Value =
                    serde_json::from_str(call.arguments.trim()).unwrap_or(Value::Null);
                let before = StagePayload::ToolCall(ToolCallPayload {
                    call_id: call.id.clone(),
                    tool: call.name.clone(),
                    arguments: parsed.clone(),
                });
                let outcome = turn
                    .emit(Stage::ToolCallBefore, before)
                    .await
                    .map_err(|e| TurnError::Transcript(e.to_string()))?;
                let result = if let Some(c) = &outcome.cancelled {
                    Err(ToolFailure::new(
                        "CANCELLED",
                        format!("blocked by {}: {}", c.handler_id, c.reason),
                    ))
                } else {
                    if let StagePayload::ToolCall(t) = outcome.into_payload()
                        && t.arguments != parsed
                    {
                        call.arguments = t.arguments.to_string();
                    }
                    self.run_tool(&call, tools, events).await
                };
                let after = StagePayload::ToolResult(ToolResultPayload {
                    call_id: call.id.clone(),
                    tool: call.name.clone(),
                    output: match &result {
                        Ok(v) => v.clone(),
                        Err(f) => Value::String(f.to_string()),
                    },
                    is_error: result.is_err(),
                });
                let result = match turn.emit(Stage::ToolCallAfter, after.clone()).await {
                    // Unchanged by the handlers: the original result, code and all.
                    Ok(o) if !o.is_cancelled() => match o.into_payload() {
                        p if p == after => result,
                        StagePayload::ToolResult(r) if r.is_error => {
                            let message = r
                                .output
                                .as_str()
                                .map(String::from)
                                .unwrap_or_else(|| r.output.to_string());
                            // A handler rewrote the error text: keep the failure's code once.
                            let code = match &result {
                                Err(f) => f.code.clone(),
                                Ok(_) => "FAILED".to_string(),
                            };
                            let prefix = format!("{code}: ");
                            let message = message
                                .strip_prefix(&prefix)
                                .map(String::from)
                                .unwrap_or(message);
                            Err(ToolFailure::new(code, message))
                        }
                        StagePayload::ToolResult(r) => Ok(r.output),
                        _ => result,
                    },
                    _ => result,
                };
                let message = match result {
                    Ok(v) => ChatMessage::Tool {
                        call_id: call.id.clone(),
                        name: call.name.clone(),
                        // A string result is already the text the model reads (a fenced
                        // node result, see `untrusted`); anything else goes as JSON.
                        content: match v {
                            Value::String(text) => text,
                            v => v.to_string(),
                        },
                        is_error: false,
                    },
                    Err(f) => ChatMessage::Tool {
                        call_id: call.id.clone(),
                        name: call.name.clone(),
                        content: f.to_string(),
                        is_error: true,
                    },
                };
                messages.push(message.clone());
                records.push(TurnRecord::Message {
                    message,
                    usage: None,
                });
            }
        }
        Err(TurnError::TooManySteps(self.config.max_steps))
    }

    /// One model call, retried after a rate limit when the provider says how long to wait.
    async fn call_model(
        &self,
        request: ModelRequest,
        events: &mpsc::UnboundedSender<TurnEvent>,
    ) -> Result<ModelAnswer, TurnError> {
        let mut retries = 0;
        loop {
            match self.stream_once(request.clone(), events).await {
                Err(ProviderError::RateLimited {
                    retry_after_ms,
                    provider,
                }) if retries < self.config.rate_limit_retries => {
                    let wait = Duration::from_millis(retry_after_ms.unwrap_or(1000));
                    if wait > self.config.max_retry_wait {
                        return Err(ProviderError::RateLimited {
                            provider,
                            retry_after_ms,
                        }
                        .into());
                    }
                    tracing::info!(
                        wait_ms = wait.as_millis() as u64,
                        "rate limited; retrying once the provider allows"
                    );
                    tokio::time::sleep(wait).await;
                    retries += 1;
                }
                other => return other.map_err(Into::into),
            }
        }
    }

    async fn stream_once(
        &self,
        request: ModelRequest,
        events: &mpsc::UnboundedSender<TurnEvent>,
    ) -> Result<ModelAnswer, ProviderError> {
        let mut stream = self.provider.stream(request);
        let mut answer = ModelAnswer {
            text: String::new(),
            tool_calls: Vec::new(),
            usage: Usage::default(),
            stop: StopReason::EndTurn,
        };
        while let Some(event) = stream.next().await {
            match event? {
                StreamEvent::TextDelta(t) => {
                    let _ = events.send(TurnEvent::TextDelta(t.clone()));
                    answer.text.push_str(&t);
                }
                StreamEvent::ToolCall(c) => answer.tool_calls.push(c),
                StreamEvent::Usage(u) => answer.usage = u,
                StreamEvent::Finished(reason) => {
                    answer.stop = reason;
                    return Ok(answer);
                }
            }
        }
        Err(ProviderError::MalformedStream {
            provider: self.provider.name().to_string(),
            detail: "the stream ended without a finish".into(),
        })
    }

    /// Runs one tool call; malformed arguments and unknown tools are errors for the model to
    /// read, not failures of the turn.
    async fn run_tool(
        &self,
        call: &ToolCall,
        tools: &dyn Toolbox,
        events: &mpsc::UnboundedSender<TurnEvent>,
    ) -> Result<Value, ToolFailure> {
        let _ = events.send(TurnEvent::ToolStarted {
            call_id: call.id.clone(),
            name: call.name.clone(),
        });
        let result = async {
            let raw = call.arguments.trim();
            let args: Value = if raw.is_empty() {
                Value::Object(Default::default())
            } else {
                serde_json::from_str(raw).map_err(|e| {
                    ToolFailure::new(
                        "INVALID_ARGUMENTS",
                        format!("the arguments are not valid JSON ({e}); send a JSON object"),
                    )
                })?
            };
            let Some(fut) = tools.call(&call.id, &call.name, args) else {
                return Err(ToolFailure::new(
                    "UNKNOWN_TOOL",
                    format!("there is no tool named {:?}", call.name),
                ));
            };
            match tokio::time::timeout(self.config.tool_timeout, fut).await {
                Ok(r) => r,
                Err(_) => Err(ToolFailure::new(
                    "TIMEOUT",
                    format!(
                        "the tool did not finish within {} s",
                        self.config.tool_timeout.as_secs()
                    ),
                )),
            }
        }
        .await;
        let _ = events.send(TurnEvent::ToolFinished {
            call_id: call.id.clone(),
            name: call.name.clone(),
            ok: result.is_ok(),
        });
        result
    }
}

/// Emits a stage and returns its (possibly rewritten) payload; a cancel ends the turn.
async fn emit(
    turn: &mut Turn,
    stage: Stage,
    payload: StagePayload,
) -> Result<StagePayload, TurnError> {
    let outcome = turn
        .emit(stage, payload)
        .await
        .map_err(|e| TurnError::Transcript(format!("pipeline: {e}")))?;
    if let Some(c) = &outcome.cancelled {
        return Err(TurnError::Cancelled {
            stage: stage.as_str(),
            handler: c.handler_id.clone(),
            reason: c.reason.clone(),
        });
    }
    Ok(outcome.into_payload())
}
