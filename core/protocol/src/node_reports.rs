//! What a node reports about itself after it connects: the skills it carries, the plugin tools
//! it could run, and its runner inventory. OpenClaw's node host publishes these with
//! `node.skills.update`, `node.pluginTools.update` and `node.runnerInventory.update` right after
//! `hello-ok`, and again whenever they change.
//!
//! Everything here is an untrusted claim from the node: each report is bounded in count and
//! size ([`SkillsUpdateParams::validate`] and friends), and a report never makes anything
//! callable. Whether a plugin tool's command may run is decided by host policy alone, like any
//! other node command.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ErrorCode, ErrorShape};

/// `node.skills.update`: the node replaces its list of skills (node).
pub const NODE_SKILLS_UPDATE: &str = "node.skills.update";
/// `node.pluginTools.update`: the node replaces its list of plugin tools (node).
pub const NODE_PLUGIN_TOOLS_UPDATE: &str = "node.pluginTools.update";
/// `node.runnerInventory.update`: the node says which runner features it has (node).
pub const NODE_RUNNER_INVENTORY_UPDATE: &str = "node.runnerInventory.update";

/// The report methods, in the order OpenClaw's node sends them.
pub const NODE_REPORT_METHODS: &[&str] = &[
    NODE_RUNNER_INVENTORY_UPDATE,
    NODE_SKILLS_UPDATE,
    NODE_PLUGIN_TOOLS_UPDATE,
];

/// The node command through which a plugin tool backed by an MCP server runs.
pub const MCP_TOOLS_CALL: &str = "mcp.tools.call.v1";

/// Most skills in one report (OpenClaw's schema says the same).
pub const MAX_SKILLS: usize = 64;
/// Longest skill name, in bytes.
pub const MAX_SKILL_NAME: usize = 64;
/// Longest skill description, in bytes.
pub const MAX_SKILL_DESCRIPTION: usize = 1024;
/// Longest skill body, in bytes.
pub const MAX_SKILL_CONTENT: usize = 64 * 1024;
/// Most plugin tools in one report. OpenClaw's schema sets no bound; Perch does, because the
/// node is not trusted.
pub const MAX_PLUGIN_TOOLS: usize = 128;
/// Longest plugin tool name, in bytes.
pub const MAX_TOOL_NAME: usize = 64;
/// Longest plugin id, command name, or MCP server or tool name, in bytes.
pub const MAX_TOOL_LABEL: usize = 256;
/// Longest plugin tool description, in bytes.
pub const MAX_TOOL_DESCRIPTION: usize = 4 * 1024;
/// Largest plugin tool parameter schema, in bytes of compact JSON.
pub const MAX_TOOL_PARAMETERS: usize = 16 * 1024;
/// Most runner protocol features in one report.
pub const MAX_PROTOCOL_FEATURES: usize = 16;
/// Longest runner protocol feature name, in bytes.
pub const MAX_PROTOCOL_FEATURE: usize = 128;
/// Largest worker capacity a node may claim (OpenClaw's bound).
pub const MAX_WORKER_CAPACITY: u32 = 1024;

/// Params of `node.skills.update`: the node's whole list, replacing the previous one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillsUpdateParams {
    /// The skills.
    pub skills: Vec<NodeSkill>,
}

/// One skill: instructions the node carries for an agent. Perch keeps them and shows them; it
/// does not hand them to its model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSkill {
    /// Lower-case name with single hyphens, for example `git-review`.
    pub name: String,
    /// What the skill is for.
    pub description: String,
    /// The skill's text.
    pub content: String,
}

/// Params of `node.pluginTools.update`: the node's whole list, replacing the previous one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginToolsUpdateParams {
    /// The tools.
    pub tools: Vec<PluginTool>,
}

/// One tool that a plugin on the node offers, run through a node command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginTool {
    /// The plugin that offers it.
    pub plugin_id: String,
    /// Tool name, for example `search_notes`.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// The node command that runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The MCP server and tool behind it, run through [`MCP_TOOLS_CALL`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpToolRef>,
}

impl PluginTool {
    /// The node command a call to this tool would go through, if any.
    pub fn via_command(&self) -> Option<&str> {
        match (&self.command, &self.mcp) {
            (Some(c), _) => Some(c.as_str()),
            (None, Some(_)) => Some(MCP_TOOLS_CALL),
            (None, None) => None,
        }
    }
}

/// An MCP server's tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpToolRef {
    /// Server name on the node.
    pub server: String,
    /// Tool name on that server.
    pub tool: String,
}

