//! The method table: every method the host serves is registered here once, with who may call
//! it (a role, and for operators the scope it needs) and its handler. `hello-ok`'s
//! `features.methods` is generated from this table, and requests are dispatched through it, so
//! what is advertised and what runs cannot drift apart.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use perch_protocol::access::{DEVICE_ACCESS_LIST, NODE_ACCESS_LIST};
use perch_protocol::chat::CHAT_SEND;
use perch_protocol::handshake::Role;
use perch_protocol::location as loc;
use perch_protocol::location::{LOCATION_CHANGES, NODE_LOCATION_WATCH};
use perch_protocol::methods::{
    self, DeviceParams, InvokeParams, InvokeResultParams, NodeSelector, PairDecision,
    PairDecisionParams,
};
use perch_protocol::node_reports::{
    NODE_PLUGIN_TOOLS_UPDATE, NODE_RUNNER_INVENTORY_UPDATE, NODE_SKILLS_UPDATE,
};
use perch_protocol::notify_replies::NOTIFY_REPLIES_LIST;
use perch_protocol::presence::{NODE_EVENT, NodeEventParams, SYSTEM_PRESENCE};
use perch_protocol::scopes::{Scope, Scopes};
use perch_protocol::sessions::{SESSIONS_HISTORY, SESSIONS_LIST};
use perch_protocol::settings::{
    SETTINGS_CHANGED_EVENT, SETTINGS_GET, SETTINGS_SECRET_CLEAR, SETTINGS_SECRET_SET, SETTINGS_SET,
};
use perch_protocol::{DeviceId, ErrorCode, ErrorShape};
use perch_store::Requester;

use crate::hub::{Hub, Outbox};
use crate::operator::{self, Departure};

/// What an operator method's handler gets.
pub struct OperatorCall {
    /// The gateway.
    pub hub: Arc<Hub>,
    /// The caller's outbound queue, for methods that stream events (chat).
    pub caller: Outbox,
    /// The request's params.
    pub params: Option<Value>,
    /// Who is calling, as the access record names an operator: its device id, when the
    /// connection proved one, and its client's label.
    pub operator: Requester,
}

/// What a node method's handler gets.
pub struct NodeCall<'a> {
    /// The gateway.
    pub hub: &'a Arc<Hub>,
    /// The node that called.
    pub node: &'a DeviceId,
    /// The request's params.
    pub params: Option<Value>,
}

/// What a node method that reads the store gets: owned, because it runs in its own task.
pub struct NodeTaskCall {
    /// The gateway.
    pub hub: Arc<Hub>,
    /// The node that called (its proven device id).
    pub node: DeviceId,
    /// The request's params.
    pub params: Option<Value>,
}

/// A method's answer.
pub type Reply = Result<Value, ErrorShape>;

/// How a method runs.
#[derive(Clone, Copy)]
pub enum Handler {
    /// An operator method: runs in its own task (it may wait on a node or a model), and a
    /// `cancel` frame stops it.
    Operator {
        /// The scope the caller needs.
        scope: Scope,
        /// The handler.
        run: fn(OperatorCall) -> BoxFuture<'static, Reply>,
    },
    /// A node method: quick bookkeeping, answered inline on the node's connection.
    Node {
        /// The handler.
        run: fn(NodeCall<'_>) -> Reply,
    },
    /// A node method that waits on the database: runs in its own task, like an operator
    /// method, so the node's connection keeps serving invokes meanwhile.
    NodeTask {
        /// The handler.
        run: fn(NodeTaskCall) -> BoxFuture<'static, Reply>,
    },
}

/// One registered method.
#[derive(Clone, Copy)]
pub struct Method {
    /// The wire name.
    pub name: &'static str,
    /// Who may call it, and how it runs.
    pub handler: Handler,
}

impl Method {
    /// The role that may call it.
    pub fn role(&self) -> Role {
        match self.handler {
            Handler::Operator { .. } => Role::Operator,
            Handler::Node { .. } | Handler::NodeTask { .. } => Role::Node,
        }
    }

