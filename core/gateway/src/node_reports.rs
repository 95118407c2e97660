//! The reports a node publishes about itself after it connects (`node.runnerInventory.update`,
//! `node.skills.update`, `node.pluginTools.update`): checked against their bounds, kept on the
//! node's session, and shown by `node.describe`.
//!
//! They live in memory on the session of the connection that sent them, not in the store,
//! because they describe that connection: OpenClaw's node publishes them again after every
//! connect and whenever they change, so a stored copy would only show a stale inventory for an
//! offline node. When the connection ends, its reports go with it.
//!
//! Nothing here becomes callable. A plugin tool names the node command it runs through, and
//! that command passes or fails host policy like any other (`[gateway.nodes]`); skills are
//! shown, never handed to the model.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use perch_protocol::node_reports::{
    NODE_PLUGIN_TOOLS_UPDATE, NODE_RUNNER_INVENTORY_UPDATE, NODE_SKILLS_UPDATE, NodeInventory,
    NodeSkill, PluginTool, PluginToolSummary, PluginToolsUpdateParams, RunnerInventoryUpdateParams,
    SkillSummary, SkillsUpdateParams,
};
use perch_protocol::{DeviceId, ErrorCode, ErrorShape};

use crate::hub::{Hub, NodeSession, now_ms};

/// What one node connection reported; `None` for a report it never sent.
#[derive(Clone, Default)]
pub struct NodeReports {
    /// The last `node.skills.update`.
    pub skills: Option<Vec<NodeSkill>>,
    /// The last `node.pluginTools.update`.
    pub plugin_tools: Option<Vec<PluginTool>>,
    /// The last `node.runnerInventory.update`.
    pub runner: Option<RunnerInventoryUpdateParams>,
    /// When the last report arrived, ms since the epoch.
    pub updated_at_ms: Option<i64>,
}

impl std::fmt::Debug for NodeReports {
    // Counts only: skill bodies can be megabytes, and sessions are logged.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeReports")
            .field("skills", &self.skills.as_ref().map(Vec::len))
            .field("plugin_tools", &self.plugin_tools.as_ref().map(Vec::len))
            .field("runner", &self.runner.is_some())
            .finish()
    }
}

fn parse<T: DeserializeOwned>(method: &str, params: Option<Value>) -> Result<T, ErrorShape> {
    serde_json::from_value(params.unwrap_or(Value::Null)).map_err(|e| {
        ErrorShape::new(
            ErrorCode::InvalidRequest,
            format!("invalid {method} params: {e}"),
        )
        .with_details(json!({"method": method}))
    })
}

/// Answers one report from the node `from`: checks it and replaces the previous report of the
/// same kind on the node's session. Bad or oversized reports get `INVALID_REQUEST` with the
/// field and limit, and the previous report stays.
pub fn handle(
    hub: &Arc<Hub>,
    from: &DeviceId,
    method: &str,
    params: Option<Value>,
) -> Result<Value, ErrorShape> {
    let invalid = |e: perch_protocol::node_reports::ReportError| e.to_error_shape(method);
    let apply: Box<dyn FnOnce(&mut NodeReports) + Send> = match method {
        NODE_SKILLS_UPDATE => {
            let p: SkillsUpdateParams = parse(method, params)?;
            p.validate().map_err(invalid)?;
            Box::new(move |r| r.skills = Some(p.skills))
        }
        NODE_PLUGIN_TOOLS_UPDATE => {
            let p: PluginToolsUpdateParams = parse(method, params)?;
            p.validate().map_err(invalid)?;
            Box::new(move |r| r.plugin_tools = Some(p.tools))
        }
        NODE_RUNNER_INVENTORY_UPDATE => {
            let p: RunnerInventoryUpdateParams = parse(method, params)?;
            p.validate().map_err(invalid)?;
            Box::new(move |r| r.runner = Some(p))
        }
        other => {
            return Err(ErrorShape::new(
                ErrorCode::UnknownMethod,
                format!("unknown method {other:?}"),
            ));
        }
    };
    let now = now_ms();
    let updated = hub.update_node(from, |s| {
        let reports = Arc::make_mut(&mut s.reports);
        apply(reports);
        reports.updated_at_ms = Some(now);
        tracing::debug!(node = %from.short(), method, reports = ?reports, "node report kept");
    });
    if !updated {
        // The session is registered before the node's first frame is read, so this is a
        // connection that is being replaced or closed.
        return Err(ErrorShape::new(
            ErrorCode::NodeNotConnected,
            "this connection no longer carries the node",
        )
        .with_retryable(true));
    }
    Ok(json!({}))
}

/// The inventory `node.describe` shows for a node: its live session's reports, with each plugin
/// tool marked allowed only when the node advertises the tool's command and host policy lets
/// that command through. Empty for an offline node.
pub fn inventory(hub: &Hub, live: Option<&NodeSession>) -> NodeInventory {
    let Some(s) = live else {
        return NodeInventory::default();
    };
    let r = &s.reports;
    let allowed =
        |cmd: &str| s.commands.iter().any(|c| c == cmd) && hub.config.commands.allows(cmd);
    NodeInventory {
        skills: r.skills.as_ref().map(|list| {
            list.iter()
                .map(|k| SkillSummary {
                    name: k.name.clone(),
                    description: k.description.clone(),
                    content_bytes: k.content.len() as u64,
                })
                .collect()
        }),
        plugin_tools: r.plugin_tools.as_ref().map(|list| {
            list.iter()
                .map(|t| PluginToolSummary {
                    plugin_id: t.plugin_id.clone(),
                    name: t.name.clone(),
                    description: t.description.clone(),
                    command: t.via_command().map(str::to_string),
                    allowed: t.via_command().is_some_and(allowed),
                })
                .collect()
        }),
        runner: r.runner.clone(),
        updated_at_ms: r.updated_at_ms,
    }
}
