//! Node commands as the assistant's tools: each command a connected node offers, and host
//! policy allows, is registered as a capability-catalog entry (`Source::Node`) whose executor
//! runs `node.invoke` through the gateway's gates, exactly as an operator's call would.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use perch_gateway::hub::Hub;
use perch_kernel::agent::{ToolFailure, Toolbox};
use perch_kernel::catalog::{
    Catalog, CatalogConfig, CatalogEntry, CompiledTools, Source, ToolContext, ToolError,
    ToolExecutor,
};
use perch_kernel::model::ToolSpec;
use perch_protocol::methods::InvokeParams;
use perch_protocol::node_commands::{DEVICE_INFO, DEVICE_STATUS, LOCATION_GET, SYSTEM_NOTIFY};
use perch_protocol::{DeviceId, ErrorCode, ErrorShape};

/// A node command as a tool: runs `node.invoke` through the same gates as an operator.
struct NodeCommand {
    hub: Arc<Hub>,
    node_id: DeviceId,
    command: String,
}

impl ToolExecutor for NodeCommand {
    fn execute(&self, args: Value, ctx: ToolContext) -> BoxFuture<'_, Result<Value, ToolError>> {
        Box::pin(async move {
            let params = InvokeParams {
                node_id: self.node_id.to_string(),
                command: self.command.clone(),
                params: Some(args),
                timeout_ms: None,
                // One key per tool call of the turn: a second call, to the same command or
                // another, is a new call, never a replay or a clash.
                idempotency_key: format!("turn:{}:{}", ctx.turn_id, ctx.call_id),
            };
            perch_gateway::invoke::invoke(&self.hub, params)
                .await
                .map(|r| r.payload)
                .map_err(|e| tool_error(&self.hub, e))
        })
    }
}

/// A gateway refusal or node failure as the model reads it: the code once, then the message.
fn tool_error(hub: &Hub, e: ErrorShape) -> ToolError {
    match e.code {
        ErrorCode::NodeNotConnected => ToolError::Unavailable(e.message),
        ErrorCode::Timeout => ToolError::Timeout(
            e.details
                .as_ref()
                .and_then(|d| d.get("timeoutMs"))
                .and_then(Value::as_u64)
                .unwrap_or(hub.config.invoke_timeout_ms),
        ),
        code => ToolError::failed(code.as_str(), e.message),
    }
}

/// Descriptions and argument schemas the model sees for the built-in node commands.
fn describe(command: &str) -> Option<(&'static str, Value)> {
    match command {
        LOCATION_GET => Some((
            "Where one of the user's devices is now: latitude, longitude, accuracy, time.",
            json!({"type": "object", "properties": {
                "desiredAccuracy": {"type": "string", "enum": ["coarse", "balanced", "precise"]}}}),
        )),
        SYSTEM_NOTIFY => Some((
            "Show a notification on one of the user's devices.",
            json!({"type": "object", "required": ["title", "body"], "properties": {
                "title": {"type": "string"}, "body": {"type": "string"}}}),
        )),
        DEVICE_INFO => Some((
            "Facts about one of the user's devices: name, operating system, version.",
            json!({"type": "object", "properties": {}}),
        )),
        DEVICE_STATUS => Some((
            "Battery and uptime of one of the user's devices.",
            json!({"type": "object", "properties": {}}),
        )),
        _ => None,
    }
}

/// Compiles the tools of the nodes connected now; a node that left is simply not there.
pub fn node_tools(hub: &Arc<Hub>) -> CompiledTools {
    let catalog = Catalog::new(CatalogConfig::default());
    for node in hub.nodes() {
        for command in &node.commands {
            if !hub.config.commands.allows(command) {
                continue;
            }
            let Some((description, schema)) = describe(command) else {
                continue;
            };
            let entry = CatalogEntry::new(
                format!("{}:{command}", node.node_id),
                command.clone(),
                Source::Node {
                    node_id: node.node_id.to_string(),
                    display_name: node.display_name.clone(),
                },
                Arc::new(NodeCommand {
                    hub: hub.clone(),
                    node_id: node.node_id.clone(),
                    command: command.clone(),
                }),
            )
            .with_description(description)
            .with_parameters(schema);
            if let Err(e) = catalog.register(entry) {
                tracing::warn!(error = %e, "node command not offered to the model");
            }
        }
    }
    catalog.set_active_node(hub.presence_list().active_device_id.as_deref());
    catalog.compile()
}

/// The compiled catalog as the agent's toolbox for one turn.
pub struct TurnTools {
    compiled: CompiledTools,
    session: String,
    turn: String,
    /// Calls made so far in this turn: part of each call's id, so a provider that reuses its
    /// tool-call ids from one model step to the next still gets distinct calls.
    calls: AtomicU64,
}

impl TurnTools {
    /// The tools of the nodes connected now, for one turn.
    pub fn new(hub: &Arc<Hub>, session: &str, turn: &str) -> Self {
        Self {
            compiled: node_tools(hub),
            session: session.to_string(),
            turn: turn.to_string(),
            calls: AtomicU64::new(0),
        }
    }
}

impl Toolbox for TurnTools {
    fn specs(&self) -> Vec<ToolSpec> {
        self.compiled.tools.clone()
    }

    fn call(
        &self,
        call_id: &str,
        name: &str,
        arguments: Value,
    ) -> Option<BoxFuture<'static, Result<Value, ToolFailure>>> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let ctx = ToolContext::new(
            self.session.clone(),
            self.turn.clone(),
            format!("{n}:{call_id}"),
        );
        match self.compiled.route(name, arguments) {
            Err(ToolError::UnknownTool(_)) => None,
            Err(e) => Some(Box::pin(async move { Err(ToolFailure::from(e)) })),
            Ok(routed) => {
                let fut = routed.run(name, ctx);
                Some(Box::pin(
                    async move { fut.await.map_err(ToolFailure::from) },
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_errors_keep_their_code_once() {
        let e = ToolFailure::from(ToolError::failed(
            "COMMAND_NOT_ALLOWED",
            "host policy does not allow \"camera.snap\"",
        ));
        assert_eq!(e.code, "COMMAND_NOT_ALLOWED");
        assert_eq!(
            e.to_string(),
            "COMMAND_NOT_ALLOWED: host policy does not allow \"camera.snap\""
        );
    }

    #[test]
    fn every_built_in_command_is_described_with_an_object_schema() {
        for c in perch_protocol::node_commands::DEFAULT_ALLOWED_COMMANDS {
            let (text, schema) = describe(c).unwrap();
            assert!(!text.is_empty());
            assert_eq!(schema["type"], "object");
        }
        assert!(describe("system.run").is_none());
    }
}
