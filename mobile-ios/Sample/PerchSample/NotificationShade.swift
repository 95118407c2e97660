import Foundation
import Perch
import UserNotifications

/// `system.notify` through UserNotifications: title, body, the assistant's buttons and an
/// inline Reply (UNTextInputNotificationAction). The node's id for the notification rides in
/// `userInfo`, and the app delegate hands it back with the user's answer.
final class NotificationShade: NotificationPresenter, @unchecked Sendable {
    /// `userInfo` key of the node's notification id.
    static let notificationIdKey = "perchNotificationId"
    /// Action id of the inline reply (distinct from any id the assistant gives a button).
    static let replyActionId = "perch.reply"

    private let center = UNUserNotificationCenter.current()
    private let lock = NSLock()
    /// Categories registered so far, by id: one per distinct set of buttons.
    private var categories: [String: UNNotificationCategory] = [:]

    // `Perch.Notification`: Foundation has a `Notification` type of its own.
    func post(notification: Perch.Notification) throws -> String? {
        // Called on the node's blocking thread: waiting for the center's callbacks is fine here.
        let settings = awaitCallback { done in self.center.getNotificationSettings { done($0) } }
        switch settings.authorizationStatus {
        case .authorized, .provisional, .ephemeral: break
        default: throw ProviderError.PermissionDenied(reason: "notifications are turned off for this app")
        }

        let content = UNMutableNotificationContent()
        content.title = notification.title
        content.body = notification.body
        content.userInfo = [Self.notificationIdKey: notification.id]
        content.categoryIdentifier = register(actions: notification.actions)
        switch notification.priority {
        case "passive": content.interruptionLevel = .passive
        // Breaks through Focus only with the Time Sensitive capability; plain `active` otherwise.
        case "timeSensitive": content.interruptionLevel = .timeSensitive
        default: content.interruptionLevel = .active
        }
        if notification.priority != "passive" {
            // A named sound would have to ship in the app bundle; the default one stands in.
            content.sound = .default
        }

        let request = UNNotificationRequest(identifier: notification.id, content: content, trigger: nil)
        let failure: Error? = awaitCallback { done in self.center.add(request) { done($0) } }
        if let failure {
            throw ProviderError.Failed(reason: failure.localizedDescription)
        }
        return notification.id
    }

    /// The category for this set of buttons plus Reply, registered before first use (the
    /// center only shows buttons of categories it already knows).
    private func register(actions: [NotificationAction]) -> String {
        let id = "perch." + actions.map { "\($0.id)=\($0.title)" }.joined(separator: "|")
        lock.lock()
        defer { lock.unlock() }
        if categories[id] == nil {
            var buttons: [UNNotificationAction] = actions.map {
                UNNotificationAction(identifier: $0.id, title: $0.title, options: [])
            }
            buttons.append(UNTextInputNotificationAction(
                identifier: Self.replyActionId, title: "Reply", options: [],
                textInputButtonTitle: "Send", textInputPlaceholder: "Answer the assistant"
            ))
            categories[id] = UNNotificationCategory(
                identifier: id, actions: buttons, intentIdentifiers: [], options: []
            )
            center.setNotificationCategories(Set(categories.values))
            // setNotificationCategories applies asynchronously; reading them back waits for it.
            _ = awaitCallback { done in self.center.getNotificationCategories { done($0) } }
        }
        return id
    }

    /// A short local notice (a reply that did not reach the host).
    static func postNotice(_ text: String) {
        let content = UNMutableNotificationContent()
        content.title = "Perch"
        content.body = text
        UNUserNotificationCenter.current().add(
            UNNotificationRequest(identifier: UUID().uuidString, content: content, trigger: nil)
        )
    }
}

/// Blocks the calling (non-main) thread until `start` calls back.
private func awaitCallback<T>(_ start: (@escaping (T) -> Void) -> Void) -> T {
    let done = DispatchSemaphore(value: 0)
    let lock = NSLock()
    var value: T?
    start { result in
        lock.lock()
        value = result
        lock.unlock()
        done.signal()
    }
    done.wait()
    lock.lock()
    defer { lock.unlock() }
    return value!
}
