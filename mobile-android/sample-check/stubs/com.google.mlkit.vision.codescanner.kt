// Compile-only stand-in for com.google.mlkit.vision.codescanner: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package com.google.mlkit.vision.codescanner
import com.google.android.gms.tasks.Task
import com.google.mlkit.vision.barcode.common.Barcode
class GmsBarcodeScannerOptions { class Builder { fun setBarcodeFormats(format: Int, vararg more: Int) = this; fun build(): GmsBarcodeScannerOptions = TODO() } }
interface GmsBarcodeScanner { fun startScan(): Task<Barcode> }
object GmsBarcodeScanning { @JvmStatic fun getClient(c: android.content.Context, o: GmsBarcodeScannerOptions): GmsBarcodeScanner = TODO() }
