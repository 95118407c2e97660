//! The life of one connection as a state machine: challenged, waiting for the user's
//! approval, admitted, closed. Transitions outside this table are bugs and are refused.

use perch_protocol::DeviceId;
use perch_protocol::handshake::Role;
use perch_protocol::scopes::Scopes;

/// Where a connection is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Challenge sent; the next frame must be `connect` signing this nonce.
    AwaitingConnect {
        /// The single-use nonce.
        nonce: String,
    },
    /// The device is unknown; its pairing request waits for the user. The nonce is spent.
    AwaitingApproval {
        /// The request the user must decide.
        request_id: String,
        /// The device.
        device_id: DeviceId,
    },
    /// Admitted with a role.
    Ready {
        /// The granted role.
        role: Role,
        /// The granted operator scopes (none for nodes).
        scopes: Scopes,
        /// The device, when it proved one.
        device_id: Option<DeviceId>,
    },
    /// Closed; nothing more happens.
    Closed,
}

/// What moves a connection from one phase to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseEvent {
    /// `connect` succeeded.
    Admitted {
        /// The granted role.
        role: Role,
        /// The granted operator scopes (none for nodes).
        scopes: Scopes,
        /// The device, if any.
        device_id: Option<DeviceId>,
    },
    /// `connect` came from an unknown device; a request was filed.
    PairingRequested {
        /// The request.
        request_id: String,
        /// The device.
        device_id: DeviceId,
    },
    /// The user approved; a new challenge with this nonce was sent.
    Approved {
        /// The fresh nonce.
        nonce: String,
    },
    /// Rejected, refused, revoked, timed out, or the socket ended.
    Close,
}

/// A transition the table does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal connection transition from {from} on {event}")]
pub struct IllegalTransition {
    /// The phase name.
    pub from: &'static str,
    /// The event name.
    pub event: &'static str,
}

impl Phase {
    /// The phase's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::AwaitingConnect { .. } => "awaiting-connect",
            Phase::AwaitingApproval { .. } => "awaiting-approval",
            Phase::Ready { .. } => "ready",
            Phase::Closed => "closed",
        }
    }

    /// Whether the handshake has completed (the larger frame limit applies).
    pub fn is_ready(&self) -> bool {
        matches!(self, Phase::Ready { .. })
    }

    /// The transition function.
    pub fn next(self, event: PhaseEvent) -> Result<Phase, IllegalTransition> {
        let from = self.name();
        match (self, event) {
            (_, PhaseEvent::Close) => Ok(Phase::Closed),
            (
                Phase::AwaitingConnect { .. },
                PhaseEvent::Admitted {
                    role,
                    scopes,
                    device_id,
                },
            ) => Ok(Phase::Ready {
                role,
                scopes,
                device_id,
            }),
            (
                Phase::AwaitingConnect { .. },
                PhaseEvent::PairingRequested {
                    request_id,
                    device_id,
                },
            ) => Ok(Phase::AwaitingApproval {
                request_id,
                device_id,
            }),
            (Phase::AwaitingApproval { .. }, PhaseEvent::Approved { nonce }) => {
                Ok(Phase::AwaitingConnect { nonce })
            }
            (_, e) => Err(IllegalTransition {
                from,
                event: match e {
                    PhaseEvent::Admitted { .. } => "admitted",
                    PhaseEvent::PairingRequested { .. } => "pairing-requested",
                    PhaseEvent::Approved { .. } => "approved",
                    PhaseEvent::Close => "close",
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> DeviceId {
        DeviceId::parse(&"b".repeat(64)).unwrap()
    }

    #[test]
    fn pairing_flow_on_one_connection() {
        let p = Phase::AwaitingConnect { nonce: "n1".into() };
        let p = p
            .next(PhaseEvent::PairingRequested {
                request_id: "r".into(),
                device_id: dev(),
            })
            .unwrap();
        assert_eq!(p.name(), "awaiting-approval");
        let p = p.next(PhaseEvent::Approved { nonce: "n2".into() }).unwrap();
        assert_eq!(p, Phase::AwaitingConnect { nonce: "n2".into() });
        let p = p
            .next(PhaseEvent::Admitted {
                role: Role::Node,
                scopes: Scopes::NONE,
                device_id: Some(dev()),
            })
            .unwrap();
        assert!(p.is_ready());
        assert_eq!(p.next(PhaseEvent::Close).unwrap(), Phase::Closed);
    }

    #[test]
    fn illegal_transitions_are_refused() {
        let ready = Phase::Ready {
            role: Role::Operator,
            scopes: Scopes::all(),
            device_id: None,
        };
        assert!(
            ready
                .clone()
                .next(PhaseEvent::Approved { nonce: "x".into() })
                .is_err()
        );
        assert!(
            ready
                .next(PhaseEvent::Admitted {
                    role: Role::Node,
                    scopes: Scopes::NONE,
                    device_id: None
                })
                .is_err()
        );
        let waiting = Phase::AwaitingApproval {
            request_id: "r".into(),
            device_id: dev(),
        };
        assert!(
            waiting
                .clone()
                .next(PhaseEvent::Admitted {
                    role: Role::Node,
                    scopes: Scopes::NONE,
                    device_id: None
                })
                .is_err()
        );
        assert!(
            Phase::AwaitingConnect { nonce: "n".into() }
                .next(PhaseEvent::Approved { nonce: "m".into() })
                .is_err()
        );
        assert!(
            Phase::Closed
                .next(PhaseEvent::Approved { nonce: "m".into() })
                .is_err()
        );
        assert_eq!(waiting.next(PhaseEvent::Close).unwrap(), Phase::Closed);
    }
}
