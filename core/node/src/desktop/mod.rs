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

/// The desktop command set, the same for `perch node run` and the menu-bar app:
/// `system.notify`, `device.info`, `device.status`, and `location.get` only when a location is
/// configured, so the assistant is never offered a command that can only fail.
pub fn desktop_capabilities(location: Option<ConfiguredLocation>) -> Capabilities {
    let mut caps = Capabilities::new();
    let mut handlers: Vec<Arc<dyn crate::CapabilityHandler>> = vec![
        Arc::new(NotifyHandler::new()),
        Arc::new(DeviceHandler::new()),
    ];
    if location.is_some() {
        handlers.push(Arc::new(LocationHandler::new(location)));
    }
    for h in handlers {
        // The handlers claim disjoint commands, so registration cannot collide.
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
    fn location_is_offered_only_when_configured() {
        let caps = desktop_capabilities(None);
        assert_eq!(
            caps.commands(),
            vec!["device.info", "device.status", "system.notify"]
        );
        assert_eq!(caps.caps(), vec!["device", "system"]);
        let here = ConfiguredLocation::parse("48.2,16.37").unwrap();
        let caps = desktop_capabilities(Some(here));
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
