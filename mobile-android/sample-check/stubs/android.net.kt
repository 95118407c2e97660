// Compile-only stand-in for android.net: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package android.net
class Network
class Uri {
    class Builder {
        fun scheme(s: String?) = this
        fun authority(a: String?) = this
        fun appendPath(p: String?) = this
        fun build(): Uri = TODO()
    }
    companion object { fun fromParts(s: String, ssp: String, f: String?): Uri = TODO() }
}
class NetworkCapabilities {
    fun hasTransport(t: Int): Boolean = false
    companion object { const val TRANSPORT_CELLULAR = 0; const val TRANSPORT_WIFI = 1; const val TRANSPORT_ETHERNET = 3 }
}
class ConnectivityManager {
    val activeNetwork: Network? get() = null
    val isActiveNetworkMetered: Boolean get() = false
    fun getNetworkCapabilities(n: Network?): NetworkCapabilities? = null
    fun registerDefaultNetworkCallback(cb: NetworkCallback) {}
    open class NetworkCallback { open fun onAvailable(network: Network) {} }
}
