// Compile-only stand-in for androidx.lifecycle: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.lifecycle
interface LifecycleOwner { val lifecycle: Lifecycle }
abstract class Lifecycle { abstract fun addObserver(o: LifecycleObserver) }
interface LifecycleObserver
interface DefaultLifecycleObserver : LifecycleObserver {
    fun onStart(owner: LifecycleOwner) {}
    fun onStop(owner: LifecycleOwner) {}
}
object ProcessLifecycleOwner { @JvmStatic fun get(): LifecycleOwner = TODO() }
