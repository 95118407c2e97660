// Compile-only stand-in for android.util: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package android.util
object Base64 {
    const val NO_WRAP = 2
    @JvmStatic fun decode(s: String, flags: Int): ByteArray = TODO()
    @JvmStatic fun encodeToString(b: ByteArray, flags: Int): String = TODO()
}
