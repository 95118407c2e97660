//! OpenAI Chat Completions, streamed. The same adapter serves every OpenAI-compatible server
//! (Ollama, vLLM, LM Studio, Vercel AI Gateway, Moonshot, MiniMax) through `base_url`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use eventsource_stream::Event;
use futures_util::stream::BoxStream;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

use super::sse::{self, Decoder, Flow};
use super::{ConfigError, DEFAULT_STALL_TIMEOUT, ModelProvider, ProviderError, http};
use crate::credentials::{Credential, Secret};
use crate::model::{ChatMessage, ModelRequest, StopReason, StreamEvent, ToolCall, Usage};

/// OpenAI's own endpoint, used when no base URL is configured.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// Which request field carries [`ModelRequest::max_tokens`]: OpenAI's reasoning models accept
/// only `max_completion_tokens`, while many compatible servers know only `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxTokensParam {
    /// `max_completion_tokens` for OpenAI's own endpoint, `max_tokens` for any other base URL.
    #[default]
    Auto,
    /// Always `max_tokens`.
    MaxTokens,
    /// Always `max_completion_tokens`.
    MaxCompletionTokens,
}

/// How to reach one OpenAI-compatible server.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Name in errors and logs, so an Ollama tier's failure does not say "openai".
    pub name: String,
    /// Base URL up to and including `/v1`; `None` means [`DEFAULT_BASE_URL`].
    pub base_url: Option<String>,
    /// Sent as `Authorization: Bearer` (API key or token alike); `Credential::None` for local
    /// servers that need none.
    pub credential: Credential,
    /// Longest silence (before the headers or between chunks) before the call fails as stalled.
    pub stall_timeout: Duration,
    /// Which field caps output tokens.
    pub max_tokens_param: MaxTokensParam,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self {
            name: "openai".into(),
            base_url: None,
            credential: Credential::None,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            max_tokens_param: MaxTokensParam::Auto,
        }
    }
}

/// A streaming Chat Completions client; cheap to clone.
#[derive(Clone)]
pub struct OpenAiProvider {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: http::Endpoint,
    authorization: Option<HeaderValue>,
    max_tokens_field: &'static str,
}

impl fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("name", &self.inner.endpoint.name)
            .field("host", &self.inner.endpoint.url.host_str())
            .field("authenticated", &self.inner.authorization.is_some())
            .finish_non_exhaustive()
    }
}

impl OpenAiProvider {
    /// Checks the configuration and builds the client; nothing is sent until a call.
    pub fn new(config: OpenAiConfig) -> Result<Self, ConfigError> {
        let url = http::endpoint(
            config.base_url.as_deref(),
            DEFAULT_BASE_URL,
            "chat/completions",
        )?;
        let (authorization, secrets) = match &config.credential {
            Credential::ApiKey(s) | Credential::Bearer(s) => (
                Some(http::secret_header(&format!("Bearer {}", s.expose()))?),
                vec![s.clone()],
            ),
            Credential::None => (None, Vec::new()),
        };
        let max_tokens_field = match config.max_tokens_param {
            MaxTokensParam::MaxTokens => "max_tokens",
            MaxTokensParam::MaxCompletionTokens => "max_completion_tokens",
            MaxTokensParam::Auto if url.host_str() == Some("api.openai.com") => {
                "max_completion_tokens"
            }
            MaxTokensParam::Auto => "max_tokens",
        };
        Ok(Self {
            inner: Arc::new(Inner {
                endpoint: http::Endpoint::new(config.name, url, secrets, config.stall_timeout)?,
                authorization,
                max_tokens_field,
            }),
        })
    }
}

impl ModelProvider for OpenAiProvider {
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
        let body = request_body(&request, inner.max_tokens_field);
        let mut builder = endpoint.post_sse(&body);
        if let Some(auth) = &inner.authorization {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        sse::drive(
            endpoint.call(builder),
            ChunkDecoder::new(endpoint.name.clone(), endpoint.secrets.clone()),
        )
    }
}

