//! Capability handlers for desktops and servers (`perch node run`, the desktop app in node
//! mode). Behind the `desktop` feature: phones bring their own handlers through the FFI.

pub mod device;
pub mod location;
pub mod notify;

use std::sync::Arc;

pub use device::DeviceHandler;
pub use location::{ConfiguredLocation, LocationHandler, LocationParseError};
pub use notify::NotifyHandler;

use crate::capability::Capabilities;

/// The desktop command set: `location.get` (from `location`, if configured), `system.notify`,
/// `device.info` and `device.status`.
pub fn desktop_capabilities(location: Option<ConfiguredLocation>) -> Capabilities {
    let mut caps = Capabilities::new();
    let handlers: [Arc<dyn crate::CapabilityHandler>; 3] = [
        Arc::new(LocationHandler::new(location)),
        Arc::new(NotifyHandler::new()),
        Arc::new(DeviceHandler::new()),
    ];
    for h in handlers {
        // The three handlers claim disjoint commands, so registration cannot collide.
        if let Err(e) = caps.register(h) {
            tracing::error!(error = %e, "desktop handler not registered");
        }
    }
    caps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desktop_set_is_complete() {
        let caps = desktop_capabilities(None);
        assert_eq!(
            caps.commands(),
            vec![
                "device.info",
                "device.status",
                "location.get",
                "system.notify"
            ]
        );
        assert_eq!(caps.caps(), vec!["device", "location", "system"]);
    }
}
