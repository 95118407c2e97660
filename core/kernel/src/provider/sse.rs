//! The one streaming driver both adapters use: sends the request, maps HTTP failures, parses
//! the body as server-sent events with the stall timeout applied to every read, and hands each
//! event to a wire-format [`Decoder`]. It owns the end-of-stream rules: events queued before a
//! failure are delivered first, an error ends the stream, and a body that ends before the
//! decoder saw a finish is a [`ProviderError::MalformedStream`].

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream, Stream};

use super::{ProviderError, http};
use crate::credentials::Secret;
use crate::model::StreamEvent;

/// What a decoder wants after an event.
pub(crate) enum Flow {
    /// Keep reading.
    Continue,
    /// The response is complete; stop reading (queued events are still delivered).
    Done,
}

/// A provider's wire format, fed one SSE event at a time.
pub(crate) trait Decoder: Send + 'static {
    /// Handles one event, queueing what the kernel should see.
    fn on_event(
        &mut self,
        event: &Event,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<Flow, ProviderError>;

    /// Whether the model already said why it stopped (a complete answer even without the
    /// wire format's end marker).
    fn stopped(&self) -> bool;

    /// Queues what is still open and the final [`StreamEvent::Finished`].
    fn finish(&mut self, out: &mut VecDeque<StreamEvent>);

    /// The provider's name, for errors.
    fn provider(&self) -> &str;

    /// The body ended before [`Flow::Done`]: a stop reason already seen is a complete answer,
    /// anything else a cut stream.
    fn on_eof(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), ProviderError> {
        if self.stopped() {
            self.finish(out);
            Ok(())
        } else {
            Err(malformed(
                self.provider(),
                "the stream ended before the model finished",
            ))
        }
    }
}

/// One prepared streaming call.
pub(crate) struct Call {
    /// Provider name for errors.
    pub provider: Arc<str>,
    /// The request, headers and body set.
    pub request: reqwest::RequestBuilder,
    /// Longest silence allowed, before the headers and between body chunks.
    pub stall: Duration,
    /// Secrets to scrub from any text that came back from the network.
    pub secrets: Arc<[Secret]>,
}

/// Why a body read failed, below the SSE layer.
enum ReadError {
    Stalled,
    Transport(reqwest::Error),
}

type Events = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<ReadError>>> + Send>>;

struct Reading<D> {
    provider: Arc<str>,
    stall: Duration,
    secrets: Arc<[Secret]>,
    events: Events,
    decoder: D,
    queue: VecDeque<StreamEvent>,
    done: bool,
    failed: Option<ProviderError>,
}

enum State<D> {
    Start(Box<(Call, D)>),
    Reading(Box<Reading<D>>),
    End,
}

/// Runs a call lazily: nothing is sent until the stream is first polled, and dropping the
/// stream drops the connection.
pub(crate) fn drive<D: Decoder>(
    call: Call,
    decoder: D,
) -> BoxStream<'static, Result<StreamEvent, ProviderError>> {
    stream::unfold(State::Start(Box::new((call, decoder))), step).boxed()
}

async fn step<D: Decoder>(
    state: State<D>,
) -> Option<(Result<StreamEvent, ProviderError>, State<D>)> {
    let mut r = match state {
        State::End => return None,
        State::Reading(r) => r,
        State::Start(start) => {
            let (call, decoder) = *start;
            let Call {
                provider,
                request,
                stall,
                secrets,
            } = call;
            match open(&provider, request, stall, &secrets).await {
                Ok(events) => Box::new(Reading {
                    provider,
                    stall,
                    secrets,
                    events,
                    decoder,
                    queue: VecDeque::new(),
                    done: false,
                    failed: None,
                }),
                Err(e) => {
                    tracing::debug!(provider = %provider, error = %e, "model call failed");
                    return Some((Err(e), State::End));
                }
            }
        }
    };
    loop {
        if let Some(event) = r.queue.pop_front() {
            return Some((Ok(event), State::Reading(r)));
        }
        if let Some(e) = r.failed.take() {
            tracing::debug!(provider = %r.provider, error = %e, "model stream failed");
            return Some((Err(e), State::End));
        }
        if r.done {
            tracing::debug!(provider = %r.provider, "model stream finished");
            return None;
        }
        let Reading {
            provider,
            stall,
            secrets,
            events,
            decoder,
            queue,
            done,
            failed,
        } = &mut *r;
        let outcome = match events.next().await {
            Some(Ok(event)) => decoder
                .on_event(&event, queue)
                .map(|f| matches!(f, Flow::Done)),
            Some(Err(e)) => Err(read_failure(provider, *stall, secrets, e)),
            None => decoder.on_eof(queue).map(|()| true),
        };
        match outcome {
            Ok(finished) => *done = finished,
            Err(e) => *failed = Some(e),
        }
    }
}

/// Sends the request and, on success, returns the parsed event stream.
async fn open(
    provider: &Arc<str>,
    request: reqwest::RequestBuilder,
    stall: Duration,
    secrets: &[Secret],
) -> Result<Events, ProviderError> {
    let response = match tokio::time::timeout(stall, request.send()).await {
        Err(_) => return Err(stalled(provider, stall)),
        Ok(Err(e)) => return Err(http::transport(provider, &e, secrets)),
        Ok(Ok(r)) => r,
    };
    if !response.status().is_success() {
        return Err(http::error_from_response(provider, response, stall, secrets).await);
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        // A server that ignored `stream: true`, or one that reports errors with status 200.
        let status = response.status().as_u16();
        let err = http::error_from_response(provider, response, stall, secrets).await;
        let detail = match err {
            ProviderError::Http { message, .. } => message,
            other => other.to_string(),
        };
        return Err(ProviderError::MalformedStream {
            provider: provider.to_string(),
            detail: format!("expected an event stream, got JSON (HTTP {status}): {detail}"),
        });
    }
    let body = response.bytes_stream();
    let timed = stream::unfold(Some(body), move |body| async move {
        let mut body = body?;
        match tokio::time::timeout(stall, body.next()).await {
            Err(_) => Some((Err(ReadError::Stalled), None)),
            Ok(None) => None,
            Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(body))),
            Ok(Some(Err(e))) => Some((Err(ReadError::Transport(e)), None)),
        }
    });
    Ok(Box::pin(timed.eventsource()))
}

fn read_failure(
    provider: &str,
    stall: Duration,
    secrets: &[Secret],
    err: EventStreamError<ReadError>,
) -> ProviderError {
    match err {
        EventStreamError::Transport(ReadError::Stalled) => stalled(provider, stall),
        EventStreamError::Transport(ReadError::Transport(e)) => {
            match http::transport(provider, &e, secrets) {
                ProviderError::Transport { provider, detail } => ProviderError::Transport {
                    provider,
                    detail: format!("the connection broke mid-answer: {detail}"),
                },
                other => other,
            }
        }
        EventStreamError::Utf8(e) => malformed(provider, format!("the stream is not UTF-8: {e}")),
        EventStreamError::Parser(e) => malformed(
            provider,
            format!("unparseable event-stream line ({:?})", e.code),
        ),
    }
}

fn stalled(provider: &str, stall: Duration) -> ProviderError {
    ProviderError::Stalled {
        provider: provider.to_owned(),
        after_ms: stall.as_millis().min(u128::from(u64::MAX)) as u64,
    }
}

/// A wire-format violation.
pub(crate) fn malformed(provider: &str, detail: impl Into<String>) -> ProviderError {
    ProviderError::MalformedStream {
        provider: provider.to_owned(),
        detail: detail.into(),
    }
}
