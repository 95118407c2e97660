//! The connect handshake: challenge, `connect` params, and `hello-ok`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::identity::{DeviceIdentity, SignedConnectV3};
use crate::{DeviceId, frame::StateVersion, presence::PresenceEntry};

/// Event name of the host's first frame on every connection.
pub const CHALLENGE_EVENT: &str = "connect.challenge";
/// Method name of the client's first request.
pub const CONNECT_METHOD: &str = "connect";

/// `connect.challenge` payload: a fresh nonce the device must sign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Challenge {
    /// Single-use random nonce.
    pub nonce: String,
    /// Host clock, ms since the epoch, so devices can warn about skew.
    pub ts: i64,
    /// The host's proof of identity (a Perch addition): a node that pinned this host's key
    /// refuses an impostor before it sends its token or signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostProof>,
}

impl Challenge {
    /// Checks that the host that sent this challenge holds the key whose fingerprint the
    /// client expects (from `host-identity.json`, a setup code or a pin), before the client
    /// sends anything secret.
    pub fn verify_host(
        &self,
        expected_fingerprint: &str,
        client_nonce: &str,
    ) -> Result<(), HostCheckError> {
        let proof = self.host.as_ref().ok_or(HostCheckError::NoProof)?;
        let found = proof.verify_for(&self.nonce, self.ts, client_nonce)?;
        if !found.eq_ignore_ascii_case(expected_fingerprint.trim()) {
            return Err(HostCheckError::Mismatch {
                found,
                expected: expected_fingerprint.trim().to_string(),
            });
        }
        Ok(())
    }
}

/// Why a client did not trust the host that answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostCheckError {
    /// The challenge carried no host proof (not a Perch host, or an old one).
    #[error("the host sent no proof of its identity")]
    NoProof,
    /// The proof does not verify for this challenge.
    #[error("the host's proof of identity does not verify")]
    BadProof,
    /// The proof does not cover the nonce this client sent: recorded from another connection.
    #[error("the host's proof of identity was not made for this connection (a replay?)")]
    NotBound,
    /// `hello-ok` carries no valid binding to this connection's proof.
    #[error("the host's hello-ok is not bound to this connection (a relay answering for it?)")]
    HelloNotBound,
    /// Another key answered.
    #[error("the host's key fingerprint {found} is not the expected {expected}")]
    Mismatch {
        /// The fingerprint the host proved.
        found: String,
        /// The fingerprint the client expected.
        expected: String,
    },
}

/// The query parameter of the WebSocket URL that carries a client's own nonce. The host signs
/// it into the challenge's proof, so a proof recorded from one connection is worthless on
/// another: a client that sent a fresh nonce accepts only a proof over that nonce.
pub const CLIENT_NONCE_PARAM: &str = "clientNonce";

/// A fresh client nonce: 16 random bytes, base64url.
pub fn new_client_nonce() -> Result<String, crate::IdentityError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| crate::IdentityError::Randomness(e.to_string()))?;
    use base64::Engine;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether a client nonce is one the host signs: 16 to 128 base64url characters.
pub fn valid_client_nonce(s: &str) -> bool {
    (16..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A client nonce in the upgrade URL that the host refuses: malformed or given twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("clientNonce must be 16 to 128 base64url characters, given once")]
pub struct BadClientNonce;

/// `url` with the client nonce added as a query parameter.
pub fn url_with_client_nonce(url: &str, nonce: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    // `ws://host:port` has no path; with a query it needs one, or the request line is invalid.
    let authority = base.split_once("://").map(|(_, rest)| rest).unwrap_or(base);
    let slash = if authority.contains('/') { "" } else { "/" };
    match query {
        Some(q) if !q.is_empty() => format!("{base}{slash}?{q}&{CLIENT_NONCE_PARAM}={nonce}"),
        _ => format!("{base}{slash}?{CLIENT_NONCE_PARAM}={nonce}"),
    }
}

/// The client nonce in a request's query string, if there is exactly one well-formed one;
/// `Err` when one is present but malformed or repeated.
pub fn client_nonce_from_query(query: Option<&str>) -> Result<Option<String>, BadClientNonce> {
    let mut found = None;
    for pair in query.unwrap_or("").split('&') {
        let Some(value) = pair
            .strip_prefix(CLIENT_NONCE_PARAM)
            .and_then(|r| r.strip_prefix('='))
        else {
            continue;
        };
        if found.is_some() || !valid_client_nonce(value) {
            return Err(BadClientNonce);
        }
        found = Some(value.to_string());
    }
    Ok(found)
}

/// A host signs every challenge with its Ed25519 key so nodes can pin it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostProof {
    /// The host id: the first 16 hex characters of the key fingerprint.
    pub host_id: String,
    /// The host's raw Ed25519 public key, base64url.
    pub public_key: String,
    /// Signature over [`HostProof::payload`], base64url.
    pub signature: String,
    /// The client's nonce the proof also covers, echoed (absent when the client sent none,
    /// for example an OpenClaw node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_nonce: Option<String>,
}

