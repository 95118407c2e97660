"""perch-ffi through its generated Python bindings, against a real `perch serve`: the flows a
phone app goes through (issue 11, items 4 and 6): pairing by setup code and by approval (the
app sees the host's verification code), `location.get` answered by a Python provider,
`system.notify` shown by a Python presenter and its reply back on the host, a host restart
survived without pairing again, and a foreground-only read refused in the background.

Run by scripts/ffi-python-test.sh, which builds the library, generates `perch_ffi.py` in
library mode and puts both on PYTHONPATH. Standard library only. Environment:
  PERCH_BIN        the perch binary (required)
  PERCH_FFI_PYDIR  where perch_ffi.py and the library are (added to sys.path)
"""

import asyncio
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
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [PERCH, "serve", "--data-dir", self.dir.name, "--bind", f"127.0.0.1:{self.port}"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        until("the host answers", lambda: self.cli("status")[0] == 0)

    def restart(self):
        """Stops the host hard (as a crash or a reboot would) and starts it again on the same
        port and data dir."""
        self.proc.kill()
        self.proc.wait()
        self.start()

    def url(self):
        return f"ws://127.0.0.1:{self.port}"

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


def run(coroutine):
    """Awaits one of the library's async calls (they are coroutines in Python), on an asyncio
    loop of this thread, as an app's event loop would."""
    return asyncio.run(coroutine)


def until(what, check):
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.15)
    raise AssertionError(f"timed out waiting for {what}")


class Here(pf.LocationProvider):
    """A Python location provider: a fixed fix, or a failure when `fail` is set."""

    def current_location(self, request):
        self.requests.append(request)
        if self.fail:
            raise pf.ProviderError.Unavailable(reason="the Python provider has no fix")
        return pf.Location(
            lat=-33.8688, lon=151.2093, accuracy_meters=8.0, altitude_meters=None,
            speed_mps=None, heading_deg=None, timestamp_ms=None,
            source=pf.LocationSource.WIFI,
        )

    def __init__(self):
        self.fail = False
        self.requests = []
        self.access = pf.LocationAccess.ALWAYS

    def permission(self):
        return pf.LocationPermission(access=self.access, precise=True)


