//! Where a stored credential may be sent. Each tier's secret-store credential is bound to the
//! origin (`scheme://host:port`) it was first used with or set for, recorded per tier and account
//! in `credential-origins.json` (mode 0600) in the data directory. A tier pointed at another
//! origin gets no secret until the user stores it again, which releases the account's bindings.
//!
//! Environment variables are not bound: whoever starts the host chooses them for that run, and
//! there is no "store again" for them to wait for.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::credentials::{ProviderKind, TierConfig};

/// The file of bindings in the data directory.
pub const ORIGINS_FILE: &str = "credential-origins.json";

/// Tier, then account, then the origin the account's secret may go to for that tier.
type Book = BTreeMap<String, BTreeMap<String, String>>;

/// Why the bindings could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct OriginsError {
    /// The file.
    pub path: PathBuf,
    /// The I/O error.
    pub source: std::io::Error,
}

/// Whether a tier's stored secret may go to an origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The tier is bound to this origin.
    Allowed,
    /// Nothing binds this tier yet, and no other tier holds the account elsewhere: may go, and
    /// the caller records the binding on first use.
    Unbound,
    /// Bound to another origin: the secret stays home.
    Refused {
        /// The origin the secret is bound to.
        bound: String,
    },
}

/// The bindings of one data directory.
#[derive(Debug, Clone)]
pub struct CredentialOrigins {
    file: PathBuf,
}

