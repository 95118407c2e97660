//! A fake model server on 127.0.0.1 that speaks the real OpenAI Chat Completions and Anthropic
//! Messages wire formats over HTTP with streaming SSE. Tests queue replies in wire-neutral
//! terms ([`Script`], [`Reply`]); whichever route is hit renders the next one in its own format.
//! Every request is recorded (body, headers, credentials as [`Secret`]s) so tests can assert
//! what the kernel sent.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::post;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::credentials::Secret;
use crate::model::{StopReason, Usage};

/// Which wire format a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `POST /v1/chat/completions`.
    OpenAi,
    /// `POST /v1/messages`.
    Anthropic,
}

/// One request the fake received. Credentials are kept as [`Secret`]s so a failing assertion
/// that prints the record never prints a key.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The route it hit.
    pub wire: Wire,
    /// The request path.
    pub path: String,
    /// The body as JSON (`Value::Null` when it was not JSON; see `raw_body`).
    pub body: Value,
    /// The body as text.
    pub raw_body: String,
    /// Every header except `authorization` and `x-api-key`, lower-case names.
    pub headers: BTreeMap<String, String>,
    /// The `authorization` header, whole (`Bearer ...`).
    pub authorization: Option<Secret>,
    /// The `x-api-key` header.
    pub api_key: Option<Secret>,
}

impl RecordedRequest {
    /// The token of an `Authorization: Bearer` header.
    pub fn bearer(&self) -> Option<&str> {
        self.authorization
            .as_ref()
            .and_then(|a| a.expose().strip_prefix("Bearer "))
    }

    /// A non-secret header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    ToolCall {
        id: String,
        name: String,
        fragments: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Ending {
    /// The wire format's normal end (finish reason, usage, `[DONE]` / `message_stop`).
    #[default]
    Finish,
    /// Nothing more is sent and the connection stays open.
    Stall,
    /// The connection is aborted.
    Cut,
    /// The body ends cleanly, without the finish.
    Eof,
}

/// A streamed answer, in wire-neutral terms: text chunks and tool calls in order, usage, a
/// stop reason, and how the stream ends.
#[derive(Debug, Clone, Default)]
pub struct Script {
    parts: Vec<Part>,
    usage: Option<Usage>,
    stop: Option<StopReason>,
    ending: Ending,
    split: Option<usize>,
    delay: Duration,
}

impl Script {
    /// An empty answer that finishes normally.
    pub fn new() -> Self {
        Self::default()
    }

    /// One streamed text chunk (consecutive chunks form one text block).
    pub fn text(mut self, chunk: impl Into<String>) -> Self {
        self.parts.push(Part::Text(chunk.into()));
        self
    }

