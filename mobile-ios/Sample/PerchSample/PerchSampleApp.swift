import Perch
import SwiftUI
import UIKit
import UserNotifications

/// The sample app: one screen (pairing, status, permissions) over one process-wide node.
@main
struct PerchSampleApp: App {
    @UIApplicationDelegateAdaptor(AppDelegate.self) private var appDelegate
    @Environment(\.scenePhase) private var scenePhase

    var body: some Scene {
        WindowGroup {
            ContentView()
                .environmentObject(appDelegate.model)
        }
        // The node hears whether the app is on screen: in the background, commands that need
        // the screen answer NODE_BACKGROUND_UNAVAILABLE; coming back reconnects at once.
        // `.inactive` (a passing alert, the app switcher) changes nothing.
        .onChange(of: scenePhase) { phase in
            switch phase {
            case .active: appDelegate.model.device?.setAppState(.foreground)
            case .background: appDelegate.model.device?.setAppState(.background)
            default: break
            }
        }
    }
}

/// Owns the node before any scene exists: a tap on a notification's button can launch the
/// app in the background, and its delegate must be set before launch finishes.
@MainActor
final class AppDelegate: NSObject, UIApplicationDelegate, UNUserNotificationCenterDelegate {
    let model = NodeModel()

    func application(
        _ application: UIApplication,
        didFinishLaunchingWithOptions launchOptions: [UIApplication.LaunchOptionsKey: Any]? = nil
    ) -> Bool {
        UNUserNotificationCenter.current().delegate = self
        model.startIfPaired()
        return true
    }

    /// A button or an inline reply on an assistant notification: send it to the host.
    nonisolated func userNotificationCenter(
        _ center: UNUserNotificationCenter,
        didReceive response: UNNotificationResponse
    ) async {
        let content = response.notification.request.content
        guard let id = content.userInfo[NotificationShade.notificationIdKey] as? String else { return }
        let actionId: String?
        let text: String?
        switch response.actionIdentifier {
        case UNNotificationDismissActionIdentifier, UNNotificationDefaultActionIdentifier:
            return
        case NotificationShade.replyActionId:
            actionId = nil
            text = (response as? UNTextInputNotificationResponse)?.userText
        default:
            actionId = response.actionIdentifier
            text = nil
        }
        await model.sendReply(notificationId: id, actionId: actionId, text: text)
    }

    /// Assistant notifications show as banners even while the app is open.
    nonisolated func userNotificationCenter(
        _ center: UNUserNotificationCenter,
        willPresent notification: UNNotification
    ) async -> UNNotificationPresentationOptions {
        [.banner, .list, .sound]
    }
}
