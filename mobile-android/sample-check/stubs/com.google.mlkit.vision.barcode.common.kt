// Compile-only stand-in for com.google.mlkit.vision.barcode.common: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package com.google.mlkit.vision.barcode.common
class Barcode { val rawValue: String? get() = null; companion object { const val FORMAT_QR_CODE = 256 } }
