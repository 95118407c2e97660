// A minimal OpenClaw-shaped gateway relay for the invoke bench: the least a Node `ws` gateway
// must do on the node.invoke path, so the bench can time Perch's host against it.
//
// - Every connection gets `connect.challenge` with a fresh nonce; its first request must be
//   `connect` (protocol 4).
// - An operator is admitted with the shared token (RELAY_TOKEN in the environment).
// - A node is admitted when its device proof holds: the nonce is this connection's, the device
//   id is the SHA-256 of the raw Ed25519 public key, and the signature verifies over the v3
//   payload (`v3|deviceId|clientId|clientMode|role|scopes|signedAt|token|nonce|platform|family`).
//   There is no pairing and nothing is persisted: a valid signature is enough.
// - `node.invoke` from an operator is forwarded to the node as a `node.invoke.request` event;
//   the node's `node.invoke.result` comes back as the operator's `res`. A call the node does
//   not answer in time fails with TIMEOUT.
//
// Usage: RELAY_TOKEN=... node relay.mjs [--port N]. It listens on 127.0.0.1 only and prints
// one JSON line, {"listening": PORT}, on stdout once it accepts connections.

import { createHash, createPublicKey, randomBytes, timingSafeEqual, verify } from "node:crypto";
import { WebSocketServer } from "ws";

const PROTOCOL = 4;
const MAX_PAYLOAD = 512 * 1024;
const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_TIMEOUT_MS = 10 * 60_000;
// DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it.
const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

const portArg = process.argv.indexOf("--port");
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 0;
const operatorToken = process.env.RELAY_TOKEN ?? "";
if (!operatorToken) {
  process.stderr.write("relay: set RELAY_TOKEN to the operator token\n");
  process.exit(2);
}
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write("relay: --port must be 0 to 65535\n");
  process.exit(2);
}

/** Connected nodes by device id: { ws, commands }. */
const nodes = new Map();
/** Forwarded invokes by invoke id: { operator, reqId, nodeId, command, timer }. */
const pending = new Map();

function send(ws, frame) {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(frame));
}

function ok(ws, id, payload) {
  send(ws, { type: "res", id, ok: true, payload });
}

function fail(ws, id, code, message, details) {
  const error = details === undefined ? { code, message } : { code, message, details };
  send(ws, { type: "res", id, ok: false, error });
}

/** Trimmed, with ASCII A-Z lower-cased only, as the v3 payload wants platform and family. */
function normalizeMeta(value) {
  if (typeof value !== "string") return "";
  return value.trim().replace(/[A-Z]/g, (c) => c.toLowerCase());
}

