// The sample app: pairing (scan or paste a setup code), the permission flow, and the
// platform providers (fused location, NotificationCompat with replies, device facts,
// a Keystore-backed secret store) over the :perch library, kept alive by a foreground service.
plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
    id("org.jetbrains.kotlin.plugin.compose")
}

android {
    namespace = "dev.perch.sample"
    compileSdk = 35

    defaultConfig {
        applicationId = "dev.perch.sample"
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        // The ABIs scripts/build-android.sh builds; others would ship without the Rust library.
        ndk { abiFilters += listOf("arm64-v8a", "armeabi-v7a", "x86_64") }
    }

    buildTypes {
        release {
            isMinifyEnabled = true
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"))
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    buildFeatures { compose = true }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    implementation(project(":perch"))
    // The generated bindings expose JNA types (Pointer) in their public API.
    implementation(libs.jna) { artifact { type = "aar" } }
    implementation(libs.kotlinx.coroutines.android)
    implementation(libs.kotlinx.coroutines.play.services)

    implementation(libs.androidx.core.ktx)
    implementation(libs.androidx.activity.compose)
    implementation(libs.androidx.lifecycle.process)
    implementation(libs.androidx.lifecycle.runtime.compose)
    implementation(platform(libs.androidx.compose.bom))
    implementation(libs.androidx.compose.ui)
    implementation(libs.androidx.compose.material3)

    implementation(libs.play.services.location)
    // Google's code scanner: the QR scan runs in Play services, so the app needs no CAMERA
    // permission of its own.
    implementation(libs.play.services.code.scanner)
}