class Tray(pf.NotificationPresenter):
    """A Python notification presenter: keeps what it was asked to show."""

    def __init__(self):
        self.shown = []

    def post(self, notification):
        self.shown.append(notification)
        return None


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
            run(node.pair_with_setup_code(setup_code[:-3]))
        run(node.pair_with_setup_code(setup_code))
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

    def new_node(self, name, **providers):
        node = pf.PerchNode(pf.NodeSettings(
            display_name=name, data_dir=self.node_dir.name,
            platform="android", device_family="Pixel", model_identifier=None, locale=None,
        ))
        events = Events()
        node.set_listener(events)
        if "location" in providers:
            node.set_location_provider(providers["location"])
        if "tray" in providers:
            node.set_notification_presenter(providers["tray"])
        return node, events

    def paired(self, name, **providers):
        code, minted = self.host.cli("devices", "setup-code")
        self.assertEqual(code, 0, minted)
        node, events = self.new_node(name, **providers)
        run(node.pair_with_setup_code(minted["setupCode"]))
        events.wait(pf.NodeEvent.ONLINE)
        self.addCleanup(lambda: node.stop() if node.status().running else None)
        return node, events

    def test_pairs_by_approval_with_the_hosts_verification_code(self):
        node, events = self.new_node("Approval Phone")
        node.connect_to(self.host.url())
        waiting = events.wait(pf.NodeEvent.WAITING_FOR_APPROVAL)
        self.assertRegex(waiting.verification_code or "", r"^[0-9]{3} [0-9]{3}$")
        code, listed = self.host.cli("devices", "list")
        self.assertEqual(code, 0, listed)
        pending = [p for p in listed["pending"] if p["requestId"] == waiting.request_id]
        self.assertEqual(len(pending), 1, listed)
        self.assertEqual(pending[0]["verificationCode"], waiting.verification_code)
        code, out = self.host.cli("devices", "approve", waiting.request_id)
        self.assertEqual(code, 0, out)
        events.wait(pf.NodeEvent.ONLINE)
        self.assertEqual(node.status().phase, pf.NodePhase.ONLINE)
        node.stop()

    def test_a_notification_and_its_reply(self):
        tray = Tray()
        node, events = self.paired("Reply Phone", tray=tray)
        params = json.dumps({"title": "Dinner at 7?", "body": "Tap or reply",
                             "actions": [{"id": "yes", "title": "Yes"}]})
        code, out = self.host.cli("nodes", "invoke", "Reply Phone", "system.notify",
                                  "--params", params)
        self.assertEqual(code, 0, out)
        self.assertEqual(len(tray.shown), 1)
        shown = tray.shown[0]
        self.assertEqual((shown.title, [a.id for a in shown.actions]), ("Dinner at 7?", ["yes"]))
        self.assertEqual(out["notificationId"], shown.id)

        run(node.reply_to_notification(pf.NotificationReply(
            notification_id=shown.id, action_id=None, text="Make it 7:30")))
        run(node.reply_to_notification(pf.NotificationReply(
            notification_id=shown.id, action_id="yes", text=None)))
        with self.assertRaises(pf.PerchError.UnknownNotification):
            run(node.reply_to_notification(pf.NotificationReply(
                notification_id="n-gone", action_id=None, text="hi")))
        with self.assertRaises(pf.PerchError.InvalidReply):
            run(node.reply_to_notification(pf.NotificationReply(
                notification_id=shown.id, action_id="maybe", text=None)))
        code, listed = self.host.cli("devices", "replies")
        self.assertEqual(code, 0, listed)
        replies = listed["replies"]
        self.assertEqual([r.get("actionId") for r in replies], ["yes", None])
        self.assertEqual(replies[1]["text"], "Make it 7:30")
        self.assertEqual(replies[1]["title"], "Dinner at 7?")
        self.assertEqual(node.status().phase, pf.NodePhase.ONLINE)

    def test_survives_a_host_restart_without_pairing_again(self):
        here = Here()
        node, events = self.paired("Restart Phone", location=here)
        self.host.restart()
        events.wait(pf.NodeEvent.OFFLINE)
        events.wait(pf.NodeEvent.ONLINE)
        code, fix = self.host.cli("nodes", "invoke", "Restart Phone", "location.get")
        self.assertEqual(code, 0, fix)
        self.assertEqual(fix["lat"], -33.8688)
        code, listed = self.host.cli("devices", "list")
        self.assertEqual(listed.get("pending", []), [], "no new pairing request")

    def test_a_foreground_read_is_refused_in_the_background(self):
        here = Here()
        here.access = pf.LocationAccess.WHILE_USING
        node, events = self.paired("Background Phone", location=here)
        node.set_app_state(pf.AppState.BACKGROUND)
        code, err = self.host.cli("nodes", "invoke", "Background Phone", "location.get")
        self.assertNotEqual(code, 0)
        self.assertEqual(err["error"]["code"], "NODE_BACKGROUND_UNAVAILABLE", err)
        node.set_app_state(pf.AppState.FOREGROUND)
        code, fix = self.host.cli("nodes", "invoke", "Background Phone", "location.get")
        self.assertEqual(code, 0, fix)
        self.assertEqual(node.status().phase, pf.NodePhase.ONLINE)

    def test_location_changes_follow_the_sharing_choice(self):
        node, events = self.paired("Move Phone")
        fix = lambda lat, lon: pf.Location(
            lat=lat, lon=lon, accuracy_meters=10.0, altitude_meters=None, speed_mps=None,
            heading_deg=None, timestamp_ms=None, source=pf.LocationSource.GPS)
        self.assertEqual(run(node.report_location(fix(-33.8688, 151.2093))),
                         pf.LocationReport.SHARING_OFF())
        code, out = self.host.cli("location", "share", "Move Phone", "--precision", "city")
        self.assertEqual(code, 0, out)
        self.assertEqual(run(node.watched_places()), [])
        sent = run(node.report_location(fix(-33.8688, 151.2093)))
        self.assertIsInstance(sent, pf.LocationReport.SENT)
        self.assertIsInstance(sent.reason, pf.LocationChangeReason.FIRST)
        self.assertEqual(run(node.report_location(fix(-33.8689, 151.2093))),
                         pf.LocationReport.NOT_SIGNIFICANT())
        with self.assertRaises(pf.PerchError.InvalidLocation):
            run(node.report_location(fix(123.0, 151.2)))
        code, listed = self.host.cli("location", "changes")
        self.assertEqual(code, 0, listed)
        self.assertEqual(len(listed["changes"]), 1)
        self.assertNotIn("lat", listed["changes"][0], "no coordinates at city")


if __name__ == "__main__":
    unittest.main(verbosity=2)
