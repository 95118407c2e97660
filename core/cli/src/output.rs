//! Printing results: human tables, or JSON for scripts.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

/// A table with the house style.
pub fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(headers.iter().copied());
    t
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// "12s ago", "3m ago", "never".
pub fn ago(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "never".into();
    };
    let now = now_ms();
    let s = ((now - ms).max(0)) / 1000;
    match s {
        0..=1 => "just now".into(),
        2..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// The first 12 characters of an id.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ago_buckets() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert_eq!(ago(None), "never");
        assert_eq!(ago(Some(now)), "just now");
        assert_eq!(ago(Some(now - 30_000)), "30s ago");
        assert_eq!(ago(Some(now - 120_000)), "2m ago");
        assert_eq!(ago(Some(now - 7_200_000)), "2h ago");
        assert_eq!(ago(Some(now - 3 * 86_400_000)), "3d ago");
    }

    #[test]
    fn short_ids() {
        assert_eq!(short("abcdef0123456789"), "abcdef012345");
        assert_eq!(short("abc"), "abc");
    }
}
