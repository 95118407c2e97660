//! The seam between the kernel and model providers: one trait, one error type. Adapters for
//! OpenAI Chat Completions (and compatible servers) and Anthropic Messages live beside it.
//!
//! | module | owns |
//! |---|---|
//! | `openai` | the Chat Completions wire format: request mapping, chunk decoding |
//! | `anthropic` | the Messages wire format: request mapping, event decoding |
//! | `sse` | the one streaming driver both use: stall timeout, SSE parsing, end-of-stream rules |
//! | `http` | HTTP client, base URLs, status to [`ProviderError`] mapping, `retry-after` |
//! | `retry` | an opt-in wrapper that waits out rate limits and retries transient failures |

use std::time::Duration;

use futures_util::stream::BoxStream;

use crate::model::{ModelRequest, StreamEvent};

pub mod anthropic;
mod http;
pub mod openai;
pub mod retry;
mod sse;

pub use anthropic::{AnthropicConfig, AnthropicProvider};
pub use http::ConfigError;
pub use openai::{MaxTokensParam, OpenAiConfig, OpenAiProvider};
pub use retry::{RetryPolicy, RetryingProvider};

/// How long a stream may stay silent before it counts as stalled, unless configured.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);

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

impl ProviderError {
    /// Whether trying the same request again may succeed (rate limits, 5xx, overload,
    /// stalls and transport failures); credentials and malformed streams will not get better.
    pub fn is_transient(&self) -> bool {
        match self {
            ProviderError::RateLimited { .. }
            | ProviderError::Stalled { .. }
            | ProviderError::Transport { .. } => true,
            ProviderError::Http { status, .. } => matches!(status, 408 | 409 | 500..=599),
            ProviderError::Unauthorized { .. } | ProviderError::MalformedStream { .. } => false,
        }
    }

    /// The wait the provider asked for before the next request, when it named one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited {
                retry_after_ms: Some(ms),
                ..
            } => Some(Duration::from_millis(*ms)),
            _ => None,
        }
    }
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
