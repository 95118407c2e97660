// Compile-only stand-in for androidx.compose.foundation.layout: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.compose.foundation.layout
import androidx.compose.runtime.Composable
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.Dp
object Arrangement {
    interface Vertical; interface Horizontal; interface HorizontalOrVertical : Vertical, Horizontal
    fun spacedBy(space: Dp): HorizontalOrVertical = TODO()
    val Top: Vertical = TODO()
    val Start: Horizontal = TODO()
}
interface ColumnScope { fun Modifier.align(alignment: Alignment.Horizontal): Modifier = this }
interface RowScope
@Composable fun Column(modifier: Modifier = Modifier, verticalArrangement: Arrangement.Vertical = Arrangement.Top, content: @Composable ColumnScope.() -> Unit) {}
@Composable fun Row(modifier: Modifier = Modifier, horizontalArrangement: Arrangement.Horizontal = Arrangement.Start, content: @Composable RowScope.() -> Unit) {}
fun Modifier.fillMaxSize(): Modifier = this
fun Modifier.fillMaxWidth(): Modifier = this
fun Modifier.padding(all: Dp): Modifier = this
fun Modifier.safeDrawingPadding(): Modifier = this
