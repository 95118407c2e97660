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
    pub fn verify_host(&self, expected_fingerprint: &str) -> Result<(), HostCheckError> {
        let proof = self.host.as_ref().ok_or(HostCheckError::NoProof)?;
        let found = proof
            .verify(&self.nonce, self.ts)
            .map_err(|_| HostCheckError::BadProof)?;
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
    /// Another key answered.
    #[error("the host's key fingerprint {found} is not the expected {expected}")]
    Mismatch {
        /// The fingerprint the host proved.
        found: String,
        /// The fingerprint the client expected.
        expected: String,
    },
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
}

impl HostProof {
    /// The string a host signs: bound to this challenge's nonce and time.
    pub fn payload(host_id: &str, nonce: &str, ts: i64) -> String {
        format!("perch-host-v1|{host_id}|{nonce}|{ts}")
    }

    /// Signs a challenge with the host key.
    pub fn sign(identity: &DeviceIdentity, nonce: &str, ts: i64) -> Self {
        let fingerprint = identity.device_id();
        let host_id = crate::identity::host_id_for(fingerprint.as_str());
        let signature = identity.sign_b64(&Self::payload(&host_id, nonce, ts));
        Self {
            host_id,
            public_key: identity.public_key_b64(),
            signature,
        }
    }

    /// Checks the proof for this nonce and time; returns the key fingerprint (hex SHA-256 of
    /// the raw key), which is what nodes pin.
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
            &Self::payload(&self.host_id, nonce, ts),
        )?;
        Ok(fingerprint)
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

    /// Fills in `device` with a proof signed by `identity` for this challenge nonce. Set
    /// `auth` before calling: the token is part of what is signed.
    pub fn sign(&mut self, identity: &DeviceIdentity, signed_at_ms: i64, nonce: &str) {
        self.device = Some(DeviceProof {
            id: identity.device_id().to_string(),
            public_key: identity.public_key_b64(),
            signature: String::new(),
            signed_at: signed_at_ms,
            nonce: nonce.to_string(),
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
        let proof = HostProof::sign(&host, "n1", 77);
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
        let ch = Challenge {
            nonce: "n".into(),
            ts: 5,
            host: Some(HostProof::sign(&host, "n", 5)),
        };
        assert_eq!(ch.verify_host(&fp), Ok(()));
        assert_eq!(ch.verify_host(&fp.to_uppercase()), Ok(()));
        assert!(matches!(
            ch.verify_host(&other.device_id().to_string()),
            Err(HostCheckError::Mismatch { .. })
        ));
        let forged = Challenge {
            nonce: "m".into(),
            ..ch.clone()
        };
        assert_eq!(forged.verify_host(&fp), Err(HostCheckError::BadProof));
        let bare = Challenge { host: None, ..ch };
        assert_eq!(bare.verify_host(&fp), Err(HostCheckError::NoProof));
    }
}
