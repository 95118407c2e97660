// swift-tools-version:5.9
// Perch for iOS: the Rust node runtime (perch-ffi) as a binary XCFramework plus its
// generated Swift bindings and a thin async layer. Build the XCFramework and the bindings
// first with scripts/build-xcframework.sh (on a Mac); see README.md.
import PackageDescription

let package = Package(
    name: "Perch",
    platforms: [.iOS(.v16)],
    products: [
        .library(name: "Perch", targets: ["Perch"]),
    ],
    targets: [
        // libperch_ffi.a for device and simulator, with the uniffi C header and module map
        // (module perch_ffiFFI) the generated Swift imports.
        .binaryTarget(name: "PerchFFI", path: "PerchFFI.xcframework"),
        // Generated/perch_ffi.swift (uniffi, not committed) and PerchDevice.swift.
        .target(
            name: "Perch",
            dependencies: ["PerchFFI"],
            path: "Sources/Perch"
        ),
    ]
)
