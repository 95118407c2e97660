import CoreLocation
import Foundation
import Perch

/// `location.get` from CoreLocation. The node calls it on its own blocking threads, while a
/// CLLocationManager lives on the main thread: each request hops there, and the node's thread
/// waits (bounded by the request's timeout) for the fix.
///
/// Permission: not determined, restricted, denied or location services off is `off`; "While
/// Using the App" is `whileUsing`; "Always" is `always`; precise follows the user's Precise
/// Location switch (accuracy authorization).
final class CoreLocationProvider: NSObject, LocationProvider, CLLocationManagerDelegate, @unchecked Sendable {
    private let manager = CLLocationManager()
    private let lock = NSLock()
    /// The authorization as last reported by the delegate (read from any thread).
    private var authorization: CLAuthorizationStatus = .notDetermined
    private var fullAccuracy = false
    /// Requests waiting for the next fix or failure (main thread only).
    private var waiting: [(Result<CLLocation, Error>) -> Void] = []

    /// Called when the user changes the permission (the screen re-reads it).
    var onAuthorizationChange: (() -> Void)?

    /// Must be made on the main thread: the manager delivers its callbacks there.
    override init() {
        super.init()
        manager.delegate = self
    }

    func requestWhenInUse() { manager.requestWhenInUseAuthorization() }

    /// Asking for Always after When In Use: iOS shows its upgrade prompt (once).
    func requestAlways() { manager.requestAlwaysAuthorization() }

    /// The permission as last reported, for the screen (main thread; no services check).
    var grantedForDisplay: (status: CLAuthorizationStatus, precise: Bool) {
        lock.lock()
        defer { lock.unlock() }
        return (authorization, fullAccuracy)
    }

    func permission() -> LocationPermission {
        // Off the main thread here (the node's thread), where Apple wants this call made.
        let servicesOn = CLLocationManager.locationServicesEnabled()
        lock.lock()
        let (status, precise) = (authorization, fullAccuracy)
        lock.unlock()
        let access: LocationAccess
        switch status {
        case .authorizedAlways: access = .always
        case .authorizedWhenInUse: access = .whileUsing
        default: access = .off
        }
        return LocationPermission(access: servicesOn ? access : .off, precise: precise)
    }

    func currentLocation(request: LocationRequest) throws -> Location {
        guard permission().access != .off else {
            throw ProviderError.PermissionDenied(reason: "location is off or not allowed for this app")
        }
        let outcome = Outcome()
        DispatchQueue.main.async { [self] in
            if let maxAge = request.maxAgeMs, let cached = manager.location,
               cached.horizontalAccuracy >= 0,
               -cached.timestamp.timeIntervalSinceNow * 1000 <= Double(maxAge) {
                outcome.finish(.success(cached))
                return
            }
            switch request.desiredAccuracy {
            case .precise: manager.desiredAccuracy = kCLLocationAccuracyBest
            case .balanced: manager.desiredAccuracy = kCLLocationAccuracyHundredMeters
            case .coarse: manager.desiredAccuracy = kCLLocationAccuracyKilometer
            }
            waiting.append(outcome.finish)
            manager.requestLocation()
        }
        let timeout = DispatchTime.now() + .milliseconds(Int(min(request.timeoutMs, 60_000)))
        guard outcome.done.wait(timeout: timeout) == .success, let result = outcome.result else {
            throw ProviderError.Unavailable(reason: "no location fix within \(request.timeoutMs) ms")
        }
        let fix: CLLocation
        do {
            fix = try result.get()
        } catch let error as CLError where error.code == .denied {
            throw ProviderError.PermissionDenied(reason: "location access was denied")
        } catch {
            throw ProviderError.Unavailable(reason: error.localizedDescription)
        }
        guard fix.horizontalAccuracy >= 0 else {
            throw ProviderError.Unavailable(reason: "CoreLocation returned a fix without a position")
        }
        return Location(
            lat: fix.coordinate.latitude,
            lon: fix.coordinate.longitude,
            accuracyMeters: fix.horizontalAccuracy,
            altitudeMeters: fix.verticalAccuracy >= 0 ? fix.altitude : nil,
            speedMps: fix.speed >= 0 ? fix.speed : nil,
            headingDeg: fix.course >= 0 ? fix.course : nil,
            timestampMs: Int64(fix.timestamp.timeIntervalSince1970 * 1000),
            // CoreLocation does not say which radio produced a fix.
            source: .unknown
        )
    }

    // MARK: CLLocationManagerDelegate (main thread)

    func locationManagerDidChangeAuthorization(_ manager: CLLocationManager) {
        lock.lock()
        authorization = manager.authorizationStatus
        fullAccuracy = manager.accuracyAuthorization == .fullAccuracy
        lock.unlock()
        onAuthorizationChange?()
    }

    func locationManager(_ manager: CLLocationManager, didUpdateLocations locations: [CLLocation]) {
        guard let fix = locations.last else { return }
        deliver(.success(fix))
    }

    func locationManager(_ manager: CLLocationManager, didFailWithError error: Error) {
        // kCLErrorLocationUnknown is transient: CoreLocation keeps trying until the timeout.
        if let error = error as? CLError, error.code == .locationUnknown { return }
        deliver(.failure(error))
    }

    private func deliver(_ result: Result<CLLocation, Error>) {
        let callbacks = waiting
        waiting.removeAll()
        callbacks.forEach { $0(result) }
    }
}

/// One request's answer, handed from the main thread to the node's waiting thread.
private final class Outcome: @unchecked Sendable {
    let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var value: Result<CLLocation, Error>?

    var result: Result<CLLocation, Error>? {
        lock.lock()
        defer { lock.unlock() }
        return value
    }

    func finish(_ result: Result<CLLocation, Error>) {
        lock.lock()
        let first = value == nil
        if first { value = result }
        lock.unlock()
        if first { done.signal() }
    }
}