impl HostProof {
    /// The string a host signs: bound to this challenge's nonce and time and, when the client
    /// sent one, to the client's own nonce.
    pub fn payload(host_id: &str, nonce: &str, ts: i64, client_nonce: Option<&str>) -> String {
        match client_nonce {
            None => format!("perch-host-v1|{host_id}|{nonce}|{ts}"),
            Some(cn) => format!("perch-host-v2|{host_id}|{nonce}|{ts}|{cn}"),
        }
    }

    /// Signs a challenge with the host key.
    pub fn sign(
        identity: &DeviceIdentity,
        nonce: &str,
        ts: i64,
        client_nonce: Option<&str>,
    ) -> Self {
        let fingerprint = identity.device_id();
        let host_id = crate::identity::host_id_for(fingerprint.as_str());
        let signature = identity.sign_b64(&Self::payload(&host_id, nonce, ts, client_nonce));
        Self {
            host_id,
            public_key: identity.public_key_b64(),
            signature,
            client_nonce: client_nonce.map(str::to_string),
        }
    }

    /// Checks the proof for this nonce and time (and the client nonce it says it covers);
    /// returns the key fingerprint (hex SHA-256 of the raw key), which is what nodes pin.
    pub fn verify(&self, nonce: &str, ts: i64) -> Result<String, crate::IdentityError> {
        let key = crate::identity::decode_public_key(&self.public_key)?;
        let fingerprint = DeviceId::from_public_key(key.as_bytes()).to_string();
        if crate::identity::host_id_for(&fingerprint) != self.host_id {
            return Err(crate::IdentityError::DeviceIdMismatch);
        }
        crate::identity::verify_device_signature(
            &fingerprint,
            &self.public_key,
            &self.signature,
            &Self::payload(&self.host_id, nonce, ts, self.client_nonce.as_deref()),
        )?;
        Ok(fingerprint)
    }

    /// [`HostProof::verify`], also requiring that the proof covers `client_nonce`: what a client
    /// that sent a nonce checks, so a recorded proof cannot be replayed to it.
    pub fn verify_for(
        &self,
        nonce: &str,
        ts: i64,
        client_nonce: &str,
    ) -> Result<String, HostCheckError> {
        if self.client_nonce.as_deref() != Some(client_nonce) {
            return Err(HostCheckError::NotBound);
        }
        self.verify(nonce, ts).map_err(|_| HostCheckError::BadProof)
    }
}

/// Who the client is to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A control-plane client: CLI, menu-bar app, web UI.
    Operator,
    /// A capability host: phone, desktop node, `perch node run`.
    Node,
}

impl Role {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Node => "node",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "operator" => Some(Role::Operator),
            "node" => Some(Role::Node),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `client.mode` values Perch's own programs send; the host decides presence by them
/// (a `cli` connection is short-lived noise and stays out of presence). Other programs may send
/// other modes (OpenClaw's `webchat`, `backend`), which the host treats like `ui`.
pub mod client_mode {
    /// The `perch` command line: one request, then gone.
    pub const CLI: &str = "cli";
    /// A long-lived operator with a face: the web UI, the menu-bar app.
    pub const UI: &str = "ui";
    /// A node runtime.
    pub const NODE: &str = "node";
}

/// Describes the connecting program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    /// Program id, for example `perch-node`, `perch-cli`, `openclaw-ios`.
    pub id: String,
    /// Shown in pairing prompts and node lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Program version.
    pub version: String,
    /// Operating system, for example `linux`, `macos`, `ios`.
    pub platform: String,
    /// Hardware family, for example `iPhone`, `Mac`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    /// Hardware model, for example `iPhone17,1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_identifier: Option<String>,
    /// Program mode: `cli`, `ui`, `node`, `backend`, `probe`, `test`, `webchat`.
    pub mode: String,
    /// Stable per-install id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

/// Proof that the client holds the device key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceProof {
    /// Hex SHA-256 of the raw public key.
    pub id: String,
    /// Base64url raw Ed25519 public key.
    pub public_key: String,
    /// Base64url signature over the v3 payload.
    pub signature: String,
    /// When the payload was signed, ms since the epoch.
    pub signed_at: i64,
    /// The challenge nonce being answered.
    pub nonce: String,
    /// The secret that opens the commitment this client sent as its client nonce; both sides
    /// derive the pairing verification code from it (see [`crate::verification`]). Not signed:
    /// a changed value no longer opens the commitment and the host refuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairing_nonce: Option<String>,
}

