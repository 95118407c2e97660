// Compile-only stand-in for androidx.compose.material3: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.compose.material3
import androidx.compose.foundation.layout.ColumnScope
import androidx.compose.foundation.layout.RowScope
import androidx.compose.runtime.Composable
import androidx.compose.ui.Modifier
import androidx.compose.ui.text.font.FontFamily
import androidx.compose.ui.unit.TextUnit
class TextStyle
class Typography { val headlineMedium = TextStyle(); val titleMedium = TextStyle() }
class Color
class ColorScheme { val error = Color() }
object MaterialTheme {
    val typography: Typography @Composable get() = TODO()
    val colorScheme: ColorScheme @Composable get() = TODO()
}
@Composable fun MaterialTheme(content: @Composable () -> Unit) {}
@Composable fun Surface(modifier: Modifier = Modifier, content: @Composable () -> Unit) {}
@Composable fun Card(modifier: Modifier = Modifier, content: @Composable ColumnScope.() -> Unit) {}
@Composable fun Text(text: String, modifier: Modifier = Modifier, color: Color? = null, fontSize: TextUnit? = null, fontFamily: FontFamily? = null, style: TextStyle? = null) {}
@Composable fun Button(onClick: () -> Unit, modifier: Modifier = Modifier, enabled: Boolean = true, content: @Composable RowScope.() -> Unit) {}
@Composable fun OutlinedButton(onClick: () -> Unit, modifier: Modifier = Modifier, enabled: Boolean = true, content: @Composable RowScope.() -> Unit) {}
@Composable fun OutlinedTextField(value: String, onValueChange: (String) -> Unit, modifier: Modifier = Modifier, label: @Composable (() -> Unit)? = null, singleLine: Boolean = false, minLines: Int = 1) {}