    /// Whether a caller with this role and these scopes may call it.
    pub fn allows(&self, role: Role, scopes: Scopes) -> bool {
        match self.handler {
            Handler::Operator { scope, .. } => role == Role::Operator && scopes.allows(scope),
            Handler::Node { .. } | Handler::NodeTask { .. } => role == Role::Node,
        }
    }
}

/// Why a request was not dispatched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No such method.
    Unknown,
    /// A method of the other role.
    WrongRole(Role),
    /// An operator method needing a scope this connection was not granted.
    MissingScope(Scope),
}

impl Refusal {
    /// The error the caller reads.
    pub fn to_shape(&self, method: &str, role: Role) -> ErrorShape {
        match self {
            Refusal::Unknown => ErrorShape::new(
                ErrorCode::UnknownMethod,
                format!("unknown method {method:?}"),
            ),
            Refusal::WrongRole(_) => ErrorShape::new(
                ErrorCode::Forbidden,
                format!("{method:?} is not available to the {role} role"),
            ),
            Refusal::MissingScope(scope) => ErrorShape::new(
                ErrorCode::Forbidden,
                format!(
                    "{method:?} needs the {scope} scope, which this connection was not granted"
                ),
            )
            .with_details(json!({"missingScope": scope.as_str()})),
        }
    }
}

/// Finds the method a caller may run, or says why not.
pub fn lookup(name: &str, role: Role, scopes: Scopes) -> Result<&'static Method, Refusal> {
    let m = INDEX.get(name).ok_or(Refusal::Unknown)?;
    match m.handler {
        Handler::Operator { scope, .. } if role == Role::Operator && !scopes.allows(scope) => {
            Err(Refusal::MissingScope(scope))
        }
        _ if m.role() != role => Err(Refusal::WrongRole(m.role())),
        _ => Ok(m),
    }
}

/// The methods a caller may run, in table order: `hello-ok`'s `features.methods`.
pub fn advertised(role: Role, scopes: Scopes) -> Vec<String> {
    TABLE
        .iter()
        .filter(|m| m.allows(role, scopes))
        .map(|m| m.name.to_string())
        .collect()
}

/// Every registered method, for docs and tests.
pub fn table() -> &'static [Method] {
    &TABLE
}

fn parse<T: DeserializeOwned>(params: Option<Value>) -> Result<T, ErrorShape> {
    serde_json::from_value(params.unwrap_or(Value::Null))
        .map_err(|e| ErrorShape::new(ErrorCode::InvalidRequest, format!("invalid params: {e}")))
}

fn to_value<T: Serialize>(v: &T) -> Reply {
    serde_json::to_value(v).map_err(|e| ErrorShape::new(ErrorCode::Internal, e.to_string()))
}

/// An operator method: the scope it needs and an async body over the call.
macro_rules! operator {
    ($name:expr, $scope:ident, |$c:ident| $body:expr) => {
        Method {
            name: $name,
            handler: Handler::Operator {
                scope: Scope::$scope,
                run: |$c: OperatorCall| Box::pin(async move { $body }),
            },
        }
    };
}

/// A report a node publishes about itself (`node_reports.rs`).
macro_rules! node_report {
    ($name:ident) => {
        Method {
            name: $name,
            handler: Handler::Node {
                run: |c| crate::node_reports::handle(c.hub, c.node, $name, c.params),
            },
        }
    };
}