/// Credentials presented at connect. Never logged.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectAuth {
    /// An operator (shared) token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A device token issued at pairing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    /// A single-use bootstrap token from a setup code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_token: Option<String>,
    /// A password, where the host is configured for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl std::fmt::Debug for ConnectAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = |o: &Option<String>| if o.is_some() { "<redacted>" } else { "-" };
        f.debug_struct("ConnectAuth")
            .field("token", &mark(&self.token))
            .field("device_token", &mark(&self.device_token))
            .field("bootstrap_token", &mark(&self.bootstrap_token))
            .field("password", &mark(&self.password))
            .finish()
    }
}

impl ConnectAuth {
    /// The token that the device signature covers: the one actually sent.
    pub fn signed_token(&self) -> &str {
        self.token
            .as_deref()
            .or(self.device_token.as_deref())
            .unwrap_or("")
    }
}

/// Params of the `connect` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectParams {
    /// Oldest protocol version the client speaks.
    pub min_protocol: u32,
    /// Newest protocol version the client speaks.
    pub max_protocol: u32,
    /// The connecting program.
    pub client: ClientInfo,
    /// `operator` or `node`.
    pub role: Role,
    /// Operator scopes requested.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Node capability categories (claims).
    #[serde(default)]
    pub caps: Vec<String>,
    /// Node commands offered (claims).
    #[serde(default)]
    pub commands: Vec<String>,
    /// Node permission claims.
    #[serde(default)]
    pub permissions: BTreeMap<String, bool>,
    /// Device identity proof.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceProof>,
    /// Credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ConnectAuth>,
    /// BCP 47 locale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Free-form user agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Anything else an OpenClaw client sends (`pathEnv`, ...): accepted and ignored.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl ConnectParams {
    /// An operator's `connect` at this protocol version: the operator token and no device
    /// proof, the one shape every operator client (CLI, desktop app) sends.
    pub fn operator(client: ClientInfo, token: &str) -> Self {
        let user_agent = format!("{}/{}", client.id, client.version);
        Self {
            min_protocol: crate::PROTOCOL_VERSION,
            max_protocol: crate::PROTOCOL_VERSION,
            client,
            role: Role::Operator,
            scopes: vec![],
            caps: vec![],
            commands: vec![],
            permissions: Default::default(),
            device: None,
            auth: Some(ConnectAuth {
                token: Some(token.to_string()),
                ..Default::default()
            }),
            locale: None,
            user_agent: Some(user_agent),
            extra: Default::default(),
        }
    }

    /// The exact string the device signs for these params (OpenClaw's v3 payload), built from
    /// the device proof's id, time and nonce and the token actually sent. `None` without a
    /// device proof.
    pub fn signed_payload(&self) -> Option<String> {
        let dev = self.device.as_ref()?;
        Some(
            SignedConnectV3 {
                device_id: &dev.id,
                client_id: &self.client.id,
                client_mode: &self.client.mode,
                role: self.role.as_str(),
                scopes: &self.scopes,
                signed_at_ms: dev.signed_at,
                token: self.auth.as_ref().map(|a| a.signed_token()).unwrap_or(""),
                nonce: &dev.nonce,
                platform: Some(&self.client.platform),
                device_family: self.client.device_family.as_deref(),
            }
            .payload(),
        )
    }

    /// Reveals the pairing nonce behind this client's commitment (after [`ConnectParams::sign`]).
    pub fn reveal_pairing_nonce(&mut self, pairing_nonce: &str) {
        if let Some(dev) = self.device.as_mut() {
            dev.pairing_nonce = Some(pairing_nonce.to_string());
        }
    }

    /// Fills in `device` with a proof signed by `identity` for this challenge nonce. Set
    /// `auth` before calling: the token is part of what is signed.
    pub fn sign(&mut self, identity: &DeviceIdentity, signed_at_ms: i64, nonce: &str) {
        self.device = Some(DeviceProof {
            id: identity.device_id().to_string(),
            public_key: identity.public_key_b64(),
            signature: String::new(),
            signed_at: signed_at_ms,
            nonce: nonce.to_string(),
            pairing_nonce: None,
        });
        if let Some(payload) = self.signed_payload()
            && let Some(dev) = self.device.as_mut()
        {
            dev.signature = identity.sign_b64(&payload);
        }
    }
}

