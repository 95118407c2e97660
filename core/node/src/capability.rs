//! Capability handlers: the trait a platform implements to answer node commands, and the
//! registry the runtime dispatches through and advertises at connect.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use perch_protocol::{ErrorCode, ErrorShape};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A command's failure, as the caller will see it: a stable code plus a human message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CommandError {
    /// Stable code, for example `LOCATION_UNAVAILABLE`.
    pub code: ErrorCode,
    /// What went wrong, for a human; never a secret.
    pub message: String,
}

impl CommandError {
    /// An error with any code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The params are malformed or out of range (`INVALID_REQUEST`).
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// The handler failed for a reason that is not the caller's fault (`INTERNAL`).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// The wire form carried by a failed `node.invoke.result`.
    pub fn to_error_shape(&self) -> ErrorShape {
        ErrorShape::new(self.code.clone(), self.message.clone())
    }
}

impl From<CommandError> for ErrorShape {
    fn from(e: CommandError) -> Self {
        ErrorShape::new(e.code, e.message)
    }
}

/// Decodes a command's params (a JSON object) into its typed form; `null` (no `paramsJSON`)
/// reads as `{}`, and anything else that does not fit is `INVALID_REQUEST` naming the command.
pub fn parse_params<T: DeserializeOwned>(command: &str, params: Value) -> Result<T, CommandError> {
    let params = match params {
        Value::Null => Value::Object(Default::default()),
        Value::Object(_) => params,
        _ => {
            return Err(CommandError::invalid_request(format!(
                "params for {command} must be a JSON object"
            )));
        }
    };
    serde_json::from_value(params)
        .map_err(|e| CommandError::invalid_request(format!("invalid params for {command}: {e}")))
}

/// Answers one or more node commands. Object-safe, so each platform (the desktop handlers in
/// this crate, Swift and Kotlin through the FFI) plugs in its own without the runtime knowing
/// which.
pub trait CapabilityHandler: Send + Sync {
    /// The command names this handler answers, for example `location.get`.
    fn commands(&self) -> Vec<String>;

    /// The capability categories it provides, for example `location`.
    fn caps(&self) -> Vec<String>;

    /// Permission claims advertised at connect (for example `location: true`); none by default.
    fn permissions(&self) -> BTreeMap<String, bool> {
        BTreeMap::new()
    }

    /// Whether `command` needs the app on screen (a camera, the canvas, the screen itself); the
    /// runtime refuses it while the app is in the background. None does by default.
    fn needs_foreground(&self, _command: &str) -> bool {
        false
    }

    /// Runs `command` with its decoded params (`null` when the host sent none). The future
    /// owns what it needs, so the runtime can run it on its own task and abort it on cancel.
    fn invoke(
        &self,
        command: &str,
        params: Value,
    ) -> BoxFuture<'static, Result<Value, CommandError>>;
}

/// Two handlers claimed the same command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("command {0:?} is already handled by another capability handler")]
pub struct DuplicateCommand(pub String);

/// The command → handler map a node serves, and what it advertises at connect.
#[derive(Clone, Default)]
pub struct Capabilities {
    by_command: BTreeMap<String, Arc<dyn CapabilityHandler>>,
    caps: BTreeSet<String>,
    permissions: BTreeMap<String, bool>,
}

impl std::fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capabilities")
            .field("commands", &self.commands())
            .field("caps", &self.caps)
            .finish()
    }
}

impl Capabilities {
    /// An empty registry (a node that answers nothing, but can still pair).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a handler for all its commands; fails if one is already taken, leaving the
    /// registry unchanged.
    pub fn register(
        &mut self,
        handler: Arc<dyn CapabilityHandler>,
    ) -> Result<(), DuplicateCommand> {
        let commands = handler.commands();
        if let Some(dup) = commands.iter().find(|c| self.by_command.contains_key(*c)) {
            return Err(DuplicateCommand(dup.clone()));
        }
        for c in commands {
            self.by_command.insert(c, handler.clone());
        }
        self.caps.extend(handler.caps());
        for (k, v) in handler.permissions() {
            // A permission granted by any handler counts as granted.
            *self.permissions.entry(k).or_insert(false) |= v;
        }
        Ok(())
    }