static TABLE: LazyLock<Vec<Method>> = LazyLock::new(|| {
    vec![
        operator!(methods::STATUS, Read, |c| to_value(
            &operator::status(&c.hub).await?
        )),
        operator!(methods::DEVICE_PAIR_LIST, Read, |c| to_value(
            &operator::pair_list(&c.hub).await?
        )),
        operator!(methods::DEVICE_PAIR_APPROVE, Pairing, |c| {
            let p: PairDecisionParams = parse(c.params)?;
            to_value(&operator::decide(&c.hub, &p.request_id, PairDecision::Approved).await?)
        }),
        operator!(methods::DEVICE_PAIR_REJECT, Pairing, |c| {
            let p: PairDecisionParams = parse(c.params)?;
            to_value(&operator::decide(&c.hub, &p.request_id, PairDecision::Rejected).await?)
        }),
        operator!(methods::DEVICE_PAIR_REVOKE, Pairing, |c| {
            let p: DeviceParams = parse(c.params)?;
            to_value(&operator::depart(&c.hub, &p.device_id, Departure::Revoke).await?)
        }),
        operator!(methods::DEVICE_PAIR_REMOVE, Pairing, |c| {
            let p: DeviceParams = parse(c.params)?;
            to_value(&operator::depart(&c.hub, &p.device_id, Departure::Remove).await?)
        }),
        operator!(methods::DEVICE_PAIR_SETUP_CODE, Pairing, |c| to_value(
            &crate::setup_code::mint(&c.hub).await?
        )),
        operator!(SYSTEM_PRESENCE, Read, |c| to_value(&c.hub.presence_list())),
        operator!(CHAT_SEND, Write, |c| to_value(
            &crate::chat::send(&c.hub, &c.caller, parse(c.params)?).await?
        )),
        operator!(SESSIONS_LIST, Read, |c| to_value(
            &crate::sessions::list(&c.hub).await?
        )),
        operator!(SESSIONS_HISTORY, Read, |c| to_value(
            &crate::sessions::history(&c.hub, parse(c.params)?).await?
        )),
        operator!(loc::PLACES_LIST, Read, |c| to_value(
            &crate::location::list_places(&c.hub).await?
        )),
        operator!(loc::PLACES_ADD, Write, |c| to_value(
            &crate::location::add_place(&c.hub, parse(c.params)?).await?
        )),
        operator!(loc::PLACES_REMOVE, Write, |c| to_value(
            &crate::location::remove_place(&c.hub, parse(c.params)?).await?
        )),
        operator!(loc::LOCATION_SHARE, Admin, |c| to_value(
            &crate::location::share(&c.hub, parse(c.params)?).await?
        )),
        operator!(loc::LOCATION_STATUS, Read, |c| to_value(
            &crate::location::status(&c.hub).await?
        )),
        operator!(loc::LOCATION_AUDIT, Read, |c| {
            let p: loc::AuditParams = match c.params {
                None => Default::default(),
                Some(v) => parse(Some(v))?,
            };
            to_value(&crate::location::audit(&c.hub, p).await?)
        }),
        operator!(SETTINGS_GET, Read, |c| to_value(
            &c.hub.services.settings(&c.hub).await?
        )),
        operator!(SETTINGS_SET, Admin, |c| {
            let patch = c.params.unwrap_or_else(|| json!({}));
            let settings = c.hub.services.update_settings(&c.hub, patch).await?;
            c.hub.broadcast_operators(SETTINGS_CHANGED_EVENT, &settings);
            to_value(&settings)
        }),
        // Write-only: the answer and the event carry whether a key is set, never the key.
        operator!(SETTINGS_SECRET_SET, Admin, |c| {
            let (tier, secret) = crate::tier_secret::parse_set(c.params)?;
            let settings = c.hub.services.set_tier_secret(&c.hub, tier, secret).await?;
            c.hub.broadcast_operators(SETTINGS_CHANGED_EVENT, &settings);
            to_value(&settings)
        }),
        operator!(SETTINGS_SECRET_CLEAR, Admin, |c| {
            let tier = crate::tier_secret::parse_clear(c.params)?;
            let settings = c.hub.services.clear_tier_secret(&c.hub, tier).await?;
            c.hub.broadcast_operators(SETTINGS_CHANGED_EVENT, &settings);
            to_value(&settings)
        }),
        operator!(methods::NODE_LIST, Read, |c| to_value(
            &operator::node_list(&c.hub).await?
        )),
        operator!(methods::NODE_DESCRIBE, Read, |c| {
            let p: NodeSelector = parse(c.params)?;
            to_value(&operator::describe(&c.hub, &p.node_id).await?)
        }),
        operator!(methods::NODE_INVOKE, Write, |c| {
            let p: InvokeParams = parse(c.params)?;
            to_value(&crate::invoke::invoke(&c.hub, p, c.operator).await?)
        }),
        operator!(DEVICE_ACCESS_LIST, Read, |c| to_value(
            &crate::access::device_access(&c.hub, parse(c.params)?).await?
        )),
        operator!(LOCATION_CHANGES, Read, |c| {
            let p = match c.params {
                None => Default::default(),
                Some(v) => parse(Some(v))?,
            };
            to_value(&crate::location_changes::list(&c.hub, p).await?)
        }),
        operator!(NOTIFY_REPLIES_LIST, Read, |c| {
            let p = match c.params {
                None => Default::default(),
                Some(v) => parse(Some(v))?,
            };
            to_value(&crate::node_events::list_replies(&c.hub, p).await?)
        }),
        Method {
            name: methods::NODE_INVOKE_RESULT,
            handler: Handler::Node {
                run: |c| {
                    let p: InvokeResultParams = parse(c.params)?;
                    c.hub.invokes.complete(c.node, p).map(|_| json!({}))
                },
            },
        },
        // A task, not inline: a reply is written to the database before it is acknowledged.
        Method {
            name: NODE_EVENT,
            handler: Handler::NodeTask {
                run: |c| {
                    Box::pin(async move {
                        let p: NodeEventParams = parse(c.params)?;
                        crate::node_events::handle(c.hub, c.node, p).await
                    })
                },
            },
        },
        Method {
            name: NODE_LOCATION_WATCH,
            handler: Handler::NodeTask {
                run: |c| {
                    Box::pin(async move {
                        to_value(&crate::location_changes::watch(&c.hub, &c.node).await?)
                    })
                },
            },
        },
        Method {
            name: NODE_ACCESS_LIST,
            handler: Handler::NodeTask {
                run: |c| {
                    Box::pin(async move {
                        let p = match c.params {
                            None => Default::default(),
                            Some(v) => parse(Some(v))?,
                        };
                        to_value(&crate::access::node_access(&c.hub, &c.node, p).await?)
                    })
                },
            },
        },
        node_report!(NODE_RUNNER_INVENTORY_UPDATE),
        node_report!(NODE_SKILLS_UPDATE),
        node_report!(NODE_PLUGIN_TOOLS_UPDATE),
    ]
});