/// Limits the client must respect after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Largest frame, in bytes.
    pub max_payload: u64,
    /// Most bytes the host buffers for a slow reader before closing it.
    pub max_buffered_bytes: u64,
    /// Keepalive interval; silent for two intervals means closed.
    pub tick_interval_ms: u64,
}

/// The host that answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    /// Host software version.
    pub version: String,
    /// This connection's id, for logs on both sides.
    pub conn_id: String,
    /// The host's stable id.
    pub host_id: String,
    /// The host's display name.
    pub name: String,
    /// The host's signature binding this `hello-ok` to the connection's challenge, the
    /// client's nonce and who was admitted ([`HelloBinding`]); present when the client sent a
    /// nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
}

/// What a host signs into `hello-ok`, so a client that checked the challenge's proof knows the
/// admission came from the same host on the same connection and for itself: a relay that
/// passed the real challenge through cannot then answer `connect` on the host's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloBinding<'a> {
    /// The host's id.
    pub host_id: &'a str,
    /// The challenge nonce of this connection.
    pub nonce: &'a str,
    /// The client's nonce from the upgrade URL.
    pub client_nonce: &'a str,
    /// The role admitted.
    pub role: Role,
    /// The device admitted (empty for a device-less operator).
    pub device_id: &'a str,
    /// The connection id in `hello-ok.server.connId`.
    pub conn_id: &'a str,
}

impl HelloBinding<'_> {
    fn payload(&self) -> String {
        format!(
            "perch-hello-v1|{}|{}|{}|{}|{}|{}",
            self.host_id,
            self.nonce,
            self.client_nonce,
            self.role.as_str(),
            self.device_id,
            self.conn_id
        )
    }

    /// The host's signature, base64url.
    pub fn sign(&self, host: &DeviceIdentity) -> String {
        host.sign_b64(&self.payload())
    }

    /// Checks `hello` against the challenge whose proof the client already verified.
    pub fn verify(&self, challenge: &Challenge, hello: &HelloOk) -> Result<(), HostCheckError> {
        let proof = challenge.host.as_ref().ok_or(HostCheckError::NoProof)?;
        let signature = hello
            .server
            .binding
            .as_deref()
            .ok_or(HostCheckError::HelloNotBound)?;
        if hello.server.host_id != proof.host_id
            || hello.server.conn_id != self.conn_id
            || self.host_id != proof.host_id
        {
            return Err(HostCheckError::HelloNotBound);
        }
        let key = crate::identity::decode_public_key(&proof.public_key)
            .map_err(|_| HostCheckError::BadProof)?;
        let fingerprint = DeviceId::from_public_key(key.as_bytes());
        crate::identity::verify_device_signature(
            fingerprint.as_str(),
            &proof.public_key,
            signature,
            &self.payload(),
        )
        .map(|_| ())
        .map_err(|_| HostCheckError::HelloNotBound)
    }
}

/// What the host offers, so clients can adapt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    /// Methods this role may call.
    pub methods: Vec<String>,
    /// Events this role may receive.
    pub events: Vec<String>,
}

/// The auth outcome of a successful connect.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloAuth {
    /// The role granted.
    pub role: Role,
    /// The scopes granted.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// A newly issued device token the client must persist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    /// When the token was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at_ms: Option<i64>,
}

