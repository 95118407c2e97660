// Compile-only stand-in for androidx.lifecycle.compose: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.lifecycle.compose
import androidx.compose.runtime.Composable
class LifecycleResumePauseEffectScope { fun onPauseOrDispose(block: () -> Unit): PauseOrDisposeEffectResult = TODO() }
class PauseOrDisposeEffectResult
@Composable fun LifecycleResumeEffect(key1: Any?, effects: LifecycleResumePauseEffectScope.() -> PauseOrDisposeEffectResult) {}
