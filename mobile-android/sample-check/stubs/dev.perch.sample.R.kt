// Compile-only stand-in for the sample's generated R class (its resource ids).
package dev.perch.sample
object R {
    object drawable { const val ic_perch = 1 }
    object string {
        const val app_name = 1; const val channel_assistant = 2; const val channel_assistant_desc = 3
        const val channel_urgent = 4; const val channel_urgent_desc = 5; const val channel_node = 6
        const val channel_node_desc = 7; const val reply = 8; const val reply_hint = 9; const val disconnect = 10
    }
}
