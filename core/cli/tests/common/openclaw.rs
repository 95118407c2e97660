//! Where the pinned OpenClaw packages live (`tests/openclaw`, installed by
//! `bash scripts/setup.sh test`), for the tests that check Perch against them. A missing
//! install fails the test with the command that fixes it; it never skips.

use std::path::{Path, PathBuf};

/// What to run when the packages are missing.
pub const SETUP_HINT: &str =
    "run `bash scripts/setup.sh test` (it runs `npm ci` in tests/openclaw)";

/// The repository's `tests/openclaw` folder.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/openclaw")
        .canonicalize()
        .unwrap_or_else(|e| panic!("tests/openclaw is missing ({e}); {SETUP_HINT}"))
}

/// A file under `tests/openclaw/node_modules`, which must exist.
pub fn installed(relative: &str) -> PathBuf {
    let p = dir().join("node_modules").join(relative);
    assert!(
        p.exists(),
        "{} is missing: the pinned OpenClaw packages are not installed; {SETUP_HINT}",
        p.display()
    );
    p
}
