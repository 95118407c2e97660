import Foundation
import Perch
import UIKit
import UserNotifications

/// The node as the screen sees it: the providers plugged in, the latest state as published
/// properties, and the calls the buttons make.
@MainActor
final class NodeModel: ObservableObject {
    /// `nil` only when the node could not open its data (shown as `message`).
    let device: PerchDevice?
    let location: CoreLocationProvider
    private let network: NetworkWatcher

    @Published private(set) var statusLine = "Not connected"
    /// The code to compare with the host's, while it waits for the user's approval.
    @Published private(set) var verificationCode: String?
    @Published private(set) var waitingForApproval = false
    @Published var message: String?
    @Published private(set) var busy = false

    init() {
        let location = CoreLocationProvider()
        let network = NetworkWatcher()
        self.location = location
        self.network = network
        do {
            device = try Self.makeDevice(location: location, network: network)
        } catch {
            device = nil
            message = "Perch cannot open its data: \(error.localizedDescription)"
        }
        // A new usable network (Wi-Fi joined, mobile data back) ends a reconnect wait at once.
        network.onChange = { [weak self] in
            Task { @MainActor in self?.device?.networkChanged() }
        }
        if let device {
            Task { [weak self] in
                for await event in device.events() {
                    self?.show(event)
                }
            }
        }
    }

    /// The node, its data in Application Support, its secrets in the Keychain, the providers set.
    private static func makeDevice(location: CoreLocationProvider, network: NetworkWatcher) throws -> PerchDevice {
        let dataDir = try FileManager.default
            .url(for: .applicationSupportDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
            .appendingPathComponent("perch", isDirectory: true)
        try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
        let settings = NodeSettings(
            displayName: UIDevice.current.name,
            dataDir: dataDir.path,
            platform: "ios",
            deviceFamily: UIDevice.current.model,
            modelIdentifier: DeviceFacts.modelIdentifier(),
            locale: Locale.current.identifier(.bcp47)
        )
        let device = try PerchDevice(settings: settings, secretStore: KeychainSecretStore())
        device.setLocationProvider(location)
        device.setDeviceInfoProvider(DeviceFacts(network: network))
        device.setNotificationPresenter(NotificationShade())
        return device
    }

    /// After an app restart: reconnect to the host this phone paired with, if any.
    func startIfPaired() {
        guard let device else { return }
        Task {
            guard let status = try? await device.status(), !status.hosts.isEmpty else { return }
            do {
                try await device.start()
            } catch {
                message = describe(error)
            }
        }
    }

    func pair(setupCode: String) {
        run { try await $0.pair(setupCode: setupCode.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    func connect(address: String) {
        run { try await $0.connect(to: address.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    func disconnect() {
        run { try await $0.stop() }
    }

    /// Sends a notification answer; offline (the app was just woken from suspension), it waits
    /// briefly for the node to reconnect and tries once more, and says so when it cannot.
    func sendReply(notificationId: String, actionId: String?, text: String?) async {
        guard let device else { return }
        do {
            do {
                try await device.reply(toNotification: notificationId, actionId: actionId, text: text)
            } catch let error as PerchError where error == .NotConnected || error == .NotRunning {
                try? await device.start()
                device.networkChanged()
                try await waitUntilOnline(device, seconds: 8)
                try await device.reply(toNotification: notificationId, actionId: actionId, text: text)
            }
        } catch {
            NotificationShade.postNotice("Your answer was not sent: \(describe(error))")
        }
    }

    private func waitUntilOnline(_ device: PerchDevice, seconds: Double) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await device.status().phase == .online { return }
            try await Task.sleep(nanoseconds: 250_000_000)
        }
        throw PerchError.NotConnected
    }

    private func run(_ call: @escaping (PerchDevice) async throws -> Void) {
        guard let device else { return }
        busy = true
        message = nil
        Task {
            defer { busy = false }
            do {
                try await call(device)
            } catch {
                message = describe(error)
            }
        }
    }

    private func show(_ event: NodeEvent) {
        // A served command says nothing about the connection: the screen keeps its state.
        if case .commandServed = event { return }
        waitingForApproval = false
        verificationCode = nil
        switch event {
        case .connecting(let url):
            statusLine = "Connecting to \(url)…"
        case .waitingForApproval(_, let code):
            statusLine = "Waiting for approval on the host"
            waitingForApproval = true
            verificationCode = code
        case .online(let hostName):
            statusLine = "Connected to \(hostName)"
        case .offline(let reason, let retryInMs):
            statusLine = "Offline (\(reason)); retrying in \(retryInMs / 1000) s"
        case .hostKeyChanged:
            statusLine = "The host's key changed: not connecting. Forget the host and pair again if it was reinstalled."
        case .commandServed:
            break
        case .stopped(let error):
            statusLine = error.map { "Stopped: \($0)" } ?? "Stopped"
        @unknown default:
            return
        }
    }

    private func describe(_ error: Error) -> String {
        switch error {
        case PerchError.InvalidSetupCode(let reason):
            return "That setup code does not read: \(reason). Check for a typo, or scan it."
        case PerchError.InvalidAddress(_, let reason):
            return "That address does not work: \(reason)"
        case PerchError.UnknownNotification:
            return "the assistant no longer waits for this answer"
        case PerchError.NotConnected:
            return "not connected to your Perch host"
        default:
            return error.localizedDescription
        }
    }
}