function sameSecret(a, b) {
  const x = Buffer.from(String(a));
  const y = Buffer.from(String(b));
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Checks a node's device proof against this connection's nonce; returns an error or null. */
function checkDevice(params, nonce) {
  const device = params.device;
  if (!device || typeof device !== "object") return "a node must send a device proof";
  const { id, publicKey, signature, signedAt } = device;
  if (typeof id !== "string" || typeof publicKey !== "string" || typeof signature !== "string") {
    return "device.id, device.publicKey and device.signature must be strings";
  }
  if (device.nonce !== nonce) return "device.nonce is not this connection's challenge";
  if (!Number.isSafeInteger(signedAt)) return "device.signedAt must be an integer";
  const raw = Buffer.from(publicKey, "base64url");
  if (raw.length !== 32) return "device.publicKey must be 32 bytes of base64url";
  if (createHash("sha256").update(raw).digest("hex") !== id) {
    return "device.id is not the SHA-256 of the public key";
  }
  const sig = Buffer.from(signature, "base64url");
  if (sig.length !== 64) return "device.signature must be 64 bytes of base64url";
  const client = params.client ?? {};
  const auth = params.auth ?? {};
  const scopes = Array.isArray(params.scopes) ? params.scopes : [];
  const payload = [
    "v3",
    id,
    client.id ?? "",
    client.mode ?? "",
    params.role,
    scopes.join(","),
    String(signedAt),
    auth.token ?? auth.deviceToken ?? "",
    nonce,
    normalizeMeta(client.platform),
    normalizeMeta(client.deviceFamily),
  ].join("|");
  let key;
  try {
    key = createPublicKey({
      key: Buffer.concat([ED25519_SPKI_PREFIX, raw]),
      format: "der",
      type: "spki",
    });
  } catch {
    return "device.publicKey is not an Ed25519 key";
  }
  if (!verify(null, Buffer.from(payload), key, sig)) return "device signature does not verify";
  return null;
}

function helloOk(role, connId) {
  const methods = role === "node" ? ["node.invoke.result"] : ["node.invoke"];
  const events = role === "node" ? ["node.invoke.request"] : [];
  return {
    type: "hello-ok",
    protocol: PROTOCOL,
    server: { version: "relay", connId, hostId: "relay", name: "relay" },
    features: { methods, events },
    snapshot: { uptimeMs: Math.round(process.uptime() * 1000), presence: [], stateVersion: { presence: 0, health: 0 } },
    auth: { role, scopes: [] },
    policy: { maxPayload: MAX_PAYLOAD, maxBufferedBytes: 4 * MAX_PAYLOAD, tickIntervalMs: 15_000 },
  };
}

function handleConnect(conn, frame) {
  const params = frame.params ?? {};
  if (!(params.minProtocol <= PROTOCOL && PROTOCOL <= params.maxProtocol)) {
    fail(conn.ws, frame.id, "INVALID_REQUEST", `protocol ${PROTOCOL} is not in the client's range`);
    return;
  }
  if (params.role === "operator") {
    if (!sameSecret(params.auth?.token ?? "", operatorToken)) {
      fail(conn.ws, frame.id, "UNAUTHORIZED", "bad operator token");
      return;
    }
    conn.role = "operator";
  } else if (params.role === "node") {
    const why = checkDevice(params, conn.nonce);
    if (why) {
      fail(conn.ws, frame.id, "UNAUTHORIZED", why);
      return;
    }
    conn.role = "node";
    conn.nodeId = params.device.id;
    const commands = Array.isArray(params.commands) ? params.commands.filter((c) => typeof c === "string") : [];
    const previous = nodes.get(conn.nodeId);
    if (previous) previous.ws.close(1000, "replaced by a newer connection");
    nodes.set(conn.nodeId, { ws: conn.ws, commands });
  } else {
    fail(conn.ws, frame.id, "INVALID_REQUEST", "role must be operator or node");
    return;
  }
  conn.nonce = null;
  ok(conn.ws, frame.id, helloOk(conn.role, conn.id));
}

function handleInvoke(conn, frame) {
  const p = frame.params ?? {};
  if (typeof p.nodeId !== "string" || typeof p.command !== "string" || typeof p.idempotencyKey !== "string") {
    fail(conn.ws, frame.id, "INVALID_REQUEST", "nodeId, command and idempotencyKey must be strings");
    return;
  }
  const node = nodes.get(p.nodeId);
  if (!node) {
    fail(conn.ws, frame.id, "NODE_NOT_CONNECTED", "node is not connected", { nodeId: p.nodeId });
    return;
  }
  if (!node.commands.includes(p.command)) {
    fail(conn.ws, frame.id, "COMMAND_NOT_ALLOWED", "node does not offer this command", { command: p.command });
    return;
  }
  const timeoutMs = Math.min(Number.isSafeInteger(p.timeoutMs) && p.timeoutMs > 0 ? p.timeoutMs : DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS);
  const id = randomBytes(12).toString("base64url");
  const timer = setTimeout(() => {
    if (pending.delete(id)) fail(conn.ws, frame.id, "TIMEOUT", `node did not answer ${p.command} within ${timeoutMs} ms`);
  }, timeoutMs);
  pending.set(id, { operator: conn.ws, reqId: frame.id, nodeId: p.nodeId, command: p.command, timer });
  const request = { id, nodeId: p.nodeId, command: p.command, timeoutMs, idempotencyKey: p.idempotencyKey };
  if (p.params !== undefined) request.paramsJSON = JSON.stringify(p.params);
  send(node.ws, { type: "event", event: "node.invoke.request", payload: request });
}

function handleResult(conn, frame) {
  const p = frame.params ?? {};
  const call = typeof p.id === "string" ? pending.get(p.id) : undefined;
  if (!call || call.nodeId !== conn.nodeId || p.nodeId !== conn.nodeId) {
    fail(conn.ws, frame.id, "INVALID_REQUEST", "unknown or already finished invoke id");
    return;
  }
  pending.delete(p.id);
  clearTimeout(call.timer);
  ok(conn.ws, frame.id, { ok: true });
  if (p.ok) {
    let payload = p.payload ?? null;
    if (p.payload === undefined && typeof p.payloadJSON === "string") {
      try {
        payload = JSON.parse(p.payloadJSON);
      } catch {
        fail(call.operator, call.reqId, "INVALID_REQUEST", "node returned malformed payloadJSON");
        return;
      }
    }
    ok(call.operator, call.reqId, { nodeId: call.nodeId, command: call.command, payload });
  } else {
    const error = p.error ?? { code: "UNAVAILABLE", message: "node reported a failure without details" };
    send(call.operator, { type: "res", id: call.reqId, ok: false, error });
  }
}

function onMessage(conn, data) {
  let frame;
  try {
    frame = JSON.parse(data.toString());
  } catch {
    conn.ws.close(1008, "malformed JSON");
    return;
  }
  if (frame?.type !== "req" || typeof frame.id !== "string" || typeof frame.method !== "string") {
    conn.ws.close(1008, "expected a request frame");
    return;
  }
  if (!conn.role) {
    if (frame.method !== "connect") {
      fail(conn.ws, frame.id, "INVALID_REQUEST", "the first request must be connect");
      return;
    }
    handleConnect(conn, frame);
  } else if (conn.role === "operator" && frame.method === "node.invoke") {
    handleInvoke(conn, frame);
  } else if (conn.role === "node" && frame.method === "node.invoke.result") {
    handleResult(conn, frame);
  } else {
    fail(conn.ws, frame.id, "INVALID_REQUEST", `unknown method: ${frame.method}`);
  }
}

const server = new WebSocketServer({ host: "127.0.0.1", port, maxPayload: MAX_PAYLOAD });
let nextConn = 1;

server.on("connection", (ws, req) => {
  req.socket.setNoDelay(true);
  const conn = { ws, id: `c${nextConn++}`, role: null, nodeId: null, nonce: randomBytes(16).toString("base64url") };
  ws.on("message", (data) => onMessage(conn, data));
  ws.on("close", () => {
    if (conn.nodeId && nodes.get(conn.nodeId)?.ws === ws) nodes.delete(conn.nodeId);
    for (const [id, call] of pending) {
      if (call.nodeId === conn.nodeId && conn.role === "node") {
        pending.delete(id);
        clearTimeout(call.timer);
        fail(call.operator, call.reqId, "NODE_NOT_CONNECTED", "node disconnected");
      }
    }
  });
  ws.on("error", () => ws.terminate());
  send(ws, { type: "event", event: "connect.challenge", payload: { nonce: conn.nonce, ts: Date.now() } });
});

server.on("listening", () => {
  process.stdout.write(`${JSON.stringify({ listening: server.address().port })}\n`);
});

server.on("error", (e) => {
  process.stderr.write(`relay: ${e.message}\n`);
  process.exit(1);
});

for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