impl std::fmt::Debug for HelloAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HelloAuth")
            .field("role", &self.role)
            .field("scopes", &self.scopes)
            .field(
                "device_token",
                &self.device_token.as_ref().map(|_| "<redacted>"),
            )
            .field("issued_at_ms", &self.issued_at_ms)
            .finish()
    }
}

/// Initial state handed to a client so it needs no extra round trip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// How long the host has run.
    pub uptime_ms: u64,
    /// Who is connected, newest activity first.
    #[serde(default)]
    pub presence: Vec<PresenceEntry>,
    /// The counters the snapshot corresponds to; later `presence` events continue from here.
    #[serde(default)]
    pub state_version: StateVersion,
    /// Host health. OpenClaw's `hello-ok` requires the object; Perch runs no health checks yet,
    /// so it is always empty.
    #[serde(default)]
    pub health: HealthSnapshot,
}

/// `snapshot.health`: empty until the host runs health checks. Fields an OpenClaw host sends
/// here are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HealthSnapshot {}

/// The success payload of `connect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloOk {
    /// Always `hello-ok`.
    #[serde(rename = "type")]
    pub kind: HelloOkTag,
    /// The negotiated protocol version.
    pub protocol: u32,
    /// The host.
    pub server: ServerInfo,
    /// What the host offers.
    pub features: Features,
    /// Initial state.
    pub snapshot: Snapshot,
    /// Granted role, scopes and device token.
    pub auth: HelloAuth,
    /// Limits.
    pub policy: Policy,
}