impl CredentialOrigins {
    /// The bindings kept in `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            file: data_dir.join(ORIGINS_FILE),
        }
    }

    fn load(&self) -> Book {
        let Ok(text) = std::fs::read_to_string(&self.file) else {
            return Book::new();
        };
        serde_json::from_str(&text).unwrap_or_else(|e| {
            tracing::warn!(path = %self.file.display(), error = %e, "credential origins unreadable; starting afresh");
            Book::new()
        })
    }

    fn save(&self, book: &Book) -> Result<(), OriginsError> {
        let io = |source| OriginsError {
            path: self.file.clone(),
            source,
        };
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = self
            .file
            .with_extension(format!("json.tmp-{}", std::process::id()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let written = (|| {
            let mut f = opts.open(&tmp)?;
            let text = serde_json::to_string_pretty(book).unwrap_or_else(|_| "{}".into());
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.file)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(io)
    }

    /// Whether `tier` may send `account`'s secret to `origin`: its own binding decides; without
    /// one, the bindings other tiers hold for the account do (one of them must be `origin`).
    pub fn check(&self, tier: &str, account: &str, origin: &str) -> Verdict {
        let book = self.load();
        if let Some(bound) = book.get(tier).and_then(|t| t.get(account)) {
            return if bound == origin {
                Verdict::Allowed
            } else {
                Verdict::Refused {
                    bound: bound.clone(),
                }
            };
        }
        let mut others = book.values().filter_map(|t| t.get(account)).peekable();
        match others.peek() {
            None => Verdict::Unbound,
            Some(first) => {
                let first = (*first).clone();
                if others.any(|o| o == origin) {
                    Verdict::Unbound
                } else {
                    Verdict::Refused { bound: first }
                }
            }
        }
    }

    /// The origin `tier` is bound to for `account`, if any.
    pub fn bound(&self, tier: &str, account: &str) -> Option<String> {
        self.load().get(tier)?.get(account).cloned()
    }

    /// Binds `tier`'s use of `account` to `origin`.
    pub fn bind(&self, tier: &str, account: &str, origin: &str) -> Result<(), OriginsError> {
        let mut book = self.load();
        book.entry(tier.to_string())
            .or_default()
            .insert(account.to_string(), origin.to_string());
        self.save(&book)
    }

    /// Forgets every binding of `account`: its secret was stored again, so the next use binds it
    /// afresh to where its tier points.
    pub fn release(&self, account: &str) -> Result<(), OriginsError> {
        let mut book = self.load();
        let before = book.clone();
        for t in book.values_mut() {
            t.remove(account);
        }
        book.retain(|_, t| !t.is_empty());
        if book == before {
            return Ok(());
        }
        self.save(&book)
    }
}

/// The authority part of an `http(s)://` URL (between `://` and the path), if any.
fn authority(url: &str) -> Option<(&str, usize)> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some((&rest[..end], start))
}

/// Whether a URL carries `user:password@` before its host.
pub fn has_userinfo(url: &str) -> bool {
    authority(url).is_some_and(|(a, _)| a.contains('@'))
}

/// The URL without its `user:password@`, so it can be shown.
pub fn without_userinfo(url: &str) -> String {
    match authority(url) {
        Some((a, start)) => match a.rfind('@') {
            Some(at) => format!("{}{}", &url[..start], &url[start + at + 1..]),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Free text (an error message, a problem found in a hand-edited file) with the userinfo of
/// every URL in it removed, so a `user:password@` never reaches a log or a client.
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let start = i + 3;
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let end = after
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '`') || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..end];
        out.push_str(match authority.rfind('@') {
            Some(at) => &authority[at + 1..],
            None => authority,
        });
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `scheme://host:port` of an `http(s)` URL, port spelled out; `None` when it does not parse.
pub fn origin_of(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url.trim()).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    let host = u.host_str()?.to_ascii_lowercase();
    let port = u.port_or_known_default()?;
    Some(format!("{}://{host}:{port}", u.scheme()))
}

/// Whether an `http(s)` URL's host is this machine: `localhost`, 127.0.0.0/8 or `::1`.
pub fn is_loopback(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url.trim()) else {
        return false;
    };
    let Some(host) = u.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The origin a tier sends requests to: its base URL, or its provider's default.
pub fn tier_origin(cfg: &TierConfig) -> Option<String> {
    match cfg.base_url.as_deref() {
        Some(u) => origin_of(u),
        None => origin_of(match cfg.provider {
            ProviderKind::Openai => crate::provider::openai::DEFAULT_BASE_URL,
            ProviderKind::Anthropic => crate::provider::anthropic::DEFAULT_BASE_URL,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_spell_out_the_port_and_drop_the_rest() {
        assert_eq!(
            origin_of("https://API.openai.com/v1").as_deref(),
            Some("https://api.openai.com:443")
        );
        assert_eq!(
            origin_of("http://u:p@localhost:11434/v1?x").as_deref(),
            Some("http://localhost:11434")
        );
        assert_eq!(
            origin_of("http://[::1]/v1").as_deref(),
            Some("http://[::1]:80")
        );
        assert_eq!(origin_of("ftp://x"), None);
        assert_eq!(origin_of("not a url"), None);
    }

    #[test]
    fn loopback_is_localhost_127_and_ipv6_one_only() {
        for u in [
            "http://localhost:1",
            "http://127.0.0.1/v1",
            "http://127.9.9.9",
            "http://[::1]:8080",
        ] {
            assert!(is_loopback(u), "{u}");
        }
        for u in [
            "http://10.0.0.1",
            "http://localhost.evil.com",
            "http://128.0.0.1",
            "http://[::2]",
            "nope",
        ] {
            assert!(!is_loopback(u), "{u}");
        }
    }

    #[test]
    fn userinfo_is_found_and_removed() {
        assert!(has_userinfo("https://u:p@h/x"));
        assert!(!has_userinfo("https://h/x@y"));
        assert_eq!(without_userinfo("https://u:p@h:1/x@y"), "https://h:1/x@y");
        assert_eq!(without_userinfo("https://h/x"), "https://h/x");
    }

    #[test]
    fn userinfo_is_removed_from_free_text() {
        assert_eq!(
            redact_userinfo("bad \"http://u:p@h:1/x\" and https://k@x.y?q, ok"),
            "bad \"http://h:1/x\" and https://x.y?q, ok"
        );
        assert_eq!(redact_userinfo("no url at all"), "no url at all");
        assert_eq!(redact_userinfo("ends http://a:b@c"), "ends http://c");
    }

    #[test]
    fn a_binding_keeps_the_secret_home_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let o = CredentialOrigins::new(dir.path());
        let (home, away) = ("https://api.openai.com:443", "https://evil.example:443");
        assert_eq!(o.check("fast", "openai:api_key", away), Verdict::Unbound);
        o.bind("fast", "openai:api_key", home).unwrap();
        assert_eq!(o.check("fast", "openai:api_key", home), Verdict::Allowed);
        let refused = Verdict::Refused { bound: home.into() };
        assert_eq!(o.check("fast", "openai:api_key", away), refused);
        // Another tier cannot carry the account elsewhere either, but may use it at home.
        assert_eq!(o.check("smart", "openai:api_key", away), refused);
        assert_eq!(o.check("smart", "openai:api_key", home), Verdict::Unbound);
        // Another account is not affected.
        assert_eq!(o.check("fast", "anthropic:api_key", away), Verdict::Unbound);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(ORIGINS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        o.release("openai:api_key").unwrap();
        assert_eq!(o.check("fast", "openai:api_key", away), Verdict::Unbound);
        assert_eq!(o.bound("fast", "openai:api_key"), None);
    }
}
