// Compile-only stand-in for kotlinx.coroutines.tasks: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package kotlinx.coroutines.tasks
// kotlinx-coroutines-play-services' await with a cancellation source.
suspend fun <T> com.google.android.gms.tasks.Task<T>.await(cancellationTokenSource: com.google.android.gms.tasks.CancellationTokenSource): T = TODO()