/// The `hello-ok` discriminator, as a type so no other value is representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloOkTag {
    /// The only value.
    #[serde(rename = "hello-ok")]
    HelloOk,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operator_params_carry_the_token_and_no_device() {
        let client = ClientInfo {
            id: "perch-cli".into(),
            display_name: None,
            version: "1.2.3".into(),
            platform: "linux".into(),
            device_family: None,
            model_identifier: None,
            mode: "cli".into(),
            instance_id: None,
        };
        let p = ConnectParams::operator(client, "tok");
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["role"], "operator");
        assert_eq!(v["auth"]["token"], "tok");
        assert_eq!(v["minProtocol"], crate::PROTOCOL_VERSION);
        assert_eq!(v["userAgent"], "perch-cli/1.2.3");
        assert!(v.get("device").is_none());
        assert_eq!(p.signed_payload(), None);
    }

    #[test]
    fn connect_params_accept_reference_shape() {
        let v = json!({
            "minProtocol": 3, "maxProtocol": 4,
            "client": {"id": "openclaw-ios", "displayName": "Ana's iPhone", "version": "1.2.3",
                       "platform": "ios", "deviceFamily": "iPhone", "mode": "node"},
            "role": "node", "scopes": [], "caps": ["location"],
            "commands": ["location.get"], "permissions": {"location": true},
            "device": {"id": "ab", "publicKey": "pk", "signature": "sig", "signedAt": 5, "nonce": "n"},
            "auth": {"deviceToken": "t"},
            "pathEnv": "/usr/bin"
        });
        let p: ConnectParams = serde_json::from_value(v).unwrap();
        assert_eq!(p.role, Role::Node);
        assert_eq!(p.commands, vec!["location.get"]);
        assert_eq!(p.auth.as_ref().unwrap().signed_token(), "t");
        assert_eq!(p.extra.get("pathEnv"), Some(&json!("/usr/bin")));
        let back = serde_json::to_value(&p).unwrap();
        let again: ConnectParams = serde_json::from_value(back).unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn sign_produces_a_verifiable_proof() {
        let id = DeviceIdentity::from_seed(&[9; 32]);
        let mut p: ConnectParams = serde_json::from_value(json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "perch-node", "version": "1", "platform": "Linux", "mode": "node"},
            "role": "node", "auth": {"deviceToken": "tok"}
        }))
        .unwrap();
        p.sign(&id, 1234, "nonce-1");
        let payload = p.signed_payload().unwrap();
        assert_eq!(
            payload,
            format!(
                "v3|{}|perch-node|node|node||1234|tok|nonce-1|linux|",
                id.device_id()
            )
        );
        let dev = p.device.as_ref().unwrap();
        crate::identity::verify_device_signature(
            &dev.id,
            &dev.public_key,
            &dev.signature,
            &payload,
        )
        .unwrap();
    }

    #[test]
    fn host_proof_verifies_and_binds_the_nonce() {
        let host = DeviceIdentity::from_seed(&[4; 32]);
        let proof = HostProof::sign(&host, "n1", 77, None);
        let fp = proof.verify("n1", 77).unwrap();
        assert_eq!(fp, host.device_id().to_string());
        assert_eq!(proof.host_id, fp[..16]);
        assert!(proof.verify("n2", 77).is_err(), "another nonce");
        assert!(proof.verify("n1", 78).is_err(), "another time");
        let mut spoof = proof.clone();
        spoof.host_id = "0000000000000000".into();
        assert!(
            spoof.verify("n1", 77).is_err(),
            "host id must match the key"
        );
        let other = DeviceIdentity::from_seed(&[5; 32]);
        let mut stolen = proof;
        stolen.public_key = other.public_key_b64();
        assert!(
            stolen.verify("n1", 77).is_err(),
            "key must match the host id"
        );
    }

    #[test]
    fn unknown_role_is_rejected() {
        let v = json!({"minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "x", "version": "1", "platform": "linux", "mode": "cli"},
            "role": "admin"});
        assert!(serde_json::from_value::<ConnectParams>(v).is_err());
    }

    #[test]
    fn auth_debug_never_shows_secrets() {
        let a = ConnectAuth {
            token: Some("s3cret-operator".into()),
            device_token: Some("s3cret-device".into()),
            ..Default::default()
        };
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
        let h = HelloAuth {
            role: Role::Node,
            scopes: vec![],
            device_token: Some("s3cret-device".into()),
            issued_at_ms: Some(1),
        };
        assert!(!format!("{h:?}").contains("s3cret"));
    }

    #[test]
    fn hello_ok_round_trips() {
        let h = HelloOk {
            kind: HelloOkTag::HelloOk,
            protocol: 4,
            server: ServerInfo {
                version: "0.1.0".into(),
                conn_id: "c1".into(),
                host_id: "h".into(),
                name: "desk".into(),
                binding: None,
            },
            features: Features {
                methods: vec!["node.invoke".into()],
                events: vec!["tick".into()],
            },
            snapshot: Snapshot {
                uptime_ms: 3,
                presence: vec![],
                state_version: StateVersion::default(),
                health: HealthSnapshot::default(),
            },
            auth: HelloAuth {
                role: Role::Operator,
                scopes: vec![],
                device_token: None,
                issued_at_ms: None,
            },
            policy: Policy {
                max_payload: 1,
                max_buffered_bytes: 2,
                tick_interval_ms: 3,
            },
        };
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v["type"], "hello-ok");
        assert_eq!(v["policy"]["tickIntervalMs"], 3);
        assert_eq!(v["snapshot"]["health"], json!({}));
        assert_eq!(serde_json::from_value::<HelloOk>(v).unwrap(), h);
    }

    #[test]
    fn a_client_checks_the_host_before_it_trusts_it() {
        let host = DeviceIdentity::from_seed(&[3; 32]);
        let other = DeviceIdentity::from_seed(&[4; 32]);
        let fp = host.device_id().to_string();
        let cn = "client-nonce-0123456789";
        let ch = Challenge {
            nonce: "n".into(),
            ts: 5,
            host: Some(HostProof::sign(&host, "n", 5, Some(cn))),
        };
        assert_eq!(ch.verify_host(&fp, cn), Ok(()));
        assert_eq!(ch.verify_host(&fp.to_uppercase(), cn), Ok(()));
        assert!(matches!(
            ch.verify_host(&other.device_id().to_string(), cn),
            Err(HostCheckError::Mismatch { .. })
        ));
        // Replayed to a client that sent another nonce, or stripped of it.
        assert_eq!(
            ch.verify_host(&fp, "another-nonce-0123456789"),
            Err(HostCheckError::NotBound)
        );
        let v1 = Challenge {
            host: Some(HostProof::sign(&host, "n", 5, None)),
            ..ch.clone()
        };
        assert_eq!(v1.verify_host(&fp, cn), Err(HostCheckError::NotBound));
        let mut claimed = HostProof::sign(&host, "n", 5, None);
        claimed.client_nonce = Some(cn.into());
        let claimed = Challenge {
            host: Some(claimed),
            ..ch.clone()
        };
        assert_eq!(claimed.verify_host(&fp, cn), Err(HostCheckError::BadProof));
        let forged = Challenge {
            nonce: "m".into(),
            ..ch.clone()
        };
        assert_eq!(forged.verify_host(&fp, cn), Err(HostCheckError::BadProof));
        let bare = Challenge { host: None, ..ch };
        assert_eq!(bare.verify_host(&fp, cn), Err(HostCheckError::NoProof));
    }

    #[test]
    fn hello_ok_is_bound_to_the_connection_and_the_admitted_device() {
        let host = DeviceIdentity::from_seed(&[3; 32]);
        let cn = "client-nonce-0123456789";
        let ch = Challenge {
            nonce: "n".into(),
            ts: 5,
            host: Some(HostProof::sign(&host, "n", 5, Some(cn))),
        };
        let host_id = ch.host.as_ref().unwrap().host_id.clone();
        let binding = HelloBinding {
            host_id: &host_id,
            nonce: "n",
            client_nonce: cn,
            role: Role::Node,
            device_id: "dev-1",
            conn_id: "c1",
        };
        let hello = |sig: Option<String>, conn: &str| {
            let mut v: HelloOk = serde_json::from_value(json!({
                "type": "hello-ok", "protocol": 4,
                "server": {"version": "1", "connId": conn, "hostId": host_id, "name": "desk"},
                "features": {"methods": [], "events": []},
                "snapshot": {"uptimeMs": 0, "presence": [], "stateVersion": {"presence": 0, "health": 0}, "health": {}},
                "auth": {"role": "node", "scopes": []},
                "policy": {"maxPayload": 1, "maxBufferedBytes": 1, "tickIntervalMs": 1}
            }))
            .unwrap();
            v.server.binding = sig;
            v
        };
        let good = hello(Some(binding.sign(&host)), "c1");
        assert_eq!(binding.verify(&ch, &good), Ok(()));
        // Unsigned, signed by another key, for another device, nonce or connection: refused.
        assert_eq!(
            binding.verify(&ch, &hello(None, "c1")),
            Err(HostCheckError::HelloNotBound)
        );
        let impostor = DeviceIdentity::from_seed(&[4; 32]);
        assert_eq!(
            binding.verify(&ch, &hello(Some(binding.sign(&impostor)), "c1")),
            Err(HostCheckError::HelloNotBound)
        );
        for other in [
            HelloBinding {
                device_id: "dev-2",
                ..binding
            },
            HelloBinding {
                client_nonce: "another-client-nonce-01",
                ..binding
            },
            HelloBinding {
                nonce: "m",
                ..binding
            },
            HelloBinding {
                role: Role::Operator,
                ..binding
            },
        ] {
            let signed = hello(Some(other.sign(&host)), "c1");
            assert_eq!(
                binding.verify(&ch, &signed),
                Err(HostCheckError::HelloNotBound)
            );
        }
        let moved = HelloBinding {
            conn_id: "c2",
            ..binding
        };
        assert_eq!(
            binding.verify(&ch, &hello(Some(moved.sign(&host)), "c2")),
            Err(HostCheckError::HelloNotBound)
        );
    }

    #[test]
    fn client_nonces_travel_in_the_url() {
        let n = new_client_nonce().unwrap();
        assert!(valid_client_nonce(&n));
        let url = url_with_client_nonce("ws://127.0.0.1:1", &n);
        let q = url.split_once('?').map(|(_, q)| q);
        assert_eq!(client_nonce_from_query(q), Ok(Some(n.clone())));
        assert_eq!(
            url_with_client_nonce("ws://h/?a=1", "x"),
            "ws://h/?a=1&clientNonce=x"
        );
        assert_eq!(
            url_with_client_nonce("ws://127.0.0.1:9", "x"),
            "ws://127.0.0.1:9/?clientNonce=x"
        );
        assert_eq!(
            url_with_client_nonce("wss://h:1/gw", "x"),
            "wss://h:1/gw?clientNonce=x"
        );
        assert_eq!(client_nonce_from_query(None), Ok(None));
        assert_eq!(client_nonce_from_query(Some("a=1")), Ok(None));
        assert!(client_nonce_from_query(Some("clientNonce=short")).is_err());
        assert!(client_nonce_from_query(Some("clientNonce=bad%20chars-0123456789")).is_err());
        let twice = format!("clientNonce={n}&clientNonce={n}");
        assert!(client_nonce_from_query(Some(&twice)).is_err());
    }
}
