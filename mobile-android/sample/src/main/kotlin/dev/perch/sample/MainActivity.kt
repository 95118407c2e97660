package dev.perch.sample

import android.Manifest
import android.content.Context
import android.content.Intent
import android.net.Uri
import android.os.Build
import android.os.Bundle
import android.provider.Settings
import androidx.activity.ComponentActivity
import androidx.activity.compose.rememberLauncherForActivityResult
import androidx.activity.compose.setContent
import androidx.activity.result.contract.ActivityResultContracts
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.layout.safeDrawingPadding
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.Button
import androidx.compose.material3.Card
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Surface
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.runtime.collectAsState
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableIntStateOf
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.rememberCoroutineScope
import androidx.compose.runtime.setValue
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.platform.LocalContext
import androidx.compose.ui.text.font.FontFamily
import androidx.compose.ui.unit.dp
import androidx.compose.ui.unit.sp
import androidx.lifecycle.compose.LifecycleResumeEffect
import com.google.mlkit.vision.barcode.common.Barcode
import com.google.mlkit.vision.codescanner.GmsBarcodeScannerOptions
import com.google.mlkit.vision.codescanner.GmsBarcodeScanning
import dev.perch.ffi.LocationAccess
import dev.perch.ffi.NodeEvent
import dev.perch.ffi.PerchException
import kotlinx.coroutines.launch

/** The one screen: connection status, pairing (scan, paste or address), permissions. */
class MainActivity : ComponentActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val app = application as PerchApp
        setContent {
            MaterialTheme {
                Surface(Modifier.fillMaxSize()) { PerchScreen(app) }
            }
        }
    }
}

@Composable
private fun PerchScreen(app: PerchApp) {
    val context = LocalContext.current
    val scope = rememberCoroutineScope()
    val event by app.device.latest.collectAsState()
    var setupCode by remember { mutableStateOf("") }
    var address by remember { mutableStateOf("") }
    var message by remember { mutableStateOf<String?>(null) }
    var busy by remember { mutableStateOf(false) }

    // A phone paired before (an app restart) reconnects through the service at once.
    LaunchedEffect(Unit) {
        val paired = try {
            app.device.status().hosts.isNotEmpty()
        } catch (e: PerchException) {
            message = e.message
            false
        }
        if (paired) NodeService.start(context)
    }

    /** Runs one pairing call off the main thread, then keeps the node alive in the service. */
    fun pair(call: suspend () -> Unit) {
        busy = true
        message = null
        scope.launch {
            try {
                call()
                NodeService.start(context)
            } catch (e: PerchException.InvalidSetupCode) {
                message = "That setup code does not read: ${e.reason}. Check for a typo, or scan it."
            } catch (e: PerchException.InvalidAddress) {
                message = "That address does not work: ${e.reason}"
            } catch (e: PerchException) {
                message = e.message
            } finally {
                busy = false
            }
        }
    }

    val scanner = remember {
        GmsBarcodeScanning.getClient(
            context,
            GmsBarcodeScannerOptions.Builder().setBarcodeFormats(Barcode.FORMAT_QR_CODE).build(),
        )
    }

    Column(
        Modifier.safeDrawingPadding().padding(16.dp).verticalScroll(rememberScrollState()),
        verticalArrangement = Arrangement.spacedBy(12.dp),
    ) {
        Text("Perch", style = MaterialTheme.typography.headlineMedium)
        StatusCard(event)

        Text("Pair with a setup code", style = MaterialTheme.typography.titleMedium)
        OutlinedTextField(
            value = setupCode,
            onValueChange = { setupCode = it },
            label = { Text("Setup code (perch devices setup-code on the host)") },
            modifier = Modifier.fillMaxWidth(),
            minLines = 2,
        )
        Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
            OutlinedButton(enabled = !busy, onClick = {
                scanner.startScan()
                    .addOnSuccessListener { barcode ->
                        val scanned = barcode.rawValue.orEmpty()
                        setupCode = scanned
                        pair { app.device.pairWithSetupCode(scanned.trim()) }
                    }
                    .addOnFailureListener { message = "The scanner is not available: ${it.message}" }
            }) { Text("Scan QR code") }
            Button(
                enabled = !busy && setupCode.isNotBlank(),
                onClick = { pair { app.device.pairWithSetupCode(setupCode.trim()) } },
            ) { Text("Pair") }
        }

        Text("Or connect by address (approve on the host)", style = MaterialTheme.typography.titleMedium)
        OutlinedTextField(
            value = address,
            onValueChange = { address = it },
            label = { Text("Host address (wss://192.168.1.20:18789)") },
            singleLine = true,
            modifier = Modifier.fillMaxWidth(),
        )
        Button(
            enabled = !busy && address.isNotBlank(),
            onClick = { pair { app.device.connectTo(address.trim()) } },
        ) { Text("Connect") }

        message?.let { Text(it, color = MaterialTheme.colorScheme.error) }

        PermissionsCard()

        OutlinedButton(onClick = { context.stopService(Intent(context, NodeService::class.java)) }) {
            Text("Disconnect")
        }
    }
}

