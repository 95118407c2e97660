// The bundled shell page: shows the host's state (and why it is down), fixes the settings
// that keep it from starting, and retries. Every value from the host is set as text, never
// as HTML.
"use strict";

const invoke = (cmd, args) => window.__TAURI__.core.invoke(cmd, args);
const $ = (id) => document.getElementById(id);

function say(text, isError) {
  const m = $("message");
  m.textContent = text || "";
  m.className = isError ? "error" : "";
}

function errorText(e) {
  if (e && typeof e === "object" && "message" in e) return e.message;
  return String(e);
}

function describeHost(host) {
  switch (host.state) {
    case "running":
      return `${host.addr} (${host.mode === "embedded" ? "running inside Perch" : "running separately"})`;
    case "error":
      return "not running";
    case "starting":
      return "starting…";
    default:
      return host.state;
  }
}

function describeNode(node) {
  switch (node.state) {
    case "running":
      return node.connected ? "connected as a node" : node.detail;
    case "enrolling":
      return "pairing…";
    case "revoked":
      return "removed from this host (revoked)";
    case "failed":
      return `not a node: ${node.reason}`;
    default:
      return "off";
  }
}

function renderPending(pending) {
  const list = $("pending");
  list.replaceChildren();
  $("pending-section").hidden = pending.length === 0;
  for (const p of pending) {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = `${p.displayName} (${p.platform}) · code ${p.verificationCode}`;
    const approve = document.createElement("button");
    approve.className = "primary";
    approve.textContent = "Approve";
    approve.onclick = () => decide("approve_pairing", p.requestId, `${p.displayName} approved.`);
    const reject = document.createElement("button");
    reject.textContent = "Reject";
    reject.onclick = () => decide("reject_pairing", p.requestId, `${p.displayName} rejected.`);
    li.append(name, approve, reject);
    list.append(li);
  }
}

async function decide(cmd, requestId, done) {
  try {
    await invoke(cmd, { requestId });
    say(done);
  } catch (e) {
    say(errorText(e), true);
  }
  refresh();
}

// Set while a Retry is under way, so its "Trying again…" goes once the host is back.
let retrying = false;

function render(view) {
  const status = $("status");
  status.textContent = view.status;
  status.className = "status" + (view.tray.kind === "error" ? " error" : "");
  const hint = view.host.state === "error" ? view.host.hint : null;
  $("hint").hidden = !hint;
  $("hint").textContent = hint || "";
  $("host").textContent = describeHost(view.host);
  $("connection").textContent = view.connection;
  $("this-computer").textContent = describeNode(view.thisComputer);
  $("data-dir").textContent = view.dataDir;
  const running = view.host.state === "running";
  for (const b of document.querySelectorAll("[data-open]")) b.hidden = !running;
  $("retry").hidden = view.tray.kind !== "error";
  if (retrying && view.tray.kind !== "error") {
    retrying = false;
    say("");
  }
  const override = $("bind-override");
  override.hidden = !view.bindOverride;
  override.textContent = view.bindOverride
    ? `Perch was started with --bind ${view.bindOverride}, which overrides this address until it is started without it.`
    : "";
  renderPending(view.pending);
}

async function refresh() {
  try {
    render(await invoke("app_state"));
  } catch (e) {
    say(errorText(e), true);
  }
}

async function loadSettings() {
  try {
    const s = await invoke("load_settings");
    $("bind").value = s.bind;
    $("mdns").value = s.mdns;
    $("reset-row").hidden = true;
    if (s.problems && s.problems.length) {
      say(s.problems.map((p) => p.message).join(" "), true);
    }
  } catch (e) {
    // A corrupt perch.toml: offer to move it aside.
    $("reset-row").hidden = !/not valid TOML/.test(errorText(e));
    say(errorText(e), true);
  }
}

$("settings").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const args = { bind: $("bind").value.trim() || null, mdns: $("mdns").value };
  if (!$("reset-row").hidden && $("reset").checked) args.resetCorrupt = true;
  try {
    const s = await invoke("save_settings", args);
    say(s.restartRequired ? "Saved. The host uses the new settings after a restart." : "Saved.");
    await loadSettings();
  } catch (e) {
    say(errorText(e), true);
  }
  refresh();
});

$("retry").addEventListener("click", async () => {
  say("Trying again…");
  retrying = true;
  try {
    render(await invoke("retry_host"));
  } catch (e) {
    say(errorText(e), true);
  }
});

for (const b of document.querySelectorAll("[data-open]")) {
  b.addEventListener("click", () => invoke("open_window", { page: b.dataset.open }).catch((e) => say(errorText(e), true)));
}

refresh();
loadSettings();
setInterval(refresh, 1000);
