// Compile-only stand-in for android.security.keystore: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package android.security.keystore
class KeyGenParameterSpec : java.security.spec.AlgorithmParameterSpec {
    class Builder(alias: String, purposes: Int) {
        fun setBlockModes(vararg m: String) = this
        fun setEncryptionPaddings(vararg p: String) = this
        fun setKeySize(n: Int) = this
        fun build(): KeyGenParameterSpec = TODO()
    }
}
object KeyProperties {
    const val KEY_ALGORITHM_AES = "AES"
    const val PURPOSE_ENCRYPT = 1
    const val PURPOSE_DECRYPT = 2
    const val BLOCK_MODE_GCM = "GCM"
    const val ENCRYPTION_PADDING_NONE = "NoPadding"
}