    /// A tool call whose argument text arrives in the given fragments, sent exactly as given
    /// (they need not join into valid JSON).
    pub fn tool_call(
        mut self,
        id: impl Into<String>,
        name: impl Into<String>,
        fragments: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.parts.push(Part::ToolCall {
            id: id.into(),
            name: name.into(),
            fragments: fragments.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// Token usage to report (OpenAI: a final usage chunk; Anthropic: `message_start` and
    /// `message_delta`). Without it none is reported.
    pub fn usage(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.usage = Some(Usage {
            input_tokens,
            output_tokens,
        });
        self
    }

    /// The stop reason; by default `ToolUse` when the script has tool calls, else `EndTurn`.
    pub fn stop(mut self, reason: StopReason) -> Self {
        self.stop = Some(reason);
        self
    }

    /// After the parts, send nothing more and hold the connection open (until the fake drops).
    pub fn stall(mut self) -> Self {
        self.ending = Ending::Stall;
        self
    }

    /// After the parts, abort the connection mid-body.
    pub fn cut(mut self) -> Self {
        self.ending = Ending::Cut;
        self
    }

    /// After the parts, end the body cleanly but without the finish events.
    pub fn end_without_finish(mut self) -> Self {
        self.ending = Ending::Eof;
        self
    }

    /// Re-chunk the whole body into writes of `bytes` bytes, splitting events and UTF-8
    /// characters across reads.
    pub fn split_every(mut self, bytes: usize) -> Self {
        self.split = Some(bytes.max(1));
        self
    }

    /// Pause before each write.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    fn stop_reason(&self) -> StopReason {
        self.stop.clone().unwrap_or_else(|| {
            if self
                .parts
                .iter()
                .any(|p| matches!(p, Part::ToolCall { .. }))
            {
                StopReason::ToolUse
            } else {
                StopReason::EndTurn
            }
        })
    }

    /// The body's events: the content, then (for a normal ending) the finish.
    fn render(&self, wire: Wire, model: &str) -> Vec<String> {
        let (mut content, finish) = match wire {
            Wire::OpenAi => self.render_openai(model),
            Wire::Anthropic => self.render_anthropic(model),
        };
        if self.ending == Ending::Finish {
            content.extend(finish);
        }
        content
    }

    fn render_openai(&self, model: &str) -> (Vec<String>, Vec<String>) {
        let chunk = |delta: Value, finish: Value| {
            let c = json!({
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            });
            format!("data: {c}\n\n")
        };
        let mut content = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        let mut index = 0;
        for part in &self.parts {
            match part {
                Part::Text(t) => content.push(chunk(json!({"content": t}), Value::Null)),
                Part::ToolCall {
                    id,
                    name,
                    fragments,
                } => {
                    content.push(chunk(
                        json!({"tool_calls": [{
                            "index": index, "id": id, "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }]}),
                        Value::Null,
                    ));
                    for f in fragments {
                        content.push(chunk(
                            json!({"tool_calls": [{"index": index, "function": {"arguments": f}}]}),
                            Value::Null,
                        ));
                    }
                    index += 1;
                }
            }
        }
        let stop = match self.stop_reason() {
            StopReason::EndTurn => "stop".to_owned(),
            StopReason::ToolUse => "tool_calls".to_owned(),
            StopReason::MaxTokens => "length".to_owned(),
            StopReason::Other(s) => s,
        };
        let mut finish = vec![chunk(json!({}), json!(stop))];
        if let Some(u) = self.usage {
            let c = json!({
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": u.input_tokens,
                    "completion_tokens": u.output_tokens,
                    "total_tokens": u.input_tokens + u.output_tokens,
                },
            });
            finish.push(format!("data: {c}\n\n"));
        }
        finish.push("data: [DONE]\n\n".to_owned());
        (content, finish)
    }

    fn render_anthropic(&self, model: &str) -> (Vec<String>, Vec<String>) {
        let event = |v: Value| {
            let name = v["type"].as_str().unwrap_or("unknown").to_owned();
            format!("event: {name}\ndata: {v}\n\n")
        };
        let mut message = json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
        });
        if let Some(u) = self.usage {
            message["usage"] = json!({"input_tokens": u.input_tokens, "output_tokens": 1});
        }
        let mut content = vec![
            event(json!({"type": "message_start", "message": message})),
            event(json!({"type": "ping"})),
        ];
        let mut index = 0;
        let mut text_open = false;
        for part in &self.parts {
            match part {
                Part::Text(t) => {
                    if !text_open {
                        content.push(event(json!({
                            "type": "content_block_start", "index": index,
                            "content_block": {"type": "text", "text": ""},
                        })));
                        text_open = true;
                    }
                    content.push(event(json!({
                        "type": "content_block_delta", "index": index,
                        "delta": {"type": "text_delta", "text": t},
                    })));
                }
                Part::ToolCall {
                    id,
                    name,
                    fragments,
                } => {
                    if text_open {
                        content.push(event(json!({"type": "content_block_stop", "index": index})));
                        text_open = false;
                        index += 1;
                    }
                    content.push(event(json!({
                        "type": "content_block_start", "index": index,
                        "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}},
                    })));
                    for f in fragments {
                        content.push(event(json!({
                            "type": "content_block_delta", "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": f},
                        })));
                    }
                    content.push(event(json!({"type": "content_block_stop", "index": index})));
                    index += 1;
                }
            }
        }
        if text_open {
            content.push(event(json!({"type": "content_block_stop", "index": index})));
        }
        let stop = match self.stop_reason() {
            StopReason::EndTurn => "end_turn".to_owned(),
            StopReason::ToolUse => "tool_use".to_owned(),
            StopReason::MaxTokens => "max_tokens".to_owned(),
            StopReason::Other(s) => s,
        };
        let mut delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": null},
        });
        if let Some(u) = self.usage {
            delta["usage"] = json!({"output_tokens": u.output_tokens});
        }
        let finish = vec![event(delta), event(json!({"type": "message_stop"}))];
        (content, finish)
    }
}

/// What the fake answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A streamed answer rendered in the wire format of the route that was hit.
    Stream(Script),
    /// A plain HTTP response: an error status with its body and extra headers.
    Status {
        /// HTTP status.
        status: u16,
        /// Extra headers, for example `retry-after`.
        headers: Vec<(String, String)>,
        /// The body (sent as JSON when it parses as JSON).
        body: String,
    },
    /// A 200 `text/event-stream` body sent exactly as given, for malformed streams.
    Raw(Vec<u8>),
    /// Accept the request and never answer (until the fake drops).
    Hang,
}

