//! Resolving what a user typed (an id, an id prefix, or a display name) to one device.

use serde_json::json;

use perch_protocol::{ErrorCode, ErrorShape};

/// A device as far as name resolution cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Device id (hex).
    pub id: String,
    /// Display name.
    pub name: String,
}

/// Finds the one candidate the selector means: an exact id, then an unambiguous id prefix,
/// then an exact display name (case-insensitive), then an unambiguous name prefix. Ids come
/// first, so a device cannot capture selectors meant for another by its choice of name (and
/// [`distinct_name`] keeps names from looking like another device's id).
pub fn resolve<'a>(
    selector: &str,
    candidates: &'a [Candidate],
    what: &str,
) -> Result<&'a Candidate, ErrorShape> {
    let sel = selector.trim();
    if sel.is_empty() {
        return Err(ErrorShape::new(
            ErrorCode::InvalidRequest,
            format!("{what} must not be empty"),
        ));
    }
    if let Some(c) = candidates.iter().find(|c| c.id == sel) {
        return Ok(c);
    }
    let lower = sel.to_ascii_lowercase();
    let by_prefix: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.id.starts_with(&lower))
        .collect();
    match by_prefix.as_slice() {
        [one] => return Ok(one),
        [] => {}
        many => return Err(ambiguous(sel, many, what)),
    }
    let by_name: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.name.eq_ignore_ascii_case(sel))
        .collect();
    match by_name.as_slice() {
        [one] => return Ok(one),
        [] => {}
        many => return Err(ambiguous(sel, many, what)),
    }
    let by_name_prefix: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.name.to_lowercase().starts_with(&sel.to_lowercase()))
        .collect();
    match by_name_prefix.as_slice() {
        [one] => Ok(one),
        [] => Err(ErrorShape::new(
            ErrorCode::NodeNotFound,
            format!("no {what} matches {sel:?}"),
        )
        .with_details(json!({"selector": sel}))),
        many => Err(ambiguous(sel, many, what)),
    }
}

/// The name a device is shown (and selected) by: what it asked for, unless that would be
/// confused with another device. A name equal to another's (ignoring case) gets ` (2)`,
/// ` (3)`, ...; a name that another device's id starts with gets this device's short id.
/// `max` bounds the result in characters.
pub fn distinct_name(wanted: &str, id: &str, others: &[Candidate], max: usize) -> String {
    let lower = wanted.to_ascii_lowercase();
    let looks_like_id = !lower.is_empty()
        && lower.chars().all(|c| c.is_ascii_hexdigit())
        && others.iter().any(|o| o.id.starts_with(&lower));
    let fit = |base: &str, suffix: &str| -> String {
        let keep = max.saturating_sub(suffix.chars().count());
        let base: String = base.chars().take(keep).collect();
        format!("{}{suffix}", base.trim_end())
    };
    let base = if looks_like_id {
        fit(wanted, &format!(" ({})", id.get(..6).unwrap_or(id)))
    } else {
        wanted.to_string()
    };
    let taken = |name: &str| others.iter().any(|o| o.name.eq_ignore_ascii_case(name));
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|n| fit(&base, &format!(" ({n})")))
        .find(|name| !taken(name))
        .unwrap_or(base)
}

fn ambiguous(sel: &str, many: &[&Candidate], what: &str) -> ErrorShape {
    let list: Vec<_> = many
        .iter()
        .map(|c| json!({"id": c.id, "name": c.name}))
        .collect();
    ErrorShape::new(
        ErrorCode::InvalidRequest,
        format!(
            "{sel:?} matches {} {what}s; use a longer id prefix",
            many.len()
        ),
    )
    .with_details(json!({"selector": sel, "candidates": list}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, name: &str) -> Candidate {
        Candidate {
            id: id.into(),
            name: name.into(),
        }
    }

    #[test]
    fn exact_id_then_name_then_prefix() {
        let cs = vec![
            c("abcd01", "Laptop"),
            c("abce02", "Phone"),
            c("ffff", "abcd01x"),
        ];
        assert_eq!(resolve("abcd01", &cs, "node").unwrap().name, "Laptop");
        assert_eq!(resolve("phone", &cs, "node").unwrap().id, "abce02");
        assert_eq!(resolve("abce", &cs, "node").unwrap().name, "Phone");
        assert_eq!(resolve("ABCE", &cs, "node").unwrap().name, "Phone");
        assert_eq!(resolve("lap", &cs, "node").unwrap().id, "abcd01");
    }

    #[test]
    fn ambiguous_name_prefix() {
        let cs = vec![c("a1", "Phone A"), c("b2", "Phone B")];
        assert_eq!(
            resolve("pho", &cs, "node").unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(resolve("phone b", &cs, "node").unwrap().id, "b2");
    }

    #[test]
    fn ambiguous_prefix_lists_candidates() {
        let cs = vec![c("abcd01", "A"), c("abce02", "B")];
        let e = resolve("abc", &cs, "node").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert_eq!(
            e.details.unwrap()["candidates"].as_array().unwrap().len(),
            2
        );
    }

    #[test]
    fn duplicate_names_are_ambiguous() {
        let cs = vec![c("a1", "Phone"), c("b2", "phone")];
        assert!(resolve("Phone", &cs, "node").is_err());
        assert_eq!(resolve("a1", &cs, "node").unwrap().id, "a1");
    }

    #[test]
    fn nothing_matches() {
        let cs = vec![c("a1", "Phone")];
        assert_eq!(
            resolve("zz", &cs, "node").unwrap_err().code,
            ErrorCode::NodeNotFound
        );
        assert_eq!(
            resolve("  ", &cs, "node").unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn ids_win_over_names() {
        let cs = vec![c("abcd01", "Laptop"), c("beef02", "abcd")];
        assert_eq!(resolve("abcd", &cs, "node").unwrap().id, "abcd01");
    }

    #[test]
    fn a_name_cannot_copy_another_name_or_an_id() {
        let others = vec![c("abcd01", "Phone"), c("beef02", "Phone (2)")];
        assert_eq!(distinct_name("Phone", "ff00aa11", &others, 64), "Phone (3)");
        assert_eq!(distinct_name("phone", "ff00aa11", &others, 64), "phone (3)");
        assert_eq!(distinct_name("Tablet", "ff00aa11", &others, 64), "Tablet");
        assert_eq!(
            distinct_name("abcd", "ff00aa11", &others, 64),
            "abcd (ff00aa)"
        );
        assert_eq!(
            distinct_name("ABCD01", "ff00aa11", &others, 64),
            "ABCD01 (ff00aa)"
        );
        // A hex word that is nobody's id prefix is a fine name.
        assert_eq!(distinct_name("cafe", "ff00aa11", &others, 64), "cafe");
        // Bounded, suffix kept.
        let long = "P".repeat(70);
        let others = vec![c("abcd01", &"P".repeat(64))];
        let n = distinct_name(&long[..64], "ff00aa11", &others, 64);
        assert_eq!(n.chars().count(), 64);
        assert!(n.ends_with(" (2)"), "{n}");
    }
}
