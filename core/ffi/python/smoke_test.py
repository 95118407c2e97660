"""perch-ffi through its generated Python bindings, against a real `perch serve`.

Run by scripts/ffi-python-test.sh, which builds the library, generates `perch_ffi.py` in
library mode and puts both on PYTHONPATH. Standard library only. Environment:
  PERCH_BIN        the perch binary (required)
  PERCH_FFI_PYDIR  where perch_ffi.py and the library are (added to sys.path)
"""

import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.environ.get("PERCH_FFI_PYDIR", "."))
import perch_ffi as pf  # noqa: E402

PERCH = os.environ["PERCH_BIN"]
DEADLINE_S = 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Host:
    """A real `perch serve` on a free loopback port with a temporary data dir."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory()
        self.port = free_port()
        self.log = open(os.path.join(self.dir.name, "serve.log"), "w")
        self.proc = subprocess.Popen(
            [PERCH, "serve", "--data-dir", self.dir.name, "--bind", f"127.0.0.1:{self.port}"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        until("the host answers", lambda: self.cli("status")[0] == 0)

    def cli(self, *args):
        out = subprocess.run(
            [PERCH, *args, "--json", "--data-dir", self.dir.name,
             "--gateway", f"ws://127.0.0.1:{self.port}"],
            capture_output=True, text=True, timeout=DEADLINE_S,
        )
        try:
            value = json.loads(out.stdout)
        except ValueError:
            value = out.stdout
        return out.returncode, value

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        self.dir.cleanup()


def until(what, check):
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.15)
    raise AssertionError(f"timed out waiting for {what}")


class Here(pf.LocationProvider):
    """A Python location provider: a fixed fix, or a failure when `fail` is set."""

    def __init__(self):
        self.fail = False
        self.requests = []

    def current_location(self, request):
        self.requests.append(request)
        if self.fail:
            raise pf.ProviderError.Unavailable(reason="the Python provider has no fix")
        return pf.Location(
            lat=-33.8688, lon=151.2093, accuracy_meters=8.0, altitude_meters=None,
            speed_mps=None, heading_deg=None, timestamp_ms=None,
            source=pf.LocationSource.WIFI,
        )

    def permission(self):
        return pf.LocationPermission(access=pf.LocationAccess.ALWAYS, precise=True)


class Events(pf.NodeListener):
    def __init__(self):
        self.queue = queue.Queue()

    def on_event(self, event):
        self.queue.put(event)

    def wait(self, kind):
        end = time.monotonic() + DEADLINE_S
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {kind.__name__}")
            try:
                event = self.queue.get(timeout=left)
            except queue.Empty:
                continue
            if isinstance(event, kind):
                return event


class SmokeTest(unittest.TestCase):
    def setUp(self):
        self.host = Host()
        self.addCleanup(self.host.close)
        self.node_dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.node_dir.cleanup)

    def test_pairs_from_python_and_answers_location(self):
        code, minted = self.host.cli("devices", "setup-code")
        self.assertEqual(code, 0, minted)
        setup_code = minted["setupCode"]

        node = pf.PerchNode(pf.NodeSettings(
            display_name="Python Phone", data_dir=self.node_dir.name,
            platform="android", device_family="Pixel", model_identifier=None, locale=None,
        ))
        events, here = Events(), Here()
        node.set_listener(events)
        node.set_location_provider(here)

        with self.assertRaises(pf.PerchError.InvalidSetupCode):
            node.pair_with_setup_code(setup_code[:-3])
        node.pair_with_setup_code(setup_code)
        online = events.wait(pf.NodeEvent.ONLINE)
        self.assertTrue(online.host_name)
        self.assertEqual(node.status().phase, pf.NodePhase.ONLINE)

        code, fix = self.host.cli("nodes", "invoke", "Python Phone", "location.get")
        self.assertEqual(code, 0, fix)
        self.assertEqual((fix["lat"], fix["lon"]), (-33.8688, 151.2093))
        self.assertEqual(fix["source"], "wifi")
        self.assertTrue(fix["isPrecise"])
        self.assertEqual(len(here.requests), 1)

        here.fail = True
        code, err = self.host.cli("nodes", "invoke", "Python Phone", "location.get")
        self.assertNotEqual(code, 0)
        self.assertEqual(err["error"]["code"], "LOCATION_UNAVAILABLE", err)
        self.assertIn("the Python provider has no fix", err["error"]["message"])
        self.assertEqual(node.status().phase, pf.NodePhase.ONLINE)

        node.stop()
        self.assertIsNone(events.wait(pf.NodeEvent.STOPPED).error)
        with self.assertRaises(pf.PerchError.NotRunning):
            node.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
