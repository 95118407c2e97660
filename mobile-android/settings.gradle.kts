// The Android side of Perch. Only the `perch` library module so far (the app comes later).
// It builds on a developer machine with the Android SDK; CI runs its unit tests on the JVM
// with scripts/kotlin-jvm-test.sh instead (no Maven or Google repositories there).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
    plugins {
        id("com.android.library") version "8.7.3"
        id("org.jetbrains.kotlin.android") version "2.4.20"
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
