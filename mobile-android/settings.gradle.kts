// The Android side of Perch: `:perch`, the library (the Rust node through uniffi and JNA,
// with a coroutine wrapper), and `:sample`, a small app showing how a real app plugs the
// platform in. Both build on a developer machine with the Android SDK; CI has no Google or
// Maven repositories and runs the library's JVM tests with scripts/kotlin-jvm-test.sh instead.
// The Rust libraries per ABI come from scripts/build-android.sh (cargo-ndk).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
    // One version of each plugin for every module (the modules apply them without versions).
    plugins {
        id("com.android.application") version "8.7.3"
        id("com.android.library") version "8.7.3"
        id("org.jetbrains.kotlin.android") version "2.4.20"
        id("org.jetbrains.kotlin.plugin.compose") version "2.4.20"
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "perch-android"
include(":perch")
include(":sample")