    /// Builder form of [`Capabilities::register`].
    pub fn with(mut self, handler: Arc<dyn CapabilityHandler>) -> Result<Self, DuplicateCommand> {
        self.register(handler)?;
        Ok(self)
    }

    /// Commands advertised at connect, sorted.
    pub fn commands(&self) -> Vec<String> {
        self.by_command.keys().cloned().collect()
    }

    /// Capability categories advertised at connect, sorted.
    pub fn caps(&self) -> Vec<String> {
        self.caps.iter().cloned().collect()
    }

    /// Permission claims advertised at connect.
    pub fn permissions(&self) -> BTreeMap<String, bool> {
        self.permissions.clone()
    }

    /// Whether a served command needs the app on screen.
    pub fn needs_foreground(&self, command: &str) -> bool {
        self.by_command
            .get(command)
            .is_some_and(|h| h.needs_foreground(command))
    }

    /// Whether a command is served.
    pub fn handles(&self, command: &str) -> bool {
        self.by_command.contains_key(command)
    }

    /// Runs a command; an unknown one is `INVALID_REQUEST` "unknown command X".
    pub fn invoke(
        &self,
        command: &str,
        params: Value,
    ) -> BoxFuture<'static, Result<Value, CommandError>> {
        match self.by_command.get(command) {
            Some(h) => h.invoke(command, params),
            None => {
                let err = CommandError::invalid_request(format!("unknown command {command}"));
                Box::pin(async move { Err(err) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Echo(&'static str, &'static str);

    impl CapabilityHandler for Echo {
        fn commands(&self) -> Vec<String> {
            vec![self.0.into()]
        }
        fn caps(&self) -> Vec<String> {
            vec![self.1.into()]
        }
        fn permissions(&self) -> BTreeMap<String, bool> {
            BTreeMap::from([(self.1.to_string(), true)])
        }
        fn invoke(
            &self,
            command: &str,
            params: Value,
        ) -> BoxFuture<'static, Result<Value, CommandError>> {
            let command = command.to_string();
            Box::pin(async move { Ok(json!({"command": command, "params": params})) })
        }
    }

    #[tokio::test]
    async fn dispatches_and_advertises() {
        let caps = Capabilities::new()
            .with(Arc::new(Echo("b.cmd", "bee")))
            .unwrap()
            .with(Arc::new(Echo("a.cmd", "ay")))
            .unwrap();
        assert_eq!(caps.commands(), vec!["a.cmd", "b.cmd"]);
        assert_eq!(caps.caps(), vec!["ay", "bee"]);
        assert_eq!(caps.permissions().get("ay"), Some(&true));
        assert!(caps.handles("a.cmd"));
        let out = caps.invoke("b.cmd", json!({"x": 1})).await.unwrap();
        assert_eq!(out, json!({"command": "b.cmd", "params": {"x": 1}}));
        let err = caps.invoke("nope", Value::Null).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert_eq!(err.message, "unknown command nope");
    }

    #[test]
    fn duplicate_commands_are_refused() {
        let mut caps = Capabilities::new();
        caps.register(Arc::new(Echo("a.cmd", "x"))).unwrap();
        assert_eq!(
            caps.register(Arc::new(Echo("a.cmd", "y"))),
            Err(DuplicateCommand("a.cmd".into()))
        );
        assert_eq!(caps.caps(), vec!["x"]);
    }

    #[test]
    fn params_null_reads_as_empty_object() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct P {
            #[serde(default)]
            n: Option<u32>,
        }
        assert_eq!(parse_params::<P>("c", Value::Null).unwrap(), P { n: None });
        let err = parse_params::<P>("c", json!({"n": "x"})).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(
            err.message.starts_with("invalid params for c:"),
            "{}",
            err.message
        );
        let err = parse_params::<P>("c", json!([1])).unwrap_err();
        assert_eq!(err.message, "params for c must be a JSON object");
        let shape: ErrorShape = err.into();
        assert_eq!(shape.code, ErrorCode::InvalidRequest);
    }
}
