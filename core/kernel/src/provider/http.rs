//! HTTP plumbing both adapters share: the client, endpoint URLs, credential headers, and the
//! mapping from a failed HTTP response to a [`ProviderError`]. Nothing here knows a wire format.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

use super::ProviderError;
use crate::credentials::Secret;

/// How much of an error body is read; provider error bodies are small, a proxy's HTML page is not.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// How much of a provider's error message goes into the error.
const MAX_MESSAGE_CHARS: usize = 500;

/// Why a provider could not be constructed from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The base URL is not an absolute http(s) URL.
    #[error("invalid base_url: {0}")]
    InvalidBaseUrl(String),
    /// The credential cannot be sent as an HTTP header (for example it holds a line break).
    #[error("the credential contains characters that cannot be sent in an HTTP header")]
    InvalidCredential,
    /// An `anthropic-beta` flag holds characters that cannot go in a header.
    #[error("invalid anthropic-beta flag")]
    InvalidBeta,
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Builds the client every adapter uses: no redirects, so a credential never follows a
/// redirect to another host, and a connect timeout no longer than the stall timeout.
pub(crate) fn client(connect_timeout: Duration) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .user_agent(concat!("perch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConfigError::Client(e.to_string()))
}

/// What every adapter calls its API with: the checked URL, the client, and the secrets to
/// scrub from anything that comes back (the credential, and a password in the URL's userinfo,
/// which is a credential too).
pub(crate) struct Endpoint {
    /// Provider name, for logs and errors.
    pub name: Arc<str>,
    /// The API URL (never echoed in errors: it may carry userinfo).
    pub url: reqwest::Url,
    client: reqwest::Client,
    /// Secrets to scrub from errors and stream text.
    pub secrets: Arc<[Secret]>,
    stall: Duration,
}

impl Endpoint {
    /// Builds the client for `url`; `secrets` are the credential's, the URL's password is
    /// added to them.
    pub(crate) fn new(
        name: String,
        url: reqwest::Url,
        mut secrets: Vec<Secret>,
        stall: Duration,
    ) -> Result<Self, ConfigError> {
        if let Some(password) = url.password() {
            secrets.push(Secret::new(password));
        }
        Ok(Self {
            name: name.into(),
            client: client(stall)?,
            url,
            secrets: secrets.into(),
            stall,
        })
    }

    /// A POST of `body` that asks for a server-sent event stream.
    pub(crate) fn post_sse(&self, body: &Value) -> reqwest::RequestBuilder {
        self.client
            .post(self.url.clone())
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(body)
    }

    /// The streaming call for a prepared request.
    pub(crate) fn call(&self, request: reqwest::RequestBuilder) -> super::sse::Call {
        super::sse::Call {
            provider: self.name.clone(),
            request,
            stall: self.stall,
            secrets: self.secrets.clone(),
        }
    }
}

/// Joins a configured (or default) base URL and an API path, checking it is absolute http(s).
/// The URL is never echoed in errors: it may carry userinfo.
pub(crate) fn endpoint(
    base: Option<&str>,
    default: &str,
    path: &str,
) -> Result<reqwest::Url, ConfigError> {
    let base = base
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .unwrap_or(default);
    let joined = format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    let url =
        reqwest::Url::parse(&joined).map_err(|e| ConfigError::InvalidBaseUrl(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::InvalidBaseUrl(format!(
            "scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::InvalidBaseUrl("no host".into()));
    }
    Ok(url)
}

/// A header value holding a secret, marked sensitive so reqwest never shows it in `Debug`.
pub(crate) fn secret_header(value: &str) -> Result<HeaderValue, ConfigError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| ConfigError::InvalidCredential)?;
    v.set_sensitive(true);
    Ok(v)
}

/// Removes every occurrence of the given secrets from text that came from the network, so a
/// server that echoes a key back cannot get it into an error or a log.
pub(crate) fn redact(text: &str, secrets: &[Secret]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        let s = s.expose();
        if s.len() >= 4 && out.contains(s) {
            out = out.replace(s, "[redacted]");
        }
    }
    out
}

/// Describes a transport failure with its cause chain (reqwest's top-level message alone is
/// often just "error sending request").
pub(crate) fn transport(provider: &str, err: &reqwest::Error, secrets: &[Secret]) -> ProviderError {
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !detail.contains(&s_text) {
            detail.push_str(": ");
            detail.push_str(&s_text);
        }
        source = s.source();
    }
    ProviderError::Transport {
        provider: provider.to_owned(),
        detail: redact(&detail, secrets),
    }
}

/// Turns a non-success response into the error the user sees: 401/403 as `Unauthorized`, 429 as
/// `RateLimited` with the wait the server asked for, anything else as `Http` with the message
/// from the provider's JSON body.
pub(crate) async fn error_from_response(
    provider: &str,
    response: reqwest::Response,
    stall: Duration,
    secrets: &[Secret],
) -> ProviderError {
    let status = response.status().as_u16();
    match status {
        401 | 403 => {
            return ProviderError::Unauthorized {
                provider: provider.to_owned(),
                status,
            };
        }
        429 => {
            return ProviderError::RateLimited {
                provider: provider.to_owned(),
                retry_after_ms: retry_after_ms(response.headers(), SystemTime::now()),
            };
        }
        _ => {}
    }
    let reason = response
        .status()
        .canonical_reason()
        .unwrap_or("error")
        .to_owned();
    let body = read_capped(response, stall).await;
    let message = match extract_message(&body) {
        Some(m) => m,
        None if body.is_empty() => reason,
        None => String::from_utf8_lossy(&body).trim().to_owned(),
    };
    ProviderError::Http {
        provider: provider.to_owned(),
        status,
        message: truncate(&redact(&message, secrets), MAX_MESSAGE_CHARS),
    }
}

