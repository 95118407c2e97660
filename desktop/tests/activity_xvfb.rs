//! This computer's idle time, read for real from an X server (Xvfb's MIT-SCREEN-SAVER
//! extension): it grows while nobody touches the input, and drops when the pointer moves.
//! One test per binary: it sets `DISPLAY` for the whole process.

mod screen;

use std::time::{Duration, Instant};

use perch_desktop::activity::{DesktopActivity, SAMPLE_EVERY};
use perch_node::ActivitySource;

#[test]
fn idle_time_grows_and_input_resets_it() {
    let screen = screen::Screen::start().unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: this test binary runs this one test; no other thread reads the environment yet.
    unsafe { std::env::set_var("DISPLAY", &screen.display) };
    let activity = DesktopActivity::start().expect("an X display to read idle time from");

    std::thread::sleep(SAMPLE_EVERY * 2);
    let idle_before = screen::eventually(
        "an idle reading of at least 3 s",
        Duration::from_secs(10),
        || activity.idle_seconds().filter(|s| *s >= 3),
    );

    let moved = screen
        .cmd("xdotool")
        .args(["mousemove", "200", "200"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(moved, "xdotool could not move the pointer");
    let since = Instant::now();
    let idle_after =
        screen::eventually("a reading after the input", Duration::from_secs(10), || {
            activity
                .idle_seconds()
                .filter(|s| *s < idle_before && *s <= since.elapsed().as_secs() + 1)
        });
    assert!(idle_after < idle_before, "{idle_after} vs {idle_before}");

    // Dropping the last handle ends the sampling thread; nothing else to observe but that
    // it does not hang the test.
    drop(activity);
}
