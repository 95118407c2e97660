package dev.perch

import java.io.File
import java.net.ServerSocket
import java.nio.file.Files
import java.util.concurrent.TimeUnit

/** Every wait in these tests ends by this many milliseconds. */
const val DEADLINE_MS = 30_000L

/** The perch binary under test (scripts/kotlin-jvm-test.sh sets PERCH_BIN). */
val PERCH: String = System.getenv("PERCH_BIN") ?: error("PERCH_BIN is not set: run scripts/kotlin-jvm-test.sh")

/** A free loopback port (bound and released; the host binds it right after). */
fun freePort(): Int = ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress()).use { it.localPort }

/** Polls [check] until it holds, failing with [what] at the deadline. */
fun until(what: String, check: () -> Boolean) {
    val end = System.nanoTime() + DEADLINE_MS * 1_000_000
    while (System.nanoTime() < end) {
        if (check()) return
        Thread.sleep(150)
    }
    throw AssertionError("timed out waiting for $what")
}

/** What a `perch ... --json` run printed, and how it ended. */
data class CliResult(val code: Int, val json: Any?, val stdout: String) {
    /** The JSON of a successful run; a failed run fails the test with its output. */
    fun ok(): Any? {
        if (code != 0) throw AssertionError("perch failed ($code): $stdout")
        return json
    }

    /** The error code of a failed run. */
    fun errorCode(): Any? {
        if (code == 0) throw AssertionError("perch succeeded but should have failed: $stdout")
        return json.at("error", "code")
    }
}

/**
 * A real `perch serve` on a free loopback port with a temporary data dir. [restart] kills
 * it and starts it again on the same port and data dir; [close] kills it and removes the dir.
 */
class HostProcess : AutoCloseable {
    /** The host's data dir (removed by [close]). */
    val dir: File = Files.createTempDirectory("perch-kt-host").toFile()

    /** The loopback port the host listens on. */
    val port: Int = freePort()

    /** The gateway address a node connects to. */
    val url: String get() = "ws://127.0.0.1:$port"

    private var proc: Process? = null

    init {
        try {
            launch()
        } catch (e: Throwable) {
            close()
            throw e
        }
    }

    private fun launch() {
        val log = File(dir, "serve.log")
        proc = ProcessBuilder(PERCH, "serve", "--data-dir", dir.path, "--bind", "127.0.0.1:$port")
            .redirectErrorStream(true)
            .redirectOutput(ProcessBuilder.Redirect.appendTo(log))
            .start()
        until("the host to answer") { cli("status").code == 0 }
    }

    /** Kills the host process and waits for it to be gone. */
    fun kill() {
        proc?.let {
            it.destroyForcibly()
            it.waitFor(DEADLINE_MS, TimeUnit.MILLISECONDS)
        }
        proc = null
    }

    /** Starts the host again on the same port and data dir. */
    fun start() = launch()

    /** Runs `perch ARGS --json` against this host. */
    fun cli(vararg args: String): CliResult {
        val cmd = listOf(PERCH, *args, "--json", "--data-dir", dir.path, "--gateway", url)
        // Output to a file, so the deadline holds even if the command hangs.
        val outFile = File.createTempFile("perch-cli", ".json", dir)
        val out = try {
            val p = ProcessBuilder(cmd)
                .redirectError(ProcessBuilder.Redirect.DISCARD)
                .redirectOutput(outFile)
                .start()
            if (!p.waitFor(DEADLINE_MS, TimeUnit.MILLISECONDS)) {
                p.destroyForcibly()
                throw AssertionError("perch ${args.joinToString(" ")} did not finish in time")
            }
            p.exitValue() to outFile.readText()
        } finally {
            outFile.delete()
        }
        val json = try { Json.parse(out.second) } catch (e: RuntimeException) { null }
        return CliResult(out.first, json, out.second)
    }

    /** `perch nodes invoke NODE COMMAND [--params JSON]`. */
    fun invoke(node: String, command: String, params: String? = null): CliResult =
        if (params == null) cli("nodes", "invoke", node, command)
        else cli("nodes", "invoke", node, command, "--params", params)

    /** A fresh setup code for this host. */
    fun setupCode(): String = cli("devices", "setup-code").ok().at("setupCode") as String

    /** The last lines of the host's log, for failure messages. */
    fun logTail(): String = File(dir, "serve.log").takeIf { it.exists() }?.readLines()?.takeLast(20)?.joinToString("\n") ?: ""

    override fun close() {
        kill()
        dir.deleteRecursively()
    }
}
