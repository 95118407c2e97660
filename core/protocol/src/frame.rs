//! Frame envelopes: every WebSocket text message is exactly one [`Frame`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ErrorCode, ErrorShape};

/// Longest request id a peer may use; ids are echoed back, so they are bounded.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Correlates a `res` (or a `cancel`) with the `req` it answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub String);

impl RequestId {
    /// Wraps a request id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One protocol frame, discriminated by its `type` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Frame {
    /// A request from client to host (or node to host).
    Req(Request),
    /// The answer to a request.
    Res(Response),
    /// A push from host to client.
    Event(EventFrame),
    /// The client abandons a pending request.
    Cancel(Cancel),
}

/// A method call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Caller-chosen id echoed in the response.
    pub id: RequestId,
    /// Method name, for example `node.invoke`.
    pub method: String,
    /// Method parameters; their shape depends on the method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

/// The outcome of a request: a payload on success, an [`ErrorShape`] on failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawResponse", into = "RawResponse")]
pub struct Response {
    /// The id of the request this answers.
    pub id: RequestId,
    /// Success payload or structured error; never both.
    pub result: Result<Option<Value>, ErrorShape>,
}

impl Response {
    /// A successful response.
    pub fn ok(id: RequestId, payload: Value) -> Self {
        Self {
            id,
            result: Ok(Some(payload)),
        }
    }

    /// A failed response.
    pub fn err(id: RequestId, error: ErrorShape) -> Self {
        Self {
            id,
            result: Err(error),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResponse {
    id: RequestId,
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<ErrorShape>,
}

impl TryFrom<RawResponse> for Response {
    type Error = String;

    fn try_from(raw: RawResponse) -> Result<Self, Self::Error> {
        match (raw.ok, raw.error) {
            (true, None) => Ok(Response {
                id: raw.id,
                result: Ok(raw.payload),
            }),
            (true, Some(_)) => Err("a response with ok=true must not carry an error".into()),
            (false, Some(e)) => Ok(Response {
                id: raw.id,
                result: Err(e),
            }),
            (false, None) => Err("a response with ok=false must carry an error".into()),
        }
    }
}

impl From<Response> for RawResponse {
    fn from(r: Response) -> Self {
        match r.result {
            Ok(payload) => RawResponse {
                id: r.id,
                ok: true,
                payload,
                error: None,
            },
            Err(e) => RawResponse {
                id: r.id,
                ok: false,
                payload: None,
                error: Some(e),
            },
        }
    }
}

/// Counters that let clients order state snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateVersion {
    /// Bumped on every presence change.
    pub presence: u64,
    /// Bumped on every health change.
    pub health: u64,
}

/// A host-to-client push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventFrame {
    /// Event name, for example `tick`.
    pub event: String,
    /// Event body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Per-connection sequence number, monotonic, so clients can detect gaps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// State counters at the time of the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_version: Option<StateVersion>,
}

/// Aborts a pending request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cancel {
    /// The id of the request to abandon.
    pub id: RequestId,
}

/// Why a text message is not a valid frame.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrameError {
    /// The text is not JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The JSON is not an object with a string `type`.
    #[error("a frame must be a JSON object with a string \"type\" field")]
    NotAFrame,
    /// `type` names no frame kind this protocol knows.
    #[error("unknown frame type {0:?}")]
    UnknownType(String),
    /// The frame kind is known but its fields are wrong.
    #[error("invalid {kind} frame: {reason}")]
    InvalidShape {
        /// The frame kind (`req`, `res`, ...).
        kind: &'static str,
        /// What serde said.
        reason: String,
    },
    /// The request id is empty or too long.
    #[error("request id must be 1 to {MAX_REQUEST_ID_LEN} characters")]
    BadRequestId,
}

impl FrameError {
    /// The structured error a host answers with.
    pub fn to_error_shape(&self) -> ErrorShape {
        ErrorShape::new(ErrorCode::InvalidRequest, self.to_string())
    }

    /// The request id, if the broken frame still carried a readable one, so the answer can
    /// be correlated.
    pub fn request_id_hint(text: &str) -> Option<RequestId> {
        let v: Value = serde_json::from_str(text).ok()?;
        let id = v.get("id")?.as_str()?;
        if id.is_empty() || id.len() > MAX_REQUEST_ID_LEN {
            return None;
        }
        Some(RequestId::new(id))
    }
}

