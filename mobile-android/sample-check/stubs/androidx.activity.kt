// Compile-only stand-in for androidx.activity: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.activity
open class ComponentActivity : android.content.ContextWrapper() {
    open fun onCreate(savedInstanceState: android.os.Bundle?) {}
    val application: android.app.Application get() = TODO()
}