/** Where the node is; while the host waits for approval, the code to compare, large. */
@Composable
private fun StatusCard(event: NodeEvent?) {
    Card(Modifier.fillMaxWidth()) {
        Column(Modifier.padding(16.dp), verticalArrangement = Arrangement.spacedBy(8.dp)) {
            Text(event?.let { NodeService.describe(it) } ?: "Not connected")
            if (event is NodeEvent.WaitingForApproval) {
                Text("Approve this phone on the host if it shows the same code:")
                Text(
                    event.verificationCode ?: "(the host sent no code: do not approve)",
                    fontFamily = FontFamily.Monospace,
                    fontSize = 32.sp,
                    modifier = Modifier.align(Alignment.CenterHorizontally),
                )
            }
        }
    }
}

/**
 * The permission flow, in the order Android requires: location while in use first, then
 * "Allow all the time" (a separate request, which Android 11+ sends to Settings), then
 * notifications (Android 13+).
 */
@Composable
private fun PermissionsCard() {
    val context = LocalContext.current
    val location = remember { FusedLocation(context) }
    // Bumped on every resume and result, so the rows re-read what the user changed.
    var refresh by remember { mutableIntStateOf(0) }
    LifecycleResumeEffect(Unit) {
        refresh++
        onPauseOrDispose { }
    }
    val foreground = rememberLauncherForActivityResult(ActivityResultContracts.RequestMultiplePermissions()) { refresh++ }
    val single = rememberLauncherForActivityResult(ActivityResultContracts.RequestPermission()) { refresh++ }

    val permission = remember(refresh) { location.permission() }
    val notificationsOn = remember(refresh) { Notifications.allowed(context) }

    Card(Modifier.fillMaxWidth()) {
        Column(Modifier.padding(16.dp), verticalArrangement = Arrangement.spacedBy(8.dp)) {
            Text("Permissions", style = MaterialTheme.typography.titleMedium)
            Text(
                "Location: " + when (permission.access) {
                    LocationAccess.OFF -> "off"
                    LocationAccess.WHILE_USING -> "while using the app"
                    LocationAccess.ALWAYS -> "always"
                } + if (permission.access != LocationAccess.OFF) {
                    if (permission.precise) ", precise" else ", approximate"
                } else {
                    ""
                },
            )
            when (permission.access) {
                LocationAccess.OFF -> Button(onClick = {
                    foreground.launch(
                        arrayOf(Manifest.permission.ACCESS_FINE_LOCATION, Manifest.permission.ACCESS_COARSE_LOCATION),
                    )
                }) { Text("Allow location while using the app") }
                LocationAccess.WHILE_USING -> if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.Q) {
                    Text("To answer location requests while the phone is in your pocket, allow it all the time.")
                    OutlinedButton(onClick = { single.launch(Manifest.permission.ACCESS_BACKGROUND_LOCATION) }) {
                        Text("Allow all the time")
                    }
                }
                LocationAccess.ALWAYS -> {}
            }
            Text("Notifications: " + if (notificationsOn) "on" else "off")
            if (!notificationsOn) {
                Button(onClick = {
                    if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.TIRAMISU) {
                        single.launch(Manifest.permission.POST_NOTIFICATIONS)
                    } else {
                        openAppSettings(context)
                    }
                }) { Text("Allow notifications") }
            }
            // After two refusals Android stops asking: Settings is the way back.
            OutlinedButton(onClick = { openAppSettings(context) }) { Text("App settings") }
        }
    }
}

/** This app's page in Settings, where a permission the user refused twice can still be granted. */
private fun openAppSettings(context: Context) {
    context.startActivity(
        Intent(Settings.ACTION_APPLICATION_DETAILS_SETTINGS, Uri.fromParts("package", context.packageName, null))
            .addFlags(Intent.FLAG_ACTIVITY_NEW_TASK),
    )
}
