//! An opt-in wrapper that honours rate limits: it waits out `retry-after` (or backs off) and
//! tries again, but only while nothing of the answer has been yielded, so a retry never
//! duplicates text the user already saw.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};

use super::{ModelProvider, ProviderError};
use crate::model::{ModelRequest, StreamEvent};

/// When and how long to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 turns retrying off.
    pub max_retries: u32,
    /// The longest single wait; a `retry-after` beyond it fails at once instead of hanging
    /// the turn.
    pub max_wait: Duration,
    /// The first wait when the provider named none; doubled on each retry.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            max_wait: Duration::from_secs(60),
            backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (0-based) after `error`, or `None` to give up.
    /// Stalls are not retried: the stall timeout already cost the user a long wait.
    pub fn wait_for(&self, error: &ProviderError, attempt: u32) -> Option<Duration> {
        if attempt >= self.max_retries
            || !error.is_transient()
            || matches!(error, ProviderError::Stalled { .. })
        {
            return None;
        }
        let wait = error.retry_after().unwrap_or_else(|| {
            self.backoff
                .saturating_mul(2u32.saturating_pow(attempt))
                .min(self.max_wait)
        });
        (wait <= self.max_wait).then_some(wait)
    }
}

/// Wraps any provider with a [`RetryPolicy`].
pub struct RetryingProvider<P: ?Sized> {
    inner: Arc<P>,
    policy: RetryPolicy,
}

impl<P: ?Sized> Clone for RetryingProvider<P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<P: ModelProvider + ?Sized + 'static> RetryingProvider<P> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<P>, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }
}

struct Attempt<P: ?Sized> {
    inner: Arc<P>,
    policy: RetryPolicy,
    request: ModelRequest,
    attempt: u32,
    current: Option<BoxStream<'static, Result<StreamEvent, ProviderError>>>,
    started: bool,
}

impl<P: ModelProvider + ?Sized + 'static> ModelProvider for RetryingProvider<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn stream(
        &self,
        request: ModelRequest,
    ) -> BoxStream<'static, Result<StreamEvent, ProviderError>> {
        let state = Attempt {
            inner: self.inner.clone(),
            policy: self.policy.clone(),
            request,
            attempt: 0,
            current: None,
            started: false,
        };
        stream::unfold(Some(state), |state| async move {
            let mut st = state?;
            loop {
                let current = match &mut st.current {
                    Some(c) => c,
                    slot @ None => slot.insert(st.inner.stream(st.request.clone())),
                };
                match current.next().await {
                    None => return None,
                    Some(Ok(event)) => {
                        st.started = true;
                        return Some((Ok(event), Some(st)));
                    }
                    Some(Err(error)) => {
                        let wait = if st.started {
                            None
                        } else {
                            st.policy.wait_for(&error, st.attempt)
                        };
                        let Some(wait) = wait else {
                            return Some((Err(error), None));
                        };
                        tracing::info!(
                            provider = %st.inner.name(),
                            error = %error,
                            wait_ms = wait.as_millis() as u64,
                            "model call failed; retrying"
                        );
                        st.current = None;
                        tokio::time::sleep(wait).await;
                        st.attempt += 1;
                    }
                }
            }
        })
        .boxed()
    }
}