static INDEX: LazyLock<HashMap<&'static str, &'static Method>> =
    LazyLock::new(|| TABLE.iter().map(|m| (m.name, m)).collect());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_registered_once() {
        assert_eq!(INDEX.len(), TABLE.len(), "a method is registered twice");
        assert!(
            !TABLE
                .iter()
                .any(|m| m.name == perch_protocol::handshake::CONNECT_METHOD)
        );
    }

    #[test]
    fn roles_see_only_their_methods() {
        let op = advertised(Role::Operator, Scopes::all());
        let node = advertised(Role::Node, Scopes::NONE);
        assert!(op.contains(&"node.invoke".to_string()));
        assert!(op.contains(&"device.access.list".to_string()));
        assert!(op.contains(&"notify.replies.list".to_string()));
        assert!(!op.contains(&"node.access.list".to_string()));
        assert!(!op.contains(&"node.invoke.result".to_string()));
        assert_eq!(
            node,
            vec![
                "node.invoke.result",
                "node.event",
                "node.location.watch",
                "node.access.list",
                "node.runnerInventory.update",
                "node.skills.update",
                "node.pluginTools.update"
            ]
        );
        assert_eq!(op.len() + node.len(), TABLE.len());
    }

    #[test]
    fn scopes_narrow_what_an_operator_sees_and_runs() {
        let read = Scopes::grant(&["operator.read".into()]);
        let ads = advertised(Role::Operator, read);
        assert!(ads.contains(&"status".to_string()));
        assert!(!ads.contains(&"chat.send".to_string()));
        assert!(!ads.contains(&"device.pair.approve".to_string()));
        assert_eq!(
            lookup("chat.send", Role::Operator, read).err(),
            Some(Refusal::MissingScope(Scope::Write))
        );
        assert!(lookup("status", Role::Operator, read).is_ok());
        assert!(ads.contains(&"device.access.list".to_string()));
        assert_eq!(
            lookup("node.access.list", Role::Operator, Scopes::all()).err(),
            Some(Refusal::WrongRole(Role::Node))
        );
        assert_eq!(
            lookup("device.access.list", Role::Node, Scopes::NONE).err(),
            Some(Refusal::WrongRole(Role::Operator))
        );
        assert_eq!(
            lookup("node.invoke.result", Role::Operator, Scopes::all()).err(),
            Some(Refusal::WrongRole(Role::Node))
        );
        assert_eq!(
            lookup("status", Role::Node, Scopes::NONE).err(),
            Some(Refusal::WrongRole(Role::Operator))
        );
        assert_eq!(
            lookup("nope", Role::Operator, Scopes::all()).err(),
            Some(Refusal::Unknown)
        );
    }
}
