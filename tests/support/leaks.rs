//! Did a secret reach a place it must not: checks over whatever a fake received (frames, request
//! bodies, logs), with messages that show where it turned up.

/// Spellings of a node's configured coordinates (48.2085, 16.3721) a request body could carry:
/// decimal points and commas, and the accuracy field that only a fix has.
pub const VIENNA_COORDINATES: &[&str] = &["48.20", "16.37", "48,20", "16,37", "accuracyMeters"];

/// The configured location the attack suite's nodes report (`--location`): Vienna's centre.
pub const VIENNA_LOCATION: &str = "48.2085,16.3721,15";

/// Which of `secrets` occur in `haystack` (empty when none leaked).
pub fn found<'a>(haystack: &str, secrets: &[&'a str]) -> Vec<&'a str> {
    secrets
        .iter()
        .copied()
        .filter(|s| !s.is_empty() && haystack.contains(s))
        .collect()
}

/// Panics, naming the secret and the place, if any of `secrets` occurs in any of `places`.
pub fn assert_none_reached(what: &str, places: &[String], secrets: &[&str]) {
    for (i, place) in places.iter().enumerate() {
        let leaked = found(place, secrets);
        assert!(
            leaked.is_empty(),
            "{leaked:?} reached {what} (#{i}): {place}"
        );
    }
}
