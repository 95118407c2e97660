import Foundation

/// This device as a node of a Perch host, for Swift callers: the generated `PerchNode` with
/// its events as `AsyncStream`s and its blocking calls as `async` functions.
///
/// The node's async exports (pairing, replies) are awaited as they are; its blocking calls
/// (connect, start, stop, status) run on a global queue while the caller suspends.
/// Cancelling the calling task does not interrupt a blocking Rust call: every one is bounded
/// on the Rust side, and its result is dropped.
public final class PerchDevice: @unchecked Sendable {
    /// The generated object, for calls this wrapper does not cover.
    public let node: PerchNode

    private let fanOut = EventFanOut()

    /// Opens (or creates) the node's identity; nothing connects yet.
    /// - Parameter secretStore: where the identity key and device tokens live (the Keychain
    ///   in an app); `nil` keeps them in files under `settings.dataDir`.
    public init(settings: NodeSettings, secretStore: SecretStore? = nil) throws {
        if let secretStore {
            node = try PerchNode.withSecretStore(settings: settings, store: secretStore)
        } else {
            node = try PerchNode(settings: settings)
        }
        node.setListener(listener: fanOut)
    }

    /// Every event from now on, in order, for one consumer (call again for another one).
    public func events() -> AsyncStream<NodeEvent> { fanOut.subscribe() }

    /// The latest event, for a status line that only needs the current state.
    public var latestEvent: NodeEvent? { fanOut.latest }

    /// Answers `location.get`; takes effect at the next start.
    public func setLocationProvider(_ provider: LocationProvider) {
        node.setLocationProvider(provider: provider)
    }

    /// Answers `device.info` and `device.status`; takes effect at the next start.
    public func setDeviceInfoProvider(_ provider: DeviceInfoProvider) {
        node.setDeviceInfoProvider(provider: provider)
    }

    /// Answers `system.notify`; takes effect at the next start.
    public func setNotificationPresenter(_ presenter: NotificationPresenter) {
        node.setNotificationPresenter(presenter: presenter)
    }

    /// Pairs with the host a typed or scanned setup code names and starts the node (an async
    /// export: it suspends without holding a thread while the code's addresses are probed).
    public func pair(setupCode: String) async throws {
        try await node.pairWithSetupCode(code: setupCode)
    }

    /// Connects to a host by address; an unknown device waits for approval on the host.
    public func connect(to url: String) async throws {
        try await blocking { [node] in try node.connectTo(url: url) }
    }

    /// Starts the node with its last (or its only pinned) host.
    public func start() async throws {
        try await blocking { [node] in try node.start() }
    }

    /// Closes the connection and stops the node.
    public func stop() async throws {
        try await blocking { [node] in try node.stop() }
    }

    /// A snapshot for a status screen.
    public func status() async throws -> NodeStatus {
        try await blocking { [node] in try node.status() }
    }

    /// Sends the user's answer to a notification the host posted; returns once the host has it.
    public func reply(toNotification id: String, actionId: String? = nil, text: String? = nil) async throws {
        try await node.replyToNotification(
            reply: NotificationReply(notificationId: id, actionId: actionId, text: text)
        )
    }

    /// The app came on screen or left it (cheap: no suspension needed).
    public func setAppState(_ state: AppState) { node.setAppState(state: state) }

    /// The network changed: a node waiting to reconnect tries now.
    public func networkChanged() { node.networkChanged() }

    private func blocking<T>(_ call: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async {
                continuation.resume(with: Result { try call() })
            }
        }
    }
}

/// The node's listener: hands each event to every live `AsyncStream`. It runs on a Rust
/// thread and never waits: each stream buffers up to `bufferSize` events, dropping the oldest.
private final class EventFanOut: NodeListener, @unchecked Sendable {
    private static let bufferSize = 256
    private let lock = NSLock()
    private var streams: [UUID: AsyncStream<NodeEvent>.Continuation] = [:]
    private var last: NodeEvent?

    var latest: NodeEvent? {
        lock.lock()
        defer { lock.unlock() }
        return last
    }

    func subscribe() -> AsyncStream<NodeEvent> {
        AsyncStream(bufferingPolicy: .bufferingNewest(Self.bufferSize)) { continuation in
            let id = UUID()
            lock.lock()
            streams[id] = continuation
            lock.unlock()
            continuation.onTermination = { [weak self] _ in
                guard let self else { return }
                self.lock.lock()
                self.streams[id] = nil
                self.lock.unlock()
            }
        }
    }

    func onEvent(event: NodeEvent) {
        lock.lock()
        last = event
        let targets = Array(streams.values)
        lock.unlock()
        for continuation in targets {
            continuation.yield(event)
        }
    }
}
