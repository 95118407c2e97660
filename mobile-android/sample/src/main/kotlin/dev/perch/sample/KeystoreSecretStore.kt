package dev.perch.sample

import android.content.Context
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import android.util.Base64
import dev.perch.ffi.ProviderException
import dev.perch.ffi.SecretStore
import java.security.GeneralSecurityException
import java.security.KeyStore
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec

/**
 * The node's secrets (its identity key, its device tokens) at rest: each value is sealed
 * with AES-256-GCM under a key that lives in the Android Keystore (hardware-backed where
 * the phone has it, never exportable), and only the sealed bytes go to SharedPreferences.
 * The entry's name is bound in as associated data, so sealed values cannot be swapped
 * between names.
 */
class KeystoreSecretStore(context: Context) : SecretStore {
    private val prefs = context.applicationContext.getSharedPreferences(PREFS, Context.MODE_PRIVATE)
    private val lock = Any()

    override fun get(key: String): ByteArray? = guarded("read") {
        val stored = prefs.getString(key, null) ?: return@guarded null
        val sealed = Base64.decode(stored, Base64.NO_WRAP)
        if (sealed.size <= IV_BYTES) throw GeneralSecurityException("stored value is truncated")
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.DECRYPT_MODE, wrappingKey(), GCMParameterSpec(TAG_BITS, sealed, 0, IV_BYTES))
        cipher.updateAAD(key.toByteArray(Charsets.UTF_8))
        cipher.doFinal(sealed, IV_BYTES, sealed.size - IV_BYTES)
    }

    override fun set(key: String, value: ByteArray) = guarded("write") {
        val cipher = Cipher.getInstance(TRANSFORMATION)
        // The Keystore picks a fresh random IV for every encryption.
        cipher.init(Cipher.ENCRYPT_MODE, wrappingKey())
        cipher.updateAAD(key.toByteArray(Charsets.UTF_8))
        val sealed = cipher.iv + cipher.doFinal(value)
        check(cipher.iv.size == IV_BYTES) { "unexpected GCM IV length ${cipher.iv.size}" }
        // commit, not apply: the node treats a returned set as stored.
        check(prefs.edit().putString(key, Base64.encodeToString(sealed, Base64.NO_WRAP)).commit()) {
            "SharedPreferences refused the write"
        }
    }

    /** The Keystore key, made on first use. */
    private fun wrappingKey(): SecretKey {
        val keyStore = KeyStore.getInstance(KEYSTORE).apply { load(null) }
        (keyStore.getKey(ALIAS, null) as? SecretKey)?.let { return it }
        val generator = KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, KEYSTORE)
        generator.init(
            KeyGenParameterSpec.Builder(ALIAS, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT)
                .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
                .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
                .setKeySize(256)
                .build(),
        )
        return generator.generateKey()
    }

    /** One operation at a time (key creation must not race), failures as typed provider errors. */
    private fun <T> guarded(what: String, body: () -> T): T = synchronized(lock) {
        try {
            body()
        } catch (e: ProviderException) {
            throw e
        } catch (e: Exception) {
            // The message names the failure, never the value.
            throw ProviderException.Failed("cannot $what a secret: ${e.javaClass.simpleName}: ${e.message}")
        }
    }

    private companion object {
        const val KEYSTORE = "AndroidKeyStore"
        const val ALIAS = "perch-node-secrets"
        const val PREFS = "perch-secrets"
        const val TRANSFORMATION = "AES/GCM/NoPadding"
        const val IV_BYTES = 12
        const val TAG_BITS = 128
    }
}
