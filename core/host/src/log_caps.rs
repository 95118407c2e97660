//! What the host's log never carries, whatever level `PERCH_LOG` asks for: the WebSocket
//! library writes every frame it sends or receives at trace level, and frames carry operator
//! tokens and the keys a settings screen stores (`settings.secret.set`). Every process that
//! logs (`perch`, the menu-bar app) passes its filter through [`cap_wire_logs`].

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// Filter directives added last, so they win over `PERCH_LOG=trace` (and over
/// `PERCH_LOG=tungstenite=trace`): the wire libraries log at most at debug, which names frames
/// but never prints their payload.
pub const WIRE_LOG_CAPS: &[&str] = &["tungstenite=debug", "tokio_tungstenite=debug"];

/// Caps the wire libraries at debug when the filter could let trace through, and leaves a
/// quieter filter alone: a cap must only ever lower a level (at `PERCH_LOG=warn` adding
/// `tungstenite=debug` would raise those libraries to debug).
pub fn cap_wire_logs(filter: EnvFilter) -> EnvFilter {
    let could_trace = filter
        .max_level_hint()
        .is_none_or(|max| max > LevelFilter::DEBUG);
    if !could_trace {
        return filter;
    }
    WIRE_LOG_CAPS
        .iter()
        .filter_map(|cap| cap.parse().ok())
        .fold(filter, EnvFilter::add_directive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_filter_is_left_quiet() {
        let capped = cap_wire_logs(EnvFilter::new("warn"));
        assert_eq!(capped.to_string(), "warn");
        assert_eq!(capped.max_level_hint(), Some(LevelFilter::WARN));
        assert_eq!(cap_wire_logs(EnvFilter::new("debug")).to_string(), "debug");
    }

    #[test]
    fn trace_anywhere_caps_the_wire_libraries() {
        for asked in [
            "trace",
            "warn,tungstenite=trace",
            "info,tokio_tungstenite=trace",
        ] {
            let capped = cap_wire_logs(EnvFilter::new(asked)).to_string();
            assert!(capped.contains("tungstenite=debug"), "{asked}: {capped}");
            assert!(
                capped.contains("tokio_tungstenite=debug"),
                "{asked}: {capped}"
            );
        }
    }
}
