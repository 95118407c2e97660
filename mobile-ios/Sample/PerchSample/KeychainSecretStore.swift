import Foundation
import Perch
import Security

/// The node's secrets (its identity key, its device tokens) in the Keychain, as generic
/// passwords readable after the first unlock and never leaving this device (no iCloud
/// Keychain, no backup restore onto another phone).
final class KeychainSecretStore: SecretStore, @unchecked Sendable {
    private let service: String

    init(service: String = "dev.perch.node") {
        self.service = service
    }

    func get(key: String) throws -> Data? {
        var query = item(key)
        query[kSecReturnData as String] = true
        query[kSecMatchLimit as String] = kSecMatchLimitOne
        var found: CFTypeRef?
        let status = SecItemCopyMatching(query as CFDictionary, &found)
        switch status {
        case errSecSuccess:
            guard let data = found as? Data else { throw failure("read", errSecDecode) }
            return data
        case errSecItemNotFound:
            return nil
        default:
            throw failure("read", status)
        }
    }

    func set(key: String, value: Data) throws {
        let update: [String: Any] = [
            kSecValueData as String: value,
            kSecAttrAccessible as String: kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly,
        ]
        var status = SecItemUpdate(item(key) as CFDictionary, update as CFDictionary)
        if status == errSecItemNotFound {
            let add = item(key).merging(update) { _, new in new }
            status = SecItemAdd(add as CFDictionary, nil)
        }
        guard status == errSecSuccess else { throw failure("write", status) }
    }

    private func item(_ key: String) -> [String: Any] {
        [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: key,
        ]
    }

    /// The Keychain's own words for the status; never the value.
    private func failure(_ what: String, _ status: OSStatus) -> ProviderError {
        let text = SecCopyErrorMessageString(status, nil) as String? ?? "OSStatus \(status)"
        // errSecInteractionNotAllowed: before the first unlock after a restart.
        if status == errSecInteractionNotAllowed {
            return ProviderError.Unavailable(reason: "cannot \(what) a secret before the phone is first unlocked")
        }
        return ProviderError.Failed(reason: "cannot \(what) a secret: \(text)")
    }
}
