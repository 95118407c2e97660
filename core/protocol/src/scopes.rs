//! Operator scopes: what an operator connection may do. The operator token grants every scope;
//! a client that asks for fewer in `connect` (a dashboard that only reads) gets only those, and
//! `hello-ok.auth.scopes` says what was granted. The names are OpenClaw's.

use std::fmt;

/// One operator scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Read host state: status, devices, nodes, sessions, settings, presence.
    Read,
    /// Act through the host: chat, node commands, named places.
    Write,
    /// Decide who pairs: approve, reject, revoke, remove, setup codes.
    Pairing,
    /// Change the host itself: settings, location sharing. Implies every other scope.
    Admin,
}

impl Scope {
    /// Every scope, in order.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Write, Scope::Pairing, Scope::Admin];

    /// The wire name (`operator.read`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "operator.read",
            Scope::Write => "operator.write",
            Scope::Pairing => "operator.pairing",
            Scope::Admin => "operator.admin",
        }
    }

    /// The scope a wire name names, if it is one of ours.
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes granted to one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// No scope (nodes).
    pub const NONE: Scopes = Scopes(0);

    /// Every scope (an operator that asked for none in particular).
    pub fn all() -> Scopes {
        Scope::ALL.into_iter().collect()
    }

    /// What an operator with the token is granted for the scopes it asked for: every scope
    /// when it asked for none, else the ones it named that exist (unknown names grant nothing).
    pub fn grant(requested: &[String]) -> Scopes {
        if requested.is_empty() {
            return Scopes::all();
        }
        requested.iter().filter_map(|s| Scope::parse(s)).collect()
    }

    /// Whether a method needing `scope` may run; `operator.admin` covers every scope.
    pub fn allows(self, scope: Scope) -> bool {
        self.0 & (scope.bit() | Scope::Admin.bit()) != 0
    }

    /// The wire names, in order.
    pub fn names(self) -> Vec<String> {
        Scope::ALL
            .into_iter()
            .filter(|s| self.0 & s.bit() != 0)
            .map(|s| s.as_str().to_string())
            .collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asking_for_nothing_grants_everything() {
        assert_eq!(Scopes::grant(&[]), Scopes::all());
        assert_eq!(
            Scopes::all().names(),
            vec![
                "operator.read",
                "operator.write",
                "operator.pairing",
                "operator.admin"
            ]
        );
    }

    #[test]
    fn a_reader_only_reads() {
        let s = Scopes::grant(&["operator.read".into(), "operator.bogus".into()]);
        assert!(s.allows(Scope::Read));
        assert!(!s.allows(Scope::Write));
        assert!(!s.allows(Scope::Pairing));
        assert_eq!(s.names(), vec!["operator.read"]);
    }

    #[test]
    fn admin_covers_everything_and_unknown_names_grant_nothing() {
        let a = Scopes::grant(&["operator.admin".into()]);
        assert!(Scope::ALL.into_iter().all(|s| a.allows(s)));
        assert_eq!(Scopes::grant(&["x".into()]), Scopes::NONE);
        assert!(!Scopes::NONE.allows(Scope::Read));
    }
}