/// Maps a kernel request to a Chat Completions body. Tool results the kernel marked as errors
/// are prefixed with `error: `, since this wire format has no error flag.
fn request_body(request: &ModelRequest, max_tokens_field: &str) -> Value {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = request.system.as_deref().filter(|s| !s.is_empty()) {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in &request.messages {
        messages.push(match message {
            ChatMessage::User { text } => json!({"role": "user", "content": text}),
            ChatMessage::Assistant { text, tool_calls } if tool_calls.is_empty() => {
                json!({"role": "assistant", "content": text})
            }
            ChatMessage::Assistant { text, tool_calls } => {
                let calls: Vec<Value> = tool_calls
                    .iter()
                    .map(|c| {
                        json!({
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments},
                        })
                    })
                    .collect();
                let content = if text.is_empty() {
                    Value::Null
                } else {
                    Value::String(text.clone())
                };
                json!({"role": "assistant", "content": content, "tool_calls": calls})
            }
            ChatMessage::Tool {
                call_id,
                content,
                is_error,
                ..
            } => {
                let content = if *is_error {
                    format!("error: {content}")
                } else {
                    content.clone()
                };
                json!({"role": "tool", "tool_call_id": call_id, "content": content})
            }
        });
    }
    let mut body = json!({
        "model": request.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                json!({
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                })
            })
            .collect();
        body["tools"] = Value::Array(tools);
    }
    if let Some(max) = request.max_tokens {
        body[max_tokens_field] = json!(max);
    }
    body
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    /// A string fragment; some compatible servers send a whole JSON object instead.
    #[serde(default)]
    arguments: Option<Value>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<Value>,
}

#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Assembles Chat Completions chunks into kernel events: text as it comes, tool calls whole
/// once the model finishes, then usage, then the finish.
struct ChunkDecoder {
    provider: Arc<str>,
    secrets: Arc<[Secret]>,
    calls: BTreeMap<u32, PartialCall>,
    last_call: Option<u32>,
    any_tool_call: bool,
    stop: Option<StopReason>,
    usage: Option<Usage>,
}

impl ChunkDecoder {
    fn new(provider: Arc<str>, secrets: Arc<[Secret]>) -> Self {
        Self {
            provider,
            secrets,
            calls: BTreeMap::new(),
            last_call: None,
            any_tool_call: false,
            stop: None,
            usage: None,
        }
    }

    fn add_fragment(&mut self, delta: ToolCallDelta) {
        // Servers that omit `index` send each call whole: a new id starts a new call.
        let index = delta
            .index
            .unwrap_or_else(|| match (&delta.id, self.last_call) {
                (Some(id), _) if !self.calls.values().any(|c| &c.id == id) => {
                    self.calls.keys().next_back().map_or(0, |k| k + 1)
                }
                (_, Some(last)) => last,
                (_, None) => 0,
            });
        self.last_call = Some(index);
        let call = self.calls.entry(index).or_default();
        if let Some(id) = delta.id.filter(|id| !id.is_empty()) {
            call.id = id;
        }
        if let Some(f) = delta.function {
            if let Some(name) = f.name.filter(|n| !n.is_empty()) {
                call.name = name;
            }
            match f.arguments {
                Some(Value::String(s)) => call.arguments.push_str(&s),
                Some(Value::Null) | None => {}
                Some(other) => call.arguments.push_str(&other.to_string()),
            }
        }
    }

    /// Emits the assembled tool calls in index order. Arguments stay raw text (invalid JSON is
    /// the kernel's to judge); only empty text becomes `{}`.
    fn flush_calls(&mut self, out: &mut VecDeque<StreamEvent>) {
        for (index, call) in std::mem::take(&mut self.calls) {
            self.any_tool_call = true;
            out.push_back(StreamEvent::ToolCall(ToolCall {
                id: if call.id.is_empty() {
                    format!("call_{index}")
                } else {
                    call.id
                },
                name: call.name,
                // No argument text means no arguments, as the Anthropic adapter reports it.
                arguments: if call.arguments.trim().is_empty() {
                    "{}".to_owned()
                } else {
                    call.arguments
                },
            }));
        }
        self.last_call = None;
    }
}

