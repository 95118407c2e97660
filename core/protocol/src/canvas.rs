//! Canvas commands a node with a screen answers: show or hide its canvas, point it at a page,
//! and push A2UI messages (JSON Lines) to render. The Canvas itself (the host's A2UI
//! workspace) comes later; these shapes let a phone offer the surface now.
//!
//! Every canvas command needs the app on screen: a phone in the background answers
//! `NODE_BACKGROUND_UNAVAILABLE`.

use serde::{Deserialize, Serialize};

/// Show the canvas, optionally at a page.
pub const CANVAS_PRESENT: &str = "canvas.present";
/// Hide the canvas.
pub const CANVAS_HIDE: &str = "canvas.hide";
/// Load a page in the canvas.
pub const CANVAS_NAVIGATE: &str = "canvas.navigate";
/// Render A2UI messages given as JSON Lines.
pub const CANVAS_A2UI_PUSH_JSONL: &str = "canvas.a2ui.pushJSONL";
/// Clear what A2UI rendered.
pub const CANVAS_A2UI_RESET: &str = "canvas.a2ui.reset";

/// Every canvas command.
pub const CANVAS_COMMANDS: &[&str] = &[
    CANVAS_PRESENT,
    CANVAS_HIDE,
    CANVAS_NAVIGATE,
    CANVAS_A2UI_PUSH_JSONL,
    CANVAS_A2UI_RESET,
];

/// Longest URL accepted, in bytes.
pub const MAX_CANVAS_URL_BYTES: usize = 2_048;
/// Largest A2UI push accepted, in bytes.
pub const MAX_A2UI_JSONL_BYTES: usize = 256 * 1024;

/// Params of `canvas.present`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanvasPresentParams {
    /// The page to show; the canvas's own page when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Params of `canvas.navigate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanvasNavigateParams {
    /// The page to load.
    pub url: String,
}

/// Params of `canvas.a2ui.pushJSONL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanvasJsonlParams {
    /// A2UI messages, one JSON object per line.
    pub jsonl: String,
}

/// Why canvas params are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanvasParamsError {
    /// Not an `https://` or `http://` URL, or too long. Script and file URLs are never loaded.
    #[error("url must be an http(s) URL of at most {MAX_CANVAS_URL_BYTES} bytes")]
    BadUrl,
    /// Too large, empty, or a line that is not a JSON object.
    #[error("jsonl must be 1 to {MAX_A2UI_JSONL_BYTES} bytes of JSON objects, one per line{0}")]
    BadJsonl(String),
}

/// Checks a canvas URL: only web pages, bounded.
pub fn check_canvas_url(url: &str) -> Result<(), CanvasParamsError> {
    let lower = url.trim().to_ascii_lowercase();
    let web = lower.starts_with("https://") || lower.starts_with("http://");
    if !web || url.len() > MAX_CANVAS_URL_BYTES || url.chars().any(char::is_control) {
        return Err(CanvasParamsError::BadUrl);
    }
    Ok(())
}

/// Checks an A2UI push: bounded, and every non-empty line a JSON object.
pub fn check_a2ui_jsonl(jsonl: &str) -> Result<(), CanvasParamsError> {
    if jsonl.trim().is_empty() || jsonl.len() > MAX_A2UI_JSONL_BYTES {
        return Err(CanvasParamsError::BadJsonl(String::new()));
    }
    for (i, line) in jsonl.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(_)) => {}
            _ => return Err(CanvasParamsError::BadJsonl(format!(" (line {})", i + 1))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_pages_load() {
        assert!(check_canvas_url("https://host.local:18789/canvas/").is_ok());
        assert!(check_canvas_url("http://192.168.1.2:18789/").is_ok());
        for bad in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "data:text/html,hi",
            "",
            "https://x/\n",
        ] {
            assert_eq!(
                check_canvas_url(bad),
                Err(CanvasParamsError::BadUrl),
                "{bad:?}"
            );
        }
        let long = format!("https://h/{}", "a".repeat(MAX_CANVAS_URL_BYTES));
        assert!(check_canvas_url(&long).is_err());
    }

    #[test]
    fn a2ui_lines_are_json_objects() {
        assert!(check_a2ui_jsonl("{\"beginRendering\":{}}\n\n{\"surfaceUpdate\":{}}\n").is_ok());
        assert!(check_a2ui_jsonl("").is_err());
        let e = check_a2ui_jsonl("{}\n[1]\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(check_a2ui_jsonl("{\"a\":").is_err());
    }
}
