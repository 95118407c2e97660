//! Anthropic Messages, streamed.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use eventsource_stream::Event;
use futures_util::stream::BoxStream;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

use super::sse::{self, Decoder, Flow};
use super::{ConfigError, DEFAULT_STALL_TIMEOUT, ModelProvider, ProviderError, http};
use crate::credentials::{Credential, Secret};
use crate::model::{ChatMessage, ModelRequest, StopReason, StreamEvent, ToolCall, Usage};

/// Anthropic's own endpoint, used when no base URL is configured.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The API version this adapter speaks.
pub const API_VERSION: &str = "2023-06-01";
/// The beta flag Anthropic requires with OAuth bearer tokens; added for [`Credential::Bearer`].
pub const OAUTH_BETA: &str = "oauth-2025-04-20";
/// Output cap when the request names none (the Messages API requires one).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// How to reach Anthropic (or a proxy speaking its wire format).
#[derive(Debug, Clone)]
pub struct AnthropicConfig {
    /// Name in errors and logs.
    pub name: String,
    /// Base URL without `/v1`; `None` means [`DEFAULT_BASE_URL`].
    pub base_url: Option<String>,
    /// `ApiKey` goes in `x-api-key`; `Bearer` (an OAuth token, `ANTHROPIC_AUTH_TOKEN`) goes in
    /// `Authorization: Bearer` with the OAuth beta flag; `None` for a proxy that adds its own.
    pub credential: Credential,
    /// Longest silence (before the headers or between chunks) before the call fails as stalled.
    pub stall_timeout: Duration,
    /// `max_tokens` when the request sets none.
    pub default_max_tokens: u32,
    /// Extra `anthropic-beta` flags.
    pub beta: Vec<String>,
}

impl Default for AnthropicConfig {
    fn default() -> Self {
        Self {
            name: "anthropic".into(),
            base_url: None,
            credential: Credential::None,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            default_max_tokens: DEFAULT_MAX_TOKENS,
            beta: Vec::new(),
        }
    }
}

/// A streaming Messages client; cheap to clone.
#[derive(Clone)]
pub struct AnthropicProvider {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: http::Endpoint,
    auth: Option<(HeaderName, HeaderValue)>,
    beta: Option<HeaderValue>,
    default_max_tokens: u32,
}

impl fmt::Debug for AnthropicProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicProvider")
            .field("name", &self.inner.endpoint.name)
            .field("host", &self.inner.endpoint.url.host_str())
            .field(
                "auth",
                &self.inner.auth.as_ref().map(|(name, _)| name.as_str()),
            )
            .finish_non_exhaustive()
    }
}

impl AnthropicProvider {
    /// Checks the configuration and builds the client; nothing is sent until a call.
    pub fn new(config: AnthropicConfig) -> Result<Self, ConfigError> {
        let url = http::endpoint(config.base_url.as_deref(), DEFAULT_BASE_URL, "v1/messages")?;
        let mut beta = config.beta.clone();
        let (auth, secrets) = match &config.credential {
            Credential::ApiKey(s) => (
                Some((
                    HeaderName::from_static("x-api-key"),
                    http::secret_header(s.expose())?,
                )),
                vec![s.clone()],
            ),
            Credential::Bearer(s) => {
                if !beta.iter().any(|b| b == OAUTH_BETA) {
                    beta.push(OAUTH_BETA.into());
                }
                (
                    Some((
                        AUTHORIZATION,
                        http::secret_header(&format!("Bearer {}", s.expose()))?,
                    )),
                    vec![s.clone()],
                )
            }
            Credential::None => (None, Vec::new()),
        };
        let beta = if beta.is_empty() {
            None
        } else {
            Some(HeaderValue::from_str(&beta.join(",")).map_err(|_| ConfigError::InvalidBeta)?)
        };
        Ok(Self {
            inner: Arc::new(Inner {
                endpoint: http::Endpoint::new(config.name, url, secrets, config.stall_timeout)?,
                auth,
                beta,
                default_max_tokens: config.default_max_tokens,
            }),
        })
    }
}

impl ModelProvider for AnthropicProvider {
    fn name(&self) -> &str {
        &self.inner.endpoint.name
    }

    fn stream(
        &self,
        request: ModelRequest,
    ) -> BoxStream<'static, Result<StreamEvent, ProviderError>> {
        let inner = &self.inner;
        let endpoint = &inner.endpoint;
        tracing::debug!(provider = %endpoint.name, model = %request.model, "model call");
        let body = request_body(&request, inner.default_max_tokens);
        let mut builder = endpoint
            .post_sse(&body)
            .header("anthropic-version", API_VERSION);
        if let Some((name, value)) = &inner.auth {
            builder = builder.header(name.clone(), value.clone());
        }
        if let Some(beta) = &inner.beta {
            builder = builder.header("anthropic-beta", beta.clone());
        }
        sse::drive(
            endpoint.call(builder),
            EventDecoder::new(endpoint.name.clone(), endpoint.secrets.clone()),
        )
    }
}

