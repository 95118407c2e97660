//! What the end-to-end tests of perch-ffi share: a listener that forwards events to a channel,
//! as an app forwards them to its UI, and a bounded wait for one of them.

#![allow(dead_code)]

use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use perch_ffi::{NodeEvent, NodeListener};

/// Collects events on a channel.
pub struct Events(pub Mutex<Sender<NodeEvent>>);

impl NodeListener for Events {
    fn on_event(&self, event: NodeEvent) {
        let _ = self.0.lock().unwrap().send(event);
    }
}

/// Waits (at most 30 s) for the first event `pick` accepts, skipping the others.
pub fn wait_event<T>(
    rx: &Receiver<NodeEvent>,
    what: &str,
    pick: impl Fn(&NodeEvent) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(e) => {
                if let Some(v) = pick(&e) {
                    return v;
                }
            }
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}
