//! Joining a host from a setup code, the wiring `perch node run --setup-code` and the phone
//! apps (through `perch-ffi`) share: what the code says to insist on ([`SetupTarget`]) and
//! which of its addresses answers ([`first_answering`]).

use std::time::Duration;

use perch_protocol::setup_code::{SetupCode, SetupCodeError};

use crate::runtime::{BootstrapToken, ExpectedHost, NodeConfig};

/// How long [`first_answering`] waits for each address by default.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Where a setup code points and what the node must find there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupTarget {
    /// The host's gateway URLs, in the order the code lists them.
    pub urls: Vec<String>,
    /// The host key the code names; any other key at those addresses is refused.
    pub expected: ExpectedHost,
    /// The code's single-use bootstrap token (pairs without a manual approval).
    pub bootstrap: BootstrapToken,
}

impl SetupTarget {
    /// Reads a code as a person typed or scanned it; a typo, a short copy or a code from a
    /// newer host is a [`SetupCodeError`] that says what to check.
    pub fn decode(code: &str) -> Result<SetupTarget, SetupCodeError> {
        Ok(Self::from_code(&SetupCode::decode(code)?))
    }

    /// The target of a decoded code.
    pub fn from_code(code: &SetupCode) -> SetupTarget {
        SetupTarget {
            urls: code.gateway_urls(),
            expected: ExpectedHost {
                host_id: code.host_id(),
                fingerprint: code.fingerprint_hex(),
            },
            bootstrap: BootstrapToken(code.bootstrap_token.clone()),
        }
    }

    /// Makes `config` insist on this host's key and offer the bootstrap token.
    pub fn apply(&self, config: &mut NodeConfig) {
        config.expected_host = Some(self.expected.clone());
        config.bootstrap_token = Some(self.bootstrap.clone());
    }
}

/// The first of `urls` whose host accepts a TCP connection within `per_url`, trying them in
/// order once; `None` when none does (the caller may retry, or dial the first anyway).
pub async fn first_answering(urls: &[String], per_url: Duration) -> Option<String> {
    for url in urls {
        let Some(addr) = url
            .strip_prefix("ws://")
            .or_else(|| url.strip_prefix("wss://"))
        else {
            continue;
        };
        let addr = addr.split('/').next().unwrap_or(addr);
        let reachable = tokio::time::timeout(per_url, tokio::net::TcpStream::connect(addr)).await;
        if matches!(reachable, Ok(Ok(_))) {
            return Some(url.clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn a_typo_is_an_error_not_a_panic() {
        let code = SetupCode::new(
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            18789,
            [7; 32],
            "AAAAAAAAAAAAAAAAAAAAAA".into(),
        );
        let text = code.encode().unwrap();
        let target = SetupTarget::decode(&text).unwrap();
        assert_eq!(target.urls, vec!["ws://127.0.0.1:18789"]);
        assert_eq!(target.expected.fingerprint, hex_of(&[7; 32]));
        let mut config = NodeConfig::new("ws://127.0.0.1:18789", "n", "/tmp/x");
        target.apply(&mut config);
        assert_eq!(config.expected_host, Some(target.expected.clone()));
        // Change one symbol in the middle: a checksum mismatch.
        let mut typo: Vec<char> = text.chars().collect();
        let i = typo.len() / 2;
        typo[i] = if typo[i] == 'A' { 'B' } else { 'A' };
        let typo: String = typo.into_iter().collect();
        assert!(SetupTarget::decode(&typo).is_err());
        assert!(SetupTarget::decode("").is_err());
        assert!(SetupTarget::decode("hello").is_err());
    }

    fn hex_of(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[tokio::test]
    async fn the_first_answering_address_wins() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = format!("ws://{}", listener.local_addr().unwrap());
        // A port nothing listens on (bound, then dropped).
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("ws://{}", l.local_addr().unwrap())
        };
        let urls = vec![closed.clone(), open.clone()];
        assert_eq!(first_answering(&urls, PROBE_TIMEOUT).await, Some(open));
        assert_eq!(first_answering(&[closed], PROBE_TIMEOUT).await, None);
    }
}