/// The `input` object a past tool call is replayed with. The Messages API needs an object, so
/// empty arguments become `{}` and text that is not a JSON object is kept, as a string, under
/// `_raw_arguments` so the model can still see what it sent.
fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "_raw_arguments": arguments }),
    }
}

/// Maps a kernel request to a Messages body: `system` at the top level, tool results as
/// `tool_result` blocks in user messages, and consecutive same-role messages merged (the API
/// wants user and assistant to alternate).
fn request_body(request: &ModelRequest, default_max_tokens: u32) -> Value {
    let mut messages: Vec<(&str, Vec<Value>)> = Vec::new();
    for message in &request.messages {
        let (role, blocks) = match message {
            ChatMessage::User { text } => (
                "user",
                if text.is_empty() {
                    Vec::new()
                } else {
                    vec![json!({"type": "text", "text": text})]
                },
            ),
            ChatMessage::Assistant { text, tool_calls } => {
                let mut blocks = Vec::with_capacity(tool_calls.len() + 1);
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for call in tool_calls {
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": tool_input(&call.arguments),
                    }));
                }
                ("assistant", blocks)
            }
            ChatMessage::Tool {
                call_id,
                content,
                is_error,
                ..
            } => (
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": call_id,
                    "content": content,
                    "is_error": is_error,
                })],
            ),
        };
        // Empty blocks are rejected by the API; an empty message is dropped.
        if blocks.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some((last_role, last)) if *last_role == role => last.extend(blocks),
            _ => messages.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens.unwrap_or(default_max_tokens),
        "stream": true,
        "messages": messages,
    });
    if let Some(system) = request.system.as_deref().filter(|s| !s.is_empty()) {
        body["system"] = json!(system);
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "description": t.description,
                    "input_schema": t.parameters,
                })
            })
            .collect();
        body["tools"] = Value::Array(tools);
    }
    body
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u32,
        content_block: BlockStart,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: MessageDelta,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Ping,
    Error {
        error: WireError,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockStart {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageDelta {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// All prompt tokens, cached or not.
    fn input(&self) -> Option<u64> {
        let parts = [
            self.input_tokens,
            self.cache_creation_input_tokens,
            self.cache_read_input_tokens,
        ];
        parts
            .iter()
            .any(Option::is_some)
            .then(|| parts.iter().flatten().sum())
    }
}

#[derive(Deserialize)]
struct WireError {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    message: String,
}

enum Block {
    Text,
    Tool {
        id: String,
        name: String,
        json: String,
        initial: Value,
    },
    Other,
}

/// Assembles Messages events into kernel events: text as it comes, each tool call when its
/// block closes, then usage and the finish at `message_stop`.
struct EventDecoder {
    provider: Arc<str>,
    secrets: Arc<[Secret]>,
    blocks: BTreeMap<u32, Block>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    any_tool_call: bool,
    stop: Option<StopReason>,
}

impl EventDecoder {
    fn new(provider: Arc<str>, secrets: Arc<[Secret]>) -> Self {
        Self {
            provider,
            secrets,
            blocks: BTreeMap::new(),
            input_tokens: None,
            output_tokens: None,
            any_tool_call: false,
            stop: None,
        }
    }

    fn close_block(&mut self, index: u32, out: &mut VecDeque<StreamEvent>) {
        if let Some(Block::Tool {
            id,
            name,
            json,
            initial,
        }) = self.blocks.remove(&index)
        {
            let arguments = if !json.is_empty() {
                json
            } else if initial.as_object().is_some_and(|o| !o.is_empty()) {
                initial.to_string()
            } else {
                "{}".to_owned()
            };
            self.any_tool_call = true;
            out.push_back(StreamEvent::ToolCall(ToolCall {
                id,
                name,
                arguments,
            }));
        }
    }
}

impl Decoder for EventDecoder {
    fn on_event(
        &mut self,
        event: &Event,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<Flow, ProviderError> {
        if event.data.trim().is_empty() {
            return Ok(Flow::Continue);
        }
        let wire: WireEvent = serde_json::from_str(&event.data).map_err(|e| {
            sse::malformed(
                &self.provider,
                format!("a {:?} event is not valid JSON: {e}", event.event),
            )
        })?;
        match wire {
            WireEvent::MessageStart { message } => {
                if let Some(usage) = message.usage {
                    self.input_tokens = usage.input().or(self.input_tokens);
                    self.output_tokens = usage.output_tokens.or(self.output_tokens);
                }
            }
            WireEvent::ContentBlockStart {
                index,
                content_block,
            } => {
                let block = match content_block {
                    BlockStart::Text { text } => {
                        if !text.is_empty() {
                            out.push_back(StreamEvent::TextDelta(text));
                        }
                        Block::Text
                    }
                    BlockStart::ToolUse { id, name, input } => Block::Tool {
                        id,
                        name,
                        json: String::new(),
                        initial: input,
                    },
                    BlockStart::Other => Block::Other,
                };
                self.blocks.insert(index, block);
            }
            WireEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => {
                    if !text.is_empty() {
                        out.push_back(StreamEvent::TextDelta(text));
                    }
                }
                BlockDelta::InputJsonDelta { partial_json } => match self.blocks.get_mut(&index) {
                    Some(Block::Tool { json, .. }) => json.push_str(&partial_json),
                    _ => {
                        return Err(sse::malformed(
                            &self.provider,
                            format!("input_json_delta for block {index}, which is not a tool_use"),
                        ));
                    }
                },
                BlockDelta::Other => {}
            },
            WireEvent::ContentBlockStop { index } => self.close_block(index, out),
            WireEvent::MessageDelta { delta, usage } => {
                if let Some(usage) = usage {
                    // Counts in message_delta are cumulative.
                    self.input_tokens = usage.input().or(self.input_tokens);
                    self.output_tokens = usage.output_tokens.or(self.output_tokens);
                }
                if let Some(reason) = delta.stop_reason {
                    self.stop = Some(match reason.as_str() {
                        "end_turn" | "stop_sequence" => StopReason::EndTurn,
                        "tool_use" => StopReason::ToolUse,
                        "max_tokens" => StopReason::MaxTokens,
                        _ => StopReason::Other(reason),
                    });
                }
            }
            WireEvent::MessageStop => {
                self.finish(out);
                return Ok(Flow::Done);
            }
            WireEvent::Ping | WireEvent::Unknown => {}
            WireEvent::Error { error } => {
                return Err(http::stream_error(
                    &self.provider,
                    &error.kind,
                    None,
                    if error.message.is_empty() {
                        "error in the stream"
                    } else {
                        &error.message
                    },
                    &self.secrets,
                ));
            }
        }
        Ok(Flow::Continue)
    }

    fn stopped(&self) -> bool {
        self.stop.is_some()
    }

    fn finish(&mut self, out: &mut VecDeque<StreamEvent>) {
        // Blocks left open are closed: their content is all there will be.
        let open: Vec<u32> = self.blocks.keys().copied().collect();
        for index in open {
            self.close_block(index, out);
        }
        let stop = match self.stop.take() {
            Some(s) => s,
            None if self.any_tool_call => StopReason::ToolUse,
            None => StopReason::EndTurn,
        };
        if self.input_tokens.is_some() || self.output_tokens.is_some() {
            out.push_back(StreamEvent::Usage(Usage {
                input_tokens: self.input_tokens.unwrap_or(0),
                output_tokens: self.output_tokens.unwrap_or(0),
            }));
        }
        out.push_back(StreamEvent::Finished(stop));
    }

    fn provider(&self) -> &str {
        &self.provider
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ToolSpec;

    #[test]
    fn maps_system_tools_and_merges_tool_results() {
        let call = |id: &str, args: &str| ToolCall {
            id: id.into(),
            name: "t".into(),
            arguments: args.into(),
        };
        let result = |id: &str| ChatMessage::Tool {
            call_id: id.into(),
            name: "t".into(),
            content: "ok".into(),
            is_error: false,
        };
        let request = ModelRequest {
            model: "m".into(),
            system: Some("sys".into()),
            messages: vec![
                ChatMessage::User { text: "hi".into() },
                ChatMessage::Assistant {
                    text: "let me look".into(),
                    tool_calls: vec![call("a", ""), call("b", "{not json")],
                },
                result("a"),
                result("b"),
            ],
            tools: vec![ToolSpec {
                name: "t".into(),
                description: "d".into(),
                parameters: json!({"type": "object"}),
            }],
            max_tokens: None,
        };
        let body = request_body(&request, 4096);
        assert_eq!(body["system"], "sys");
        assert_eq!(body["max_tokens"], 4096);
        assert_eq!(body["tools"][0]["input_schema"], json!({"type": "object"}));
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1]["content"][1]["input"], json!({}));
        assert_eq!(
            messages[1]["content"][2]["input"],
            json!({"_raw_arguments": "{not json"})
        );
        assert_eq!(messages[2]["role"], "user");
        assert_eq!(messages[2]["content"].as_array().unwrap().len(), 2);
        assert_eq!(messages[2]["content"][1]["tool_use_id"], "b");
    }
}
