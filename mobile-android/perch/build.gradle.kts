// Perch's node runtime for Android apps: perch-ffi (Rust, through uniffi and JNA) plus the
// pure-Kotlin wrapper in src/main/kotlin (coroutines, Flow). The uniffi bindings are not
// committed: `generateUniffiBindings` writes them to build/generated/uniffi/kotlin from the
// library itself (scripts/uniffi-kotlin.sh), so they always match the Rust they call.
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

val repoRoot = rootDir.parentFile
val uniffiOut = layout.buildDirectory.dir("generated/uniffi/kotlin")

val generateUniffiBindings by tasks.registering(Exec::class) {
    description = "Generates perch-ffi's Kotlin bindings (package dev.perch.ffi) in library mode."
    workingDir = repoRoot
    commandLine("bash", "scripts/uniffi-kotlin.sh", uniffiOut.get().asFile.absolutePath)
    inputs.dir(File(repoRoot, "core/ffi/src"))
    inputs.file(File(repoRoot, "core/ffi/uniffi.toml"))
    outputs.dir(uniffiOut)
}

android {
    namespace = "dev.perch"
    compileSdk = 35

    defaultConfig {
        minSdk = 26
        consumerProguardFiles("consumer-rules.pro")
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    sourceSets["main"].java.srcDir(uniffiOut)
    // The per-ABI libperch_ffi.so files (cargo-ndk output: jniLibs/arm64-v8a/...).
    sourceSets["main"].jniLibs.srcDir(layout.buildDirectory.dir("generated/jniLibs"))

    testOptions.unitTests.all {
        // JVM unit tests load the host build of the library that generateUniffiBindings
        // copied beside the bindings, and start the perch binary named by PERCH_BIN.
        it.systemProperty("jna.library.path", layout.buildDirectory.dir("generated/uniffi/native").get().asFile.absolutePath)
        it.environment("PERCH_BIN", System.getenv("PERCH_BIN") ?: File(repoRoot, "target/debug/perch").absolutePath)
    }
}

kotlin {
    jvmToolchain(17)
}

tasks.named("preBuild") { dependsOn(generateUniffiBindings) }

dependencies {
    // The Android AAR carries JNA's native dispatch library per ABI.
    implementation("net.java.dev.jna:jna:5.17.0@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-core:1.10.2")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.10.2")

    // JVM unit tests use the plain JNA jar (with its desktop natives) instead of the AAR.
    testImplementation("net.java.dev.jna:jna:5.17.0")
    testImplementation("junit:junit:4.13.2")
}
