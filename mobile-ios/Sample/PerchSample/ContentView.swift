import AVFoundation
import CoreLocation
import Perch
import SwiftUI
import UserNotifications

/// The one screen: connection status (with the verification code while the host waits for
/// approval), pairing by scanned or pasted setup code or by address, and the permissions.
struct ContentView: View {
    @EnvironmentObject private var model: NodeModel
    @State private var setupCode = ""
    @State private var address = ""
    @State private var scanning = false

    var body: some View {
        NavigationStack {
            Form {
                Section("Status") {
                    Text(model.statusLine)
                    if model.waitingForApproval {
                        Text("Approve this phone on the host if it shows the same code:")
                        Text(model.verificationCode ?? "(the host sent no code: do not approve)")
                            .font(.system(size: 34, weight: .semibold, design: .monospaced))
                            .frame(maxWidth: .infinity)
                    }
                    if let message = model.message {
                        Text(message).foregroundStyle(.red)
                    }
                }

                Section("Pair with a setup code") {
                    TextField("Setup code (perch devices setup-code on the host)", text: $setupCode, axis: .vertical)
                        .textInputAutocapitalization(.never)
                        .autocorrectionDisabled()
                    HStack {
                        Button("Scan QR code") { startScan() }
                        Spacer()
                        Button("Paste") { setupCode = UIPasteboard.general.string ?? setupCode }
                        Spacer()
                        Button("Pair") { model.pair(setupCode: setupCode) }
                            .disabled(model.busy || setupCode.isEmpty)
                    }
                    .buttonStyle(.borderless)
                }

                Section("Or connect by address (approve on the host)") {
                    TextField("Host address (wss://192.168.1.20:18789)", text: $address)
                        .keyboardType(.URL)
                        .textInputAutocapitalization(.never)
                        .autocorrectionDisabled()
                    Button("Connect") { model.connect(address: address) }
                        .disabled(model.busy || address.isEmpty)
                }

                PermissionsSection(location: model.location)

                Section {
                    Button("Disconnect", role: .destructive) { model.disconnect() }
                }
            }
            .navigationTitle("Perch")
            .sheet(isPresented: $scanning) {
                QRScannerView { code in
                    scanning = false
                    setupCode = code
                    model.pair(setupCode: code)
                }
                .ignoresSafeArea()
            }
        }
    }

    /// Asks for the camera first (the sheet would only show black without it).
    private func startScan() {
        AVCaptureDevice.requestAccess(for: .video) { granted in
            DispatchQueue.main.async {
                if granted {
                    scanning = true
                } else {
                    model.message = "Camera access is off: allow it in Settings, or paste the code."
                }
            }
        }
    }
}

/// Location (While Using first, then Always, as iOS requires) and notifications.
private struct PermissionsSection: View {
    let location: CoreLocationProvider
    @State private var locationText = ""
    @State private var status: CLAuthorizationStatus = .notDetermined
    @State private var notificationsOn = false
    @Environment(\.scenePhase) private var scenePhase

    var body: some View {
        Section("Permissions") {
            Text("Location: \(locationText)")
            switch status {
            case .notDetermined:
                Button("Allow location while using the app") { location.requestWhenInUse() }
            case .authorizedWhenInUse:
                Text("To answer location requests while the phone is locked, allow it always.")
                    .font(.footnote)
                Button("Allow always") { location.requestAlways() }
            case .denied, .restricted:
                Button("Open Settings") { openSettings() }
            default:
                EmptyView()
            }
            Text("Notifications: \(notificationsOn ? "on" : "off")")
            if !notificationsOn {
                Button("Allow notifications") {
                    UNUserNotificationCenter.current().requestAuthorization(options: [.alert, .sound, .badge]) { _, _ in
                        Task { @MainActor in await refresh() }
                    }
                }
            }
        }
        .task { await refresh() }
        .onChange(of: scenePhase) { phase in
            if phase == .active { Task { await refresh() } }
        }
        .onAppear {
            location.onAuthorizationChange = { Task { @MainActor in await refresh() } }
        }
    }

    @MainActor
    private func refresh() async {
        let granted = location.grantedForDisplay
        status = granted.status
        switch granted.status {
        case .authorizedAlways: locationText = granted.precise ? "always, precise" : "always, approximate"
        case .authorizedWhenInUse: locationText = granted.precise ? "while using, precise" : "while using, approximate"
        default: locationText = "off"
        }
        let settings = await UNUserNotificationCenter.current().notificationSettings()
        notificationsOn = settings.authorizationStatus == .authorized
    }

    private func openSettings() {
        if let url = URL(string: UIApplication.openSettingsURLString) {
            UIApplication.shared.open(url)
        }
    }
}
