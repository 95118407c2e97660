//! The seam between the kernel and model providers: one trait, one error type. Adapters for
//! OpenAI Chat Completions (and compatible servers) and Anthropic Messages live beside it.

use futures_util::stream::BoxStream;

use crate::model::{ModelRequest, StreamEvent};

/// Why a model call failed; each is shown to the user as a clear error in the turn.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// The provider refused the credentials (401/403).
    #[error("{provider} refused the credentials (HTTP {status}); check `perch auth status`")]
    Unauthorized {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
    },
    /// Too many requests; retry after the given time when the provider said one.
    #[error("{provider} is rate limiting requests{}", retry_after_ms.map(|ms| format!(" (retry after {ms} ms)")).unwrap_or_default())]
    RateLimited {
        /// Provider name.
        provider: String,
        /// From `retry-after`, when present.
        retry_after_ms: Option<u64>,
    },
    /// Any other HTTP error, with the start of the body (never request headers).
    #[error("{provider} answered HTTP {status}: {message}")]
    Http {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// The provider's error message, trimmed.
        message: String,
    },
    /// The event stream broke the wire format.
    #[error("{provider} sent a malformed stream: {detail}")]
    MalformedStream {
        /// Provider name.
        provider: String,
        /// What was wrong.
        detail: String,
    },
    /// Nothing arrived for too long.
    #[error("{provider} stalled: nothing received for {after_ms} ms")]
    Stalled {
        /// Provider name.
        provider: String,
        /// The idle limit that passed.
        after_ms: u64,
    },
    /// The connection failed.
    #[error("cannot reach {provider}: {detail}")]
    Transport {
        /// Provider name.
        provider: String,
        /// What failed.
        detail: String,
    },
}

/// A model provider: turns a request into a stream of events. Implementations never log
/// credentials or request bodies.
pub trait ModelProvider: Send + Sync {
    /// Short name for errors and logs, for example `openai`.
    fn name(&self) -> &str;

    /// Starts one streaming call.
    fn stream(
        &self,
        request: ModelRequest,
    ) -> BoxStream<'static, Result<StreamEvent, ProviderError>>;
}