impl Reply {
    /// An HTTP error with a body.
    pub fn status(status: u16, body: impl Into<String>) -> Self {
        Reply::Status {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A 429 with `retry-after: VALUE` (seconds or an HTTP date) and an error body.
    pub fn rate_limited(retry_after: impl Into<String>) -> Self {
        Reply::status(
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        )
        .with_header("retry-after", retry_after)
    }

    /// Adds a header to a [`Reply::Status`] (ignored for other replies).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let Reply::Status { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }

    /// A raw event-stream body.
    pub fn raw(body: impl Into<Vec<u8>>) -> Self {
        Reply::Raw(body.into())
    }
}

impl From<Script> for Reply {
    fn from(script: Script) -> Self {
        Reply::Stream(script)
    }
}

struct Shared {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<RecordedRequest>>,
    shutdown: watch::Receiver<bool>,
}

/// The running fake server. Dropping it stops the server and releases stalled responses.
pub struct FakeProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeProvider")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeProvider {
    /// Starts the server on 127.0.0.1 with a free port (needs a tokio runtime).
    pub async fn start() -> io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            replies: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            shutdown: rx,
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .fallback(not_found)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "fake provider stopped");
            }
        });
        Ok(Self {
            addr,
            shared,
            shutdown: tx,
            task,
        })
    }

    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `base_url` for an OpenAI-compatible provider (`http://127.0.0.1:PORT/v1`).
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The `base_url` for an Anthropic provider (`http://127.0.0.1:PORT`).
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues the answer to a future request; requests take replies in order. With the queue
    /// empty the fake answers 500 "no scripted reply left".
    pub fn push(&self, reply: impl Into<Reply>) -> &Self {
        lock(&self.shared.replies).push_back(reply.into());
        self
    }

    /// Replies not yet taken.
    pub fn pending(&self) -> usize {
        lock(&self.shared.replies).len()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The most recent request.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        lock(&self.shared.requests).last().cloned()
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn openai(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(shared, Wire::OpenAi, uri, headers, body).await
}

async fn anthropic(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(shared, Wire::Anthropic, uri, headers, body).await
}

async fn not_found(uri: Uri) -> Response {
    json_response(
        404,
        &json!({"error": {"type": "not_found_error", "message": format!("fake provider: no route {}", uri.path())}}).to_string(),
        &[],
    )
}

async fn handle(
    shared: Arc<Shared>,
    wire: Wire,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw_body = String::from_utf8_lossy(&body).into_owned();
    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = json_body["model"]
        .as_str()
        .unwrap_or("fake-model")
        .to_owned();
    let mut recorded = RecordedRequest {
        wire,
        path: uri.path().to_owned(),
        body: json_body,
        raw_body,
        headers: BTreeMap::new(),
        authorization: None,
        api_key: None,
    };
    for (name, value) in &headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match name.as_str() {
            "authorization" => recorded.authorization = Some(Secret::new(value)),
            "x-api-key" => recorded.api_key = Some(Secret::new(value)),
            other => {
                recorded.headers.insert(other.to_owned(), value);
            }
        }
    }
    lock(&shared.requests).push(recorded);
    let reply = lock(&shared.replies).pop_front();
    let mut shutdown = shared.shutdown.clone();
    match reply {
        None => json_response(
            500,
            r#"{"error":{"type":"fake_error","message":"fake provider: no scripted reply left"}}"#,
            &[],
        ),
        Some(Reply::Status {
            status,
            headers,
            body,
        }) => json_response(status, &body, &headers),
        Some(Reply::Raw(bytes)) => sse_response(Body::from(bytes)),
        Some(Reply::Hang) => {
            let _ = shutdown.wait_for(|down| *down).await;
            json_response(503, "", &[])
        }
        Some(Reply::Stream(script)) => {
            let mut writes: Vec<Vec<u8>> = script
                .render(wire, &model)
                .into_iter()
                .map(String::into_bytes)
                .collect();
            if let Some(n) = script.split {
                writes = writes.concat().chunks(n).map(<[u8]>::to_vec).collect();
            }
            let delay = script.delay;
            let head = stream::iter(writes).then(move |w| async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok::<_, io::Error>(w)
            });
            let tail: BoxStream<'static, Result<Vec<u8>, io::Error>> = match script.ending {
                Ending::Finish | Ending::Eof => stream::empty().boxed(),
                Ending::Cut => stream::once(async {
                    // Let hyper flush what was written, so the cut lands mid-body.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Err(io::Error::other("fake provider: cut"))
                })
                .boxed(),
                Ending::Stall => stream::once(async move {
                    let _ = shutdown.wait_for(|down| *down).await;
                    Err(io::Error::other("fake provider: shut down"))
                })
                .boxed(),
            };
            sse_response(Body::from_stream(head.chain(tail)))
        }
    }
}

fn sse_response(body: Body) -> Response {
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn json_response(status: u16, body: &str, headers: &[(String, String)]) -> Response {
    let content_type = if serde_json::from_str::<Value>(body).is_ok() {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut response = Response::new(Body::from(body.to_owned()));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            h.append(name, value);
        }
    }
    response
}