/// Params of `node.runnerInventory.update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunnerInventoryUpdateParams {
    /// Runner protocol features, for example `node-worker-supervisor-v6`.
    pub protocol_features: Vec<String>,
    /// Whether the node offers to host agent sessions, and how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_host: Option<WorkerHost>,
}

/// A node's offer to host agent sessions. Perch hosts no sessions on nodes; it records the
/// offer. Flags beyond these are accepted and not kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerHost {
    /// Whether the node offers it at all.
    pub enabled: bool,
    /// Slots, when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<WorkerCapacity>,
}

/// Worker slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerCapacity {
    /// All slots.
    pub total: u32,
    /// Free slots.
    pub available: u32,
}

/// Why a report was refused. Every variant says which field and which limit, so a node author
/// can fix the report.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReportError {
    /// A list has more entries than allowed.
    #[error("{field} has {count} entries; at most {limit} are accepted")]
    TooMany {
        /// The list.
        field: String,
        /// Its length.
        count: usize,
        /// The bound.
        limit: usize,
    },
    /// A text or schema is larger than allowed.
    #[error("{field} is {size} bytes; at most {limit} are accepted")]
    TooLarge {
        /// The field.
        field: String,
        /// Its size in bytes.
        size: usize,
        /// The bound.
        limit: usize,
    },
    /// A required text is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// The field.
        field: String,
    },
    /// A name breaks its naming rule.
    #[error("{field} is not a valid name: {rule}")]
    BadName {
        /// The field.
        field: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A value has the wrong shape or range.
    #[error("{field} is invalid: {rule}")]
    Invalid {
        /// The field.
        field: String,
        /// What it must be.
        rule: &'static str,
    },
}

impl ReportError {
    /// The answer to the node: `INVALID_REQUEST`, with the field and limit in `details`.
    /// `INVALID_REQUEST` (not `PAYLOAD_TOO_LARGE`) because OpenClaw's node retries any other
    /// code as a transient failure, forever; on `INVALID_REQUEST` it stops sending that report.
    pub fn to_error_shape(&self, method: &str) -> ErrorShape {
        let details = match self {
            ReportError::TooMany {
                field,
                count,
                limit,
            } => json!({"method": method, "field": field, "count": count, "limit": limit}),
            ReportError::TooLarge { field, size, limit } => {
                json!({"method": method, "field": field, "size": size, "limit": limit})
            }
            ReportError::Empty { field }
            | ReportError::BadName { field, .. }
            | ReportError::Invalid { field, .. } => json!({"method": method, "field": field}),
        };
        ErrorShape::new(
            ErrorCode::InvalidRequest,
            format!("invalid {method} report: {self}"),
        )
        .with_details(details)
    }
}

fn text(field: impl Fn() -> String, value: &str, limit: usize) -> Result<(), ReportError> {
    if value.is_empty() {
        return Err(ReportError::Empty { field: field() });
    }
    if value.len() > limit {
        return Err(ReportError::TooLarge {
            field: field(),
            size: value.len(),
            limit,
        });
    }
    Ok(())
}

fn count(field: &str, n: usize, limit: usize) -> Result<(), ReportError> {
    if n > limit {
        return Err(ReportError::TooMany {
            field: field.to_string(),
            count: n,
            limit,
        });
    }
    Ok(())
}

/// `git-review`: lower-case letters and digits, single hyphens inside.
fn is_skill_name(s: &str) -> bool {
    let b = s.as_bytes();
    let ok_char = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    !b.is_empty()
        && b.iter().all(ok_char)
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !s.contains("--")
}

/// `search_notes`: a letter, then letters, digits, `_` or `-`.
fn is_tool_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl SkillsUpdateParams {
    /// Checks counts, sizes and names.
    pub fn validate(&self) -> Result<(), ReportError> {
        count("skills", self.skills.len(), MAX_SKILLS)?;
        for (i, s) in self.skills.iter().enumerate() {
            let f = |name: &'static str| move || format!("skills[{i}].{name}");
            text(f("name"), &s.name, MAX_SKILL_NAME)?;
            if !is_skill_name(&s.name) {
                return Err(ReportError::BadName {
                    field: f("name")(),
                    rule: "lower-case letters, digits and single hyphens, not at either end",
                });
            }
            text(f("description"), &s.description, MAX_SKILL_DESCRIPTION)?;
            text(f("content"), &s.content, MAX_SKILL_CONTENT)?;
        }
        Ok(())
    }
}

