// Compile-only stand-in for androidx.compose.runtime: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.compose.runtime
import kotlin.reflect.KProperty
@Target(AnnotationTarget.FUNCTION, AnnotationTarget.TYPE, AnnotationTarget.TYPE_PARAMETER, AnnotationTarget.PROPERTY_GETTER)
annotation class Composable
interface State<T> { val value: T }
interface MutableState<T> : State<T> { override var value: T }
interface MutableIntState : MutableState<Int>
operator fun <T> State<T>.getValue(thisObj: Any?, property: KProperty<*>): T = value
operator fun <T> MutableState<T>.setValue(thisObj: Any?, property: KProperty<*>, value: T) { this.value = value }
fun <T> mutableStateOf(value: T): MutableState<T> = TODO()
fun mutableIntStateOf(value: Int): MutableIntState = TODO()
@Composable fun <T> remember(calculation: () -> T): T = calculation()
@Composable fun <T> remember(key1: Any?, calculation: () -> T): T = calculation()
@Composable fun rememberCoroutineScope(): kotlinx.coroutines.CoroutineScope = TODO()
@Composable fun LaunchedEffect(key1: Any?, block: suspend kotlinx.coroutines.CoroutineScope.() -> Unit) {}
@Composable fun <T> kotlinx.coroutines.flow.StateFlow<T>.collectAsState(): State<T> = TODO()