impl Frame {
    /// Parses one text message, with an error that says exactly what is wrong.
    pub fn parse(text: &str) -> Result<Frame, FrameError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| FrameError::MalformedJson(e.to_string()))?;
        let kind = match value.get("type").and_then(Value::as_str) {
            Some("req") => "req",
            Some("res") => "res",
            Some("event") => "event",
            Some("cancel") => "cancel",
            Some(other) => return Err(FrameError::UnknownType(other.to_string())),
            None => return Err(FrameError::NotAFrame),
        };
        let frame: Frame = serde_json::from_value(value).map_err(|e| FrameError::InvalidShape {
            kind,
            reason: e.to_string(),
        })?;
        let id = match &frame {
            Frame::Req(r) => Some(&r.id),
            Frame::Res(r) => Some(&r.id),
            Frame::Cancel(c) => Some(&c.id),
            Frame::Event(_) => None,
        };
        if let Some(id) = id
            && (id.0.is_empty() || id.0.len() > MAX_REQUEST_ID_LEN)
        {
            return Err(FrameError::BadRequestId);
        }
        Ok(frame)
    }

    /// Serializes the frame to its wire text.
    pub fn to_text(&self) -> String {
        // Serializing these types cannot fail: every map key is a string.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// A request frame.
    pub fn req(id: impl Into<String>, method: impl Into<String>, params: Option<Value>) -> Frame {
        Frame::Req(Request {
            id: RequestId::new(id),
            method: method.into(),
            params,
        })
    }

    /// An event frame without sequence number.
    pub fn event(event: impl Into<String>, payload: Value) -> Frame {
        Frame::Event(EventFrame {
            event: event.into(),
            payload: Some(payload),
            seq: None,
            state_version: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(f: &Frame) {
        let text = f.to_text();
        assert_eq!(&Frame::parse(&text).unwrap(), f, "{text}");
    }

    #[test]
    fn all_kinds_round_trip() {
        round_trip(&Frame::req("1", "status", None));
        round_trip(&Frame::req(
            "2",
            "node.invoke",
            Some(json!({"nodeId": "ab"})),
        ));
        round_trip(&Frame::Res(Response::ok(
            RequestId::new("1"),
            json!({"x": 1}),
        )));
        round_trip(&Frame::Res(Response {
            id: RequestId::new("1"),
            result: Ok(None),
        }));
        round_trip(&Frame::Res(Response::err(
            RequestId::new("1"),
            ErrorShape::new(ErrorCode::Timeout, "late"),
        )));
        round_trip(&Frame::Event(EventFrame {
            event: "tick".into(),
            payload: Some(json!({"ts": 5})),
            seq: Some(3),
            state_version: Some(StateVersion {
                presence: 1,
                health: 2,
            }),
        }));
        round_trip(&Frame::Cancel(Cancel {
            id: RequestId::new("9"),
        }));
    }

    #[test]
    fn wire_shapes_match_reference() {
        let f = Frame::Res(Response::ok(RequestId::new("7"), json!(true)));
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            json!({"type": "res", "id": "7", "ok": true, "payload": true})
        );
        let f = Frame::Res(Response::err(
            RequestId::new("7"),
            ErrorShape::new(ErrorCode::UnknownMethod, "nope"),
        ));
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            json!({"type": "res", "id": "7", "ok": false,
                   "error": {"code": "UNKNOWN_METHOD", "message": "nope"}})
        );
        let f = Frame::Event(EventFrame {
            event: "tick".into(),
            payload: Some(json!({"ts": 1})),
            seq: Some(1),
            state_version: Some(StateVersion {
                presence: 2,
                health: 0,
            }),
        });
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            json!({"type": "event", "event": "tick", "payload": {"ts": 1}, "seq": 1,
                   "stateVersion": {"presence": 2, "health": 0}})
        );
    }

    #[test]
    fn malformed_json_is_reported() {
        assert!(matches!(
            Frame::parse("{not json"),
            Err(FrameError::MalformedJson(_))
        ));
    }

    #[test]
    fn unknown_type_is_reported() {
        assert_eq!(
            Frame::parse(r#"{"type":"bogus","id":"1"}"#),
            Err(FrameError::UnknownType("bogus".into()))
        );
        assert_eq!(Frame::parse(r#"[1,2]"#), Err(FrameError::NotAFrame));
        assert_eq!(Frame::parse(r#"{"id":"1"}"#), Err(FrameError::NotAFrame));
    }

    #[test]
    fn closed_objects_reject_unknown_fields() {
        let err = Frame::parse(r#"{"type":"req","id":"1","method":"x","extra":1}"#).unwrap_err();
        assert!(
            matches!(err, FrameError::InvalidShape { kind: "req", .. }),
            "{err:?}"
        );
    }

    #[test]
    fn inconsistent_response_is_rejected() {
        assert!(Frame::parse(r#"{"type":"res","id":"1","ok":false}"#).is_err());
        assert!(
            Frame::parse(r#"{"type":"res","id":"1","ok":true,"error":{"code":"X","message":"m"}}"#)
                .is_err()
        );
    }

    #[test]
    fn request_ids_are_bounded() {
        assert_eq!(
            Frame::parse(r#"{"type":"req","id":"","method":"x"}"#),
            Err(FrameError::BadRequestId)
        );
        let long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        let text = format!(r#"{{"type":"req","id":"{long}","method":"x"}}"#);
        assert_eq!(Frame::parse(&text), Err(FrameError::BadRequestId));
    }

    #[test]
    fn request_id_hint_survives_bad_params() {
        let hint = FrameError::request_id_hint(r#"{"type":"req","id":"42","method":7}"#);
        assert_eq!(hint, Some(RequestId::new("42")));
    }
}
