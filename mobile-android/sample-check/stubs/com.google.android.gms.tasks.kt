// Compile-only stand-in for com.google.android.gms.tasks: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package com.google.android.gms.tasks
abstract class CancellationToken
class CancellationTokenSource { val token: CancellationToken get() = TODO() }
fun interface OnSuccessListener<T> { fun onSuccess(result: T) }
fun interface OnFailureListener { fun onFailure(e: Exception) }
abstract class Task<T> {
    fun addOnSuccessListener(l: OnSuccessListener<in T>): Task<T> = this
    fun addOnFailureListener(l: OnFailureListener): Task<T> = this
}