/// Reads at most [`MAX_ERROR_BODY`] bytes of a body, giving up quietly on a stall or a broken
/// connection: the status alone is still a useful error.
async fn read_capped(response: reqwest::Response, stall: Duration) -> Vec<u8> {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while body.len() < MAX_ERROR_BODY {
        match tokio::time::timeout(stall, chunks.next()).await {
            Ok(Some(Ok(chunk))) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(MAX_ERROR_BODY);
    body
}

/// Finds the human message in a provider's JSON error body. Covers OpenAI and Anthropic
/// (`{"error": {"message"}}`), Ollama (`{"error": "..."}`) and FastAPI-style servers
/// (`{"detail": ...}`, `{"message": ...}`).
pub(crate) fn extract_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let error = v.get("error");
    let text = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .or_else(|| error.and_then(Value::as_str))
        .or_else(|| v.get("message").and_then(Value::as_str))
        .or_else(|| v.get("detail").and_then(Value::as_str))
        .map(str::to_owned)
        .or_else(|| v.get("detail").map(Value::to_string))?;
    let kind = error
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty());
    Some(match kind {
        Some(k) if !text.contains(k) => format!("{k}: {text}"),
        _ => text,
    })
}

/// Maps an error reported inside a 200 event stream (Anthropic's `error` event, an OpenAI
/// chunk with `error`) to the error the same failure would have been as an HTTP status.
pub(crate) fn stream_error(
    provider: &str,
    kind: &str,
    code: Option<u16>,
    message: &str,
    secrets: &[Secret],
) -> ProviderError {
    let status = code
        .filter(|c| (400..=599).contains(c))
        .unwrap_or(match kind {
            "invalid_request_error" => 400,
            "authentication_error" => 401,
            "permission_error" => 403,
            "not_found_error" => 404,
            "request_too_large" => 413,
            "rate_limit_error" | "rate_limit_exceeded" => 429,
            "overloaded_error" => 529,
            _ => 500,
        });
    match status {
        401 | 403 => ProviderError::Unauthorized {
            provider: provider.to_owned(),
            status,
        },
        429 => ProviderError::RateLimited {
            provider: provider.to_owned(),
            retry_after_ms: None,
        },
        _ => {
            let message = if kind.is_empty() || message.contains(kind) {
                message.to_owned()
            } else {
                format!("{kind}: {message}")
            };
            ProviderError::Http {
                provider: provider.to_owned(),
                status,
                message: truncate(&redact(&message, secrets), MAX_MESSAGE_CHARS),
            }
        }
    }
}

/// The wait a 429 asks for: `retry-after-ms` (OpenAI) first, then `retry-after` as seconds
/// (fractions accepted) or as an HTTP date relative to `now`.
pub(crate) fn retry_after_ms(headers: &HeaderMap, now: SystemTime) -> Option<u64> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(ms.ceil() as u64);
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| (secs * 1000.0).ceil() as u64);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64)
            .unwrap_or(0),
    )
}

/// Cuts text to at most `max` characters on a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after_ms(&headers(&[("retry-after", "7")]), now),
            Some(7000)
        );
        assert_eq!(
            retry_after_ms(&headers(&[("retry-after", "0.5")]), now),
            Some(500)
        );
        assert_eq!(
            retry_after_ms(
                &headers(&[("retry-after", "7"), ("retry-after-ms", "1234")]),
                now
            ),
            Some(1234)
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            retry_after_ms(&headers(&[("retry-after", &later)]), now),
            Some(30_000)
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(
            retry_after_ms(&headers(&[("retry-after", &earlier)]), now),
            Some(0)
        );
        assert_eq!(
            retry_after_ms(&headers(&[("retry-after", "soon")]), now),
            None
        );
        assert_eq!(
            retry_after_ms(&headers(&[("retry-after", "-3")]), now),
            None
        );
        assert_eq!(retry_after_ms(&HeaderMap::new(), now), None);
    }

    #[test]
    fn error_messages_from_common_bodies() {
        assert_eq!(
            extract_message(
                br#"{"error":{"message":"model not found","type":"invalid_request_error"}}"#
            )
            .as_deref(),
            Some("invalid_request_error: model not found")
        );
        assert_eq!(
            extract_message(
                br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            )
            .as_deref(),
            Some("overloaded_error: Overloaded")
        );
        assert_eq!(
            extract_message(br#"{"error":"model 'x' not found"}"#).as_deref(),
            Some("model 'x' not found")
        );
        assert_eq!(
            extract_message(br#"{"detail":"nope"}"#).as_deref(),
            Some("nope")
        );
        assert_eq!(extract_message(b"<html>bad gateway</html>"), None);
    }

    #[test]
    fn endpoints() {
        let u = endpoint(Some("http://127.0.0.1:11434/v1/"), "x", "chat/completions").unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:11434/v1/chat/completions");
        let u = endpoint(None, "https://api.anthropic.com", "/v1/messages").unwrap();
        assert_eq!(u.as_str(), "https://api.anthropic.com/v1/messages");
        assert!(endpoint(Some("ftp://x"), "x", "y").is_err());
        assert!(endpoint(Some("not a url"), "x", "y").is_err());
    }

    #[test]
    fn redaction_and_truncation() {
        let s = [Secret::new("sk-secret-123")];
        assert_eq!(redact("bad key sk-secret-123!", &s), "bad key [redacted]!");
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 2), "hi");
    }
}
