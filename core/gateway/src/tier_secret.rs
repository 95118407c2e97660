//! The params of `settings.secret.set` and `settings.secret.clear`, checked before the host is
//! asked: a known tier, and a secret that is one line of printable ASCII of a sane length.
//!
//! **Architecture Invariant:** a refusal names the field and the rule, never the value: the
//! params are read by hand rather than by serde, whose messages quote what they could not read.

use serde_json::{Value, json};

use perch_kernel::credentials::{Secret, TIERS};
use perch_protocol::settings::MAX_SECRET_CHARS;
use perch_protocol::{ErrorCode, ErrorShape};

fn invalid(field: &str, message: &str) -> ErrorShape {
    ErrorShape::new(
        ErrorCode::InvalidRequest,
        format!("invalid params: {field}: {message}"),
    )
    .with_details(json!({"field": field}))
}

/// The params as an object with only the allowed keys, each named in an error on its own.
fn object<'a>(
    params: &'a Option<Value>,
    allowed: &[&str],
) -> Result<&'a serde_json::Map<String, Value>, ErrorShape> {
    let Some(Value::Object(map)) = params else {
        return Err(invalid(
            "params",
            "must be an object such as {\"tier\": \"fast\"}",
        ));
    };
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        // The key itself is the client's text; it is named only when it is short and plain.
        let shown = if k.len() <= 32 && k.chars().all(|c| c.is_ascii_alphanumeric()) {
            k.as_str()
        } else {
            "params"
        };
        return Err(invalid(
            shown,
            &format!("unknown field; expected {}", allowed.join(", ")),
        ));
    }
    Ok(map)
}

/// The tier named in the params.
fn tier(map: &serde_json::Map<String, Value>) -> Result<String, ErrorShape> {
    match map.get("tier") {
        None => Err(invalid("tier", "required: fast, default or smart")),
        Some(Value::String(t)) if TIERS.contains(&t.as_str()) => Ok(t.clone()),
        Some(_) => Err(invalid(
            "tier",
            "not a model tier; use fast, default or smart",
        )),
    }
}

/// `settings.secret.set {tier, secret}`: the tier, and the secret trimmed of surrounding
/// whitespace (a paste often brings a newline).
pub fn parse_set(params: Option<Value>) -> Result<(String, Secret), ErrorShape> {
    let map = object(&params, &["tier", "secret"])?;
    let tier = tier(map)?;
    let secret = match map.get("secret") {
        None => return Err(invalid("secret", "required")),
        Some(Value::String(s)) => s.trim(),
        Some(_) => return Err(invalid("secret", "must be a string")),
    };
    if secret.is_empty() {
        return Err(invalid("secret", "is empty; paste the key"));
    }
    if secret.chars().count() > MAX_SECRET_CHARS {
        return Err(invalid(
            "secret",
            &format!("is longer than {MAX_SECRET_CHARS} characters; paste only the key"),
        ));
    }
    if !secret.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid(
            "secret",
            "must be one line of printable ASCII without spaces, as API keys and tokens are",
        ));
    }
    Ok((tier, Secret::new(secret)))
}

/// `settings.secret.clear {tier}`: the tier.
pub fn parse_clear(params: Option<Value>) -> Result<String, ErrorShape> {
    tier(object(&params, &["tier"])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-unit-NEVER-ECHO-77";

    fn field(e: &ErrorShape) -> &str {
        e.details.as_ref().unwrap()["field"].as_str().unwrap()
    }

    #[test]
    fn a_good_set_is_trimmed_and_kept_secret() {
        let (t, s) =
            parse_set(Some(json!({"tier": "fast", "secret": format!(" {KEY}\n")}))).unwrap();
        assert_eq!(t, "fast");
        assert_eq!(s.expose(), KEY);
        assert!(!format!("{s:?}").contains(KEY));
        assert_eq!(
            parse_clear(Some(json!({"tier": "smart"}))).unwrap(),
            "smart"
        );
    }

    #[test]
    fn each_bad_param_names_its_field_and_never_the_value() {
        let long = "k".repeat(MAX_SECRET_CHARS + 1);
        let cases = [
            (json!({"tier": "huge", "secret": KEY}), "tier"),
            (json!({"tier": 3, "secret": KEY}), "tier"),
            (json!({"secret": KEY}), "tier"),
            (json!({"tier": "fast"}), "secret"),
            (json!({"tier": "fast", "secret": "  \n"}), "secret"),
            (json!({"tier": "fast", "secret": 12345}), "secret"),
            (json!({"tier": "fast", "secret": long}), "secret"),
            (
                json!({"tier": "fast", "secret": format!("{KEY} two")}),
                "secret",
            ),
            (
                json!({"tier": "fast", "secret": format!("{KEY}\u{e9}")}),
                "secret",
            ),
            (
                json!({"tier": "fast", "secret": KEY, "extra": KEY}),
                "extra",
            ),
            (json!({"tier": "fast", "secret": KEY, KEY: 1}), "params"),
            (json!([KEY]), "params"),
            (json!(KEY), "params"),
        ];
        for (p, want) in cases {
            let e = parse_set(Some(p.clone())).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{p}");
            assert_eq!(field(&e), want, "{p}");
            let wire = serde_json::to_string(&e).unwrap();
            assert!(
                !wire.contains("NEVER-ECHO") && !wire.contains("12345"),
                "{wire}"
            );
        }
        assert_eq!(field(&parse_set(None).unwrap_err()), "params");
        assert_eq!(
            field(&parse_clear(Some(json!({"tier": "x"}))).unwrap_err()),
            "tier"
        );
        assert_eq!(
            field(&parse_clear(Some(json!({"tier": "fast", "secret": KEY}))).unwrap_err()),
            "secret"
        );
    }
}