impl Decoder for ChunkDecoder {
    fn on_event(
        &mut self,
        event: &Event,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<Flow, ProviderError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.finish(out);
            return Ok(Flow::Done);
        }
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| {
            sse::malformed(&self.provider, format!("a chunk is not valid JSON: {e}"))
        })?;
        if let Some(err) = chunk.error {
            let code = match &err.code {
                Some(Value::Number(n)) => n.as_u64().and_then(|c| u16::try_from(c).ok()),
                Some(Value::String(s)) => s.parse().ok(),
                _ => None,
            };
            let kind = err.kind.or_else(|| match err.code {
                Some(Value::String(s)) if s.parse::<u16>().is_err() => Some(s),
                _ => None,
            });
            return Err(http::stream_error(
                &self.provider,
                kind.as_deref().unwrap_or(""),
                code,
                err.message.as_deref().unwrap_or("error in the stream"),
                &self.secrets,
            ));
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(Usage {
                input_tokens: u.prompt_tokens,
                output_tokens: u.completion_tokens,
            });
        }
        // Only the first choice: the kernel never asks for n > 1.
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    out.push_back(StreamEvent::TextDelta(text));
                }
                for fragment in delta.tool_calls.unwrap_or_default() {
                    self.add_fragment(fragment);
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.flush_calls(out);
                self.stop = Some(match reason.as_str() {
                    "stop" => StopReason::EndTurn,
                    "tool_calls" | "function_call" => StopReason::ToolUse,
                    "length" => StopReason::MaxTokens,
                    _ => StopReason::Other(reason),
                });
            }
        }
        Ok(Flow::Continue)
    }

    fn stopped(&self) -> bool {
        self.stop.is_some()
    }

    fn finish(&mut self, out: &mut VecDeque<StreamEvent>) {
        self.flush_calls(out);
        let stop = match self.stop.take() {
            // Some servers say `stop` even when the turn is tool calls.
            Some(StopReason::EndTurn) | None if self.any_tool_call => StopReason::ToolUse,
            Some(s) => s,
            None => StopReason::EndTurn,
        };
        if let Some(usage) = self.usage.take() {
            out.push_back(StreamEvent::Usage(usage));
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
    fn maps_messages_tools_and_limits() {
        let request = ModelRequest {
            model: "m".into(),
            system: Some("be brief".into()),
            messages: vec![
                ChatMessage::User { text: "hi".into() },
                ChatMessage::Assistant {
                    text: String::new(),
                    tool_calls: vec![ToolCall {
                        id: "c1".into(),
                        name: "t".into(),
                        arguments: "{\"a\":1}".into(),
                    }],
                },
                ChatMessage::Tool {
                    call_id: "c1".into(),
                    name: "t".into(),
                    content: "boom".into(),
                    is_error: true,
                },
            ],
            tools: vec![ToolSpec {
                name: "t".into(),
                description: "d".into(),
                parameters: json!({"type": "object"}),
            }],
            max_tokens: Some(10),
        };
        let body = request_body(&request, "max_tokens");
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(body["messages"][2]["content"], Value::Null);
        assert_eq!(
            body["messages"][2]["tool_calls"][0]["function"]["arguments"],
            "{\"a\":1}"
        );
        assert_eq!(body["messages"][3]["content"], "error: boom");
        assert_eq!(body["tools"][0]["function"]["name"], "t");
        assert_eq!(body["max_tokens"], 10);
        assert_eq!(body["stream_options"]["include_usage"], true);
    }

    #[test]
    fn calls_without_index_are_split_by_id() {
        let mut d = ChunkDecoder::new("x".into(), Arc::from(Vec::new()));
        for (id, name, args) in [("a", "one", "{}"), ("b", "two", "{\"k\":")] {
            d.add_fragment(ToolCallDelta {
                index: None,
                id: Some(id.into()),
                function: Some(FunctionDelta {
                    name: Some(name.into()),
                    arguments: Some(Value::String(args.into())),
                }),
            });
        }
        d.add_fragment(ToolCallDelta {
            index: None,
            id: None,
            function: Some(FunctionDelta {
                name: None,
                arguments: Some(Value::String("2}".into())),
            }),
        });
        let mut out = VecDeque::new();
        d.finish(&mut out);
        let calls: Vec<_> = out
            .into_iter()
            .filter_map(|e| match e {
                StreamEvent::ToolCall(c) => Some((c.id, c.name, c.arguments)),
                _ => None,
            })
            .collect();
        assert_eq!(
            calls,
            vec![
                ("a".into(), "one".into(), "{}".into()),
                ("b".into(), "two".into(), "{\"k\":2}".into())
            ]
        );
    }
}