impl PluginToolsUpdateParams {
    /// Checks counts, sizes and names.
    pub fn validate(&self) -> Result<(), ReportError> {
        count("tools", self.tools.len(), MAX_PLUGIN_TOOLS)?;
        for (i, t) in self.tools.iter().enumerate() {
            let f = |name: &'static str| move || format!("tools[{i}].{name}");
            text(f("pluginId"), &t.plugin_id, MAX_TOOL_LABEL)?;
            text(f("name"), &t.name, MAX_TOOL_NAME)?;
            if !is_tool_name(&t.name) {
                return Err(ReportError::BadName {
                    field: f("name")(),
                    rule: "a letter, then letters, digits, '_' or '-'",
                });
            }
            text(f("description"), &t.description, MAX_TOOL_DESCRIPTION)?;
            if let Some(c) = &t.command {
                text(f("command"), c, MAX_TOOL_LABEL)?;
            }
            if let Some(m) = &t.mcp {
                text(f("mcp.server"), &m.server, MAX_TOOL_LABEL)?;
                text(f("mcp.tool"), &m.tool, MAX_TOOL_LABEL)?;
            }
            if let Some(p) = &t.parameters {
                if !p.is_object() {
                    return Err(ReportError::Invalid {
                        field: f("parameters")(),
                        rule: "a JSON object",
                    });
                }
                let size = serde_json::to_string(p)
                    .map(|s| s.len())
                    .unwrap_or(usize::MAX);
                if size > MAX_TOOL_PARAMETERS {
                    return Err(ReportError::TooLarge {
                        field: f("parameters")(),
                        size,
                        limit: MAX_TOOL_PARAMETERS,
                    });
                }
            }
        }
        Ok(())
    }
}

impl RunnerInventoryUpdateParams {
    /// Checks counts, sizes and the capacity's range.
    pub fn validate(&self) -> Result<(), ReportError> {
        count(
            "protocolFeatures",
            self.protocol_features.len(),
            MAX_PROTOCOL_FEATURES,
        )?;
        for (i, p) in self.protocol_features.iter().enumerate() {
            text(|| format!("protocolFeatures[{i}]"), p, MAX_PROTOCOL_FEATURE)?;
        }
        if let Some(WorkerHost {
            capacity: Some(c), ..
        }) = &self.worker_host
            && (c.total == 0 || c.total > MAX_WORKER_CAPACITY || c.available > c.total)
        {
            return Err(ReportError::Invalid {
                field: "workerHost.capacity".into(),
                rule: "1 to 1024 slots in total, no more available than in total",
            });
        }
        Ok(())
    }
}

/// One skill as `node.describe` shows it: the body's size, not the body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillSummary {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Size of the body, in bytes.
    pub content_bytes: u64,
}

/// One plugin tool as `node.describe` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginToolSummary {
    /// The plugin that offers it.
    pub plugin_id: String,
    /// Tool name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The node command a call would go through, if the tool names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Whether that command may run now: the node advertises it and host policy allows it.
    pub allowed: bool,
}

/// What a node reported about itself on its current connection. `None` means the node sent no
/// such report (Perch's own node sends none); an empty list means it reported having none.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInventory {
    /// From `node.skills.update`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<Vec<SkillSummary>>,
    /// From `node.pluginTools.update`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_tools: Option<Vec<PluginToolSummary>>,
    /// From `node.runnerInventory.update`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<RunnerInventoryUpdateParams>,
    /// When the last report arrived, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at_ms: Option<i64>,
}

