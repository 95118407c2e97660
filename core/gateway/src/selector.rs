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

/// Finds the one candidate the selector means: an exact id, then an exact display name
/// (case-insensitive), then an unambiguous id prefix, then an unambiguous name prefix.
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
    let by_name: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.name.eq_ignore_ascii_case(sel))
        .collect();
    match by_name.as_slice() {
        [one] => return Ok(one),
        [] => {}
        many => return Err(ambiguous(sel, many, what)),
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
}
