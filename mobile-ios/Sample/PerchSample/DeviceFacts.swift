import Foundation
import Network
import Perch
import UIKit

/// `device.info` and `device.status` from UIDevice, ProcessInfo, the network watcher and the
/// volume's "important usage" capacity (the space iOS would free for the user's own data).
final class DeviceFacts: DeviceInfoProvider, @unchecked Sendable {
    private let network: NetworkWatcher

    init(network: NetworkWatcher) {
        self.network = network
    }

    /// The hardware model (`iPhone17,1`), which UIDevice does not give.
    static func modelIdentifier() -> String {
        var info = utsname()
        uname(&info)
        return withUnsafeBytes(of: &info.machine) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    func deviceInfo() throws -> DeviceInfo {
        let (name, systemName, systemVersion) = onMain {
            (UIDevice.current.name, UIDevice.current.systemName, UIDevice.current.systemVersion)
        }
        let version = Bundle.main.object(forInfoDictionaryKey: "CFBundleShortVersionString") as? String
        return DeviceInfo(
            deviceName: name,
            systemName: systemName,
            systemVersion: systemVersion,
            modelIdentifier: Self.modelIdentifier(),
            appVersion: version ?? "unknown",
            locale: Locale.current.identifier(.bcp47)
        )
    }

    func deviceStatus() throws -> DeviceStatus {
        DeviceStatus(
            battery: battery(),
            network: network.current(),
            storage: storage(),
            uptimeSeconds: UInt64(ProcessInfo.processInfo.systemUptime)
        )
    }

    private func battery() -> BatteryInfo? {
        let (level, state) = onMain { () -> (Float, UIDevice.BatteryState) in
            UIDevice.current.isBatteryMonitoringEnabled = true
            return (UIDevice.current.batteryLevel, UIDevice.current.batteryState)
        }
        let mapped: BatteryState
        switch state {
        case .charging: mapped = .charging
        case .full: mapped = .full
        case .unplugged: mapped = .unplugged
        default: mapped = .unknown
        }
        // The simulator has no battery: level -1 and state unknown.
        if level < 0 && mapped == .unknown { return nil }
        return BatteryInfo(
            level: level >= 0 ? Double(level) : nil,
            state: mapped,
            lowPowerMode: ProcessInfo.processInfo.isLowPowerModeEnabled
        )
    }

    private func storage() -> StorageInfo? {
        let home = URL(fileURLWithPath: NSHomeDirectory())
        guard let values = try? home.resourceValues(forKeys: [
            .volumeTotalCapacityKey, .volumeAvailableCapacityForImportantUsageKey,
        ]),
            let total = values.volumeTotalCapacity,
            let free = values.volumeAvailableCapacityForImportantUsage
        else { return nil }
        return StorageInfo(totalBytes: UInt64(max(total, 0)), freeBytes: UInt64(max(free, 0)))
    }
}

/// UIKit wants the main thread; the node calls providers on its own threads, never from main.
private func onMain<T>(_ body: () -> T) -> T {
    Thread.isMainThread ? body() : DispatchQueue.main.sync(execute: body)
}

/// The current network path (NWPathMonitor), and a callback when a usable one appears or the
/// interface changes, so the node can reconnect at once.
final class NetworkWatcher: @unchecked Sendable {
    private let monitor = NWPathMonitor()
    private let queue = DispatchQueue(label: "dev.perch.sample.network")
    private let lock = NSLock()
    private var path: NWPath?
    private var handler: (@Sendable () -> Void)?

    /// Called on a private queue when a usable network appears or the interface changes.
    var onChange: (@Sendable () -> Void)? {
        get {
            lock.lock()
            defer { lock.unlock() }
            return handler
        }
        set {
            lock.lock()
            handler = newValue
            lock.unlock()
        }
    }

    init() {
        monitor.pathUpdateHandler = { [weak self] newPath in
            guard let self else { return }
            self.lock.lock()
            let old = self.path
            self.path = newPath
            let handler = self.handler
            self.lock.unlock()
            let interfaceChanged = old?.availableInterfaces.first?.type != newPath.availableInterfaces.first?.type
            if newPath.status == .satisfied && (old?.status != .satisfied || interfaceChanged) {
                handler?()
            }
        }
        monitor.start(queue: queue)
    }

    func current() -> NetworkInfo? {
        lock.lock()
        let path = self.path
        lock.unlock()
        guard let path else { return nil }
        guard path.status == .satisfied else { return NetworkInfo(kind: NetworkKind.none, metered: nil) }
        let kind: NetworkKind
        if path.usesInterfaceType(.wifi) {
            kind = .wifi
        } else if path.usesInterfaceType(.cellular) {
            kind = .cellular
        } else if path.usesInterfaceType(.wiredEthernet) {
            kind = .ethernet
        } else {
            kind = .other
        }
        return NetworkInfo(kind: kind, metered: path.isExpensive || path.isConstrained)
    }
}