impl NodeInventory {
    /// Whether the node reported nothing.
    pub fn is_empty(&self) -> bool {
        self.skills.is_none() && self.plugin_tools.is_none() && self.runner.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skill(name: &str) -> NodeSkill {
        NodeSkill {
            name: name.into(),
            description: "d".into(),
            content: "c".into(),
        }
    }

    fn tool(name: &str) -> PluginTool {
        PluginTool {
            plugin_id: "p".into(),
            name: name.into(),
            description: "d".into(),
            parameters: None,
            command: Some("notes.search".into()),
            mcp: None,
        }
    }

    #[test]
    fn openclaw_report_shapes_parse() {
        let r: RunnerInventoryUpdateParams = serde_json::from_value(json!({
            "protocolFeatures": ["node-worker-supervisor-v6"],
            "workerHost": {"enabled": true, "capacity": {"total": 2, "available": 1},
                           "bundlePrewarm": 1}
        }))
        .unwrap();
        r.validate().unwrap();
        assert_eq!(
            r.worker_host.unwrap().capacity,
            Some(WorkerCapacity {
                total: 2,
                available: 1
            })
        );
        let t: PluginToolsUpdateParams = serde_json::from_value(json!({"tools": [
            {"pluginId": "notes", "name": "search_notes", "description": "Search",
             "parameters": {"type": "object"}, "mcp": {"server": "s", "tool": "t"}}
        ]}))
        .unwrap();
        t.validate().unwrap();
        assert_eq!(t.tools[0].via_command(), Some(MCP_TOOLS_CALL));
        let s: SkillsUpdateParams = serde_json::from_value(json!({"skills": [
            {"name": "git-review", "description": "Reviews", "content": "Do this."}
        ]}))
        .unwrap();
        s.validate().unwrap();
    }

    #[test]
    fn counts_are_bounded() {
        let many = SkillsUpdateParams {
            skills: (0..=MAX_SKILLS).map(|i| skill(&format!("s{i}"))).collect(),
        };
        assert_eq!(
            many.validate(),
            Err(ReportError::TooMany {
                field: "skills".into(),
                count: MAX_SKILLS + 1,
                limit: MAX_SKILLS
            })
        );
        let many = PluginToolsUpdateParams {
            tools: (0..=MAX_PLUGIN_TOOLS)
                .map(|i| tool(&format!("t{i}")))
                .collect(),
        };
        assert!(matches!(
            many.validate(),
            Err(ReportError::TooMany { limit, .. }) if limit == MAX_PLUGIN_TOOLS
        ));
        let features = RunnerInventoryUpdateParams {
            protocol_features: vec!["f".into(); MAX_PROTOCOL_FEATURES + 1],
            worker_host: None,
        };
        assert!(features.validate().is_err());
    }

    #[test]
    fn sizes_are_bounded_and_reported() {
        let mut s = skill("big");
        s.content = "x".repeat(MAX_SKILL_CONTENT + 1);
        let err = SkillsUpdateParams { skills: vec![s] }
            .validate()
            .unwrap_err();
        assert_eq!(
            err,
            ReportError::TooLarge {
                field: "skills[0].content".into(),
                size: MAX_SKILL_CONTENT + 1,
                limit: MAX_SKILL_CONTENT
            }
        );
        let shape = err.to_error_shape(NODE_SKILLS_UPDATE);
        assert_eq!(shape.code, ErrorCode::InvalidRequest);
        assert_eq!(shape.details.as_ref().unwrap()["limit"], MAX_SKILL_CONTENT);
        assert_eq!(
            shape.details.as_ref().unwrap()["field"],
            "skills[0].content"
        );
        let mut t = tool("t");
        t.parameters = Some(json!({"d": "x".repeat(MAX_TOOL_PARAMETERS)}));
        assert!(matches!(
            PluginToolsUpdateParams { tools: vec![t] }.validate(),
            Err(ReportError::TooLarge { .. })
        ));
        let mut t = tool("t");
        t.parameters = Some(json!([1]));
        assert!(matches!(
            PluginToolsUpdateParams { tools: vec![t] }.validate(),
            Err(ReportError::Invalid { .. })
        ));
    }

    #[test]
    fn names_follow_their_rules() {
        for good in ["a", "git-review", "x1-2"] {
            assert!(is_skill_name(good), "{good}");
        }
        for bad in ["", "-a", "a-", "a--b", "Git", "a_b", "a b"] {
            assert!(!is_skill_name(bad), "{bad}");
        }
        for good in ["a", "search_notes", "A-1"] {
            assert!(is_tool_name(good), "{good}");
        }
        for bad in ["", "1a", "_a", "a.b", "a b"] {
            assert!(!is_tool_name(bad), "{bad}");
        }
        let err = SkillsUpdateParams {
            skills: vec![skill("Bad Name")],
        }
        .validate();
        assert!(matches!(err, Err(ReportError::BadName { .. })));
        let empty = SkillsUpdateParams {
            skills: vec![NodeSkill {
                name: "ok".into(),
                description: String::new(),
                content: "c".into(),
            }],
        };
        assert_eq!(
            empty.validate(),
            Err(ReportError::Empty {
                field: "skills[0].description".into()
            })
        );
    }

    #[test]
    fn capacity_must_be_in_range() {
        let r = |total, available| RunnerInventoryUpdateParams {
            protocol_features: vec![],
            worker_host: Some(WorkerHost {
                enabled: true,
                capacity: Some(WorkerCapacity { total, available }),
            }),
        };
        assert!(r(1, 1).validate().is_ok());
        assert!(r(0, 0).validate().is_err());
        assert!(r(2, 3).validate().is_err());
        assert!(r(MAX_WORKER_CAPACITY + 1, 0).validate().is_err());
    }

    #[test]
    fn an_empty_inventory_is_left_out() {
        let i = NodeInventory::default();
        assert!(i.is_empty());
        assert_eq!(serde_json::to_value(&i).unwrap(), json!({}));
    }
}
