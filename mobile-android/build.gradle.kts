// Nothing is configured for all modules: plugin versions live in settings.gradle.kts and
// library versions in gradle/libs.versions.toml. `clean` also removes the root build dir.
tasks.register<Delete>("clean") {
    delete(rootProject.layout.buildDirectory)
}
