import { useEffect, useReducer, useRef, useState } from 'preact/hooks';
import type { ErrorShape } from '../protocol/frames';
import { toErrorShape } from '../protocol/client';
import {
  type DeviceRow,
  type PairedInfo,
  type PendingInfo,
  clientRows,
  describePresence,
  deviceRows,
  devicesReducer,
  formatAgo,
  initialDevices,
  PENDING_SHOWN,
  pendingView,
  revokedRows,
} from '../state/devices';
import { accessReducer, describeOutcome, describeRequester, initialAccess } from '../state/access';
import { ErrorBox, NotAvailable, Waiting, isUnknownMethod } from '../app/components';
import { useConn, useEvent, useHello, useNow, useTitle } from '../app/hooks';

export function DevicesPage() {
  useTitle('Devices');
  const { client, state: conn } = useConn();
  const hello = useHello();
  const [state, dispatch] = useReducer(devicesReducer, initialDevices);
  const [loadError, setLoadError] = useState<ErrorShape | null>(null);
  const [showAllPending, setShowAllPending] = useState(false);
  const now = useNow(15_000);
  const loadingNodes = useRef(false);

  useEvent('*', (payload, frame) => {
    dispatch({ type: 'event', event: frame.event, payload, presenceVersion: frame.stateVersion?.presence });
  });

  // Every (re)connection: start from the snapshot and the lists.
  useEffect(() => {
    if (!hello) return;
    dispatch({
      type: 'presence-snapshot',
      entries: hello.snapshot.presence,
      version: hello.snapshot.stateVersion.presence,
      selfKey: `conn:${hello.server.connId}`,
    });
    setLoadError(null);
    Promise.all([client.call('node.list'), client.call('device.pair.list')]).then(
      ([nodes, pairs]) => {
        dispatch({ type: 'nodes', payload: nodes });
        dispatch({ type: 'pairs', payload: pairs });
      },
      (e: unknown) => setLoadError(toErrorShape(e)),
    );
  }, [hello, client]);

  // A node came online or was approved: node.list knows its commands.
  useEffect(() => {
    if (!hello || !state.nodesStale || loadingNodes.current) return;
    loadingNodes.current = true;
    client
      .call('node.list')
      .then((nodes) => dispatch({ type: 'nodes', payload: nodes }))
      .catch(() => {})
      .finally(() => {
        loadingNodes.current = false;
      });
  }, [hello, client, state.nodesStale]);

  // Presence skipped a version: fetch it whole.
  useEffect(() => {
    if (!hello || !state.presenceGap) return;
    client
      .call('system-presence')
      .then((p) => {
        const o = (p ?? {}) as { entries?: unknown; stateVersion?: { presence?: number } };
        dispatch({ type: 'presence-snapshot', entries: o.entries, version: o.stateVersion?.presence ?? state.presenceVersion });
      })
      .catch(() => {});
  }, [hello, client, state.presenceGap]);

  if (!hello && !state.loaded.pairs) {
    return (
      <section>
        <h1>Devices</h1>
        <Waiting state={conn} />
      </section>
    );
  }

  const pending = pendingView(state, showAllPending);
  const pendingCount = pending.shown.length + pending.hidden;
  const devices = deviceRows(state);
  const revoked = revokedRows(state);
  const clients = clientRows(state);

  return (
    <>
      <h1>Devices</h1>
      {loadError && <ErrorBox error={loadError} />}
      <section aria-labelledby="pending-title" class="card">
        <h2 id="pending-title">
          Pairing requests{pendingCount > 0 && <span data-testid="pending-count"> ({pendingCount})</span>}
        </h2>
        {pendingCount === 0 ? (
          <p class="muted">
            No device is waiting. Run <code>perch node run</code> on a device to ask to pair, or give it a setup code
            from <code>perch devices setup-code</code>.
          </p>
        ) : (
          <>
            <ul class="rows" data-testid="pending-list">
              {pending.shown.map((p) => (
                <PendingItem key={p.requestId} req={p} now={now} />
              ))}
            </ul>
            {pending.hidden > 0 && (
              <button type="button" class="link" data-testid="pending-show-all" onClick={() => setShowAllPending(true)}>
                Show {pending.hidden} more {pending.hidden === 1 ? 'request' : 'requests'}
              </button>
            )}
            {showAllPending && pendingCount > PENDING_SHOWN && (
              <button type="button" class="link" onClick={() => setShowAllPending(false)}>
                Show only the newest {PENDING_SHOWN}
              </button>
            )}
          </>
        )}
      </section>

      <section aria-labelledby="devices-title" class="card">
        <h2 id="devices-title">Paired devices</h2>
        {devices.length === 0 ? (
          <p class="muted">No device is paired yet.</p>
        ) : (
          <ul class="rows" data-testid="device-list">
            {devices.map((d) => (
              <DeviceItem key={d.deviceId} row={d} now={now} onRevoked={() => dispatch({ type: 'revoked', deviceId: d.deviceId })} />
            ))}
          </ul>
        )}
      </section>

      {revoked.length > 0 && (
        <section aria-labelledby="revoked-title" class="card">
          <h2 id="revoked-title">Revoked</h2>
          <p class="muted">These devices may not connect. Forget one to let it ask to pair again.</p>
          <ul class="rows">
            {revoked.map((r) => (
              <RevokedItem key={r.deviceId} rec={r} onRemoved={() => dispatch({ type: 'removed', deviceId: r.deviceId })} />
            ))}
          </ul>
        </section>
      )}

      {clients.length > 0 && (
        <section aria-labelledby="clients-title" class="card">
          <h2 id="clients-title">Connected apps</h2>
          <ul class="rows compact">
            {clients.map((c) => (
              <li key={c.key} class="row">
                <div class="row-main">
                  <strong>{c.displayName}</strong> {c.self && <span class="badge">this window</span>}
                  <div class="meta">
                    {c.mode} on {c.platform}
                    {c.remoteAddr ? ` · ${c.remoteAddr}` : ''} · seen {formatAgo(c.lastSeenMs, now)}
                  </div>
                </div>
              </li>
            ))}
          </ul>
        </section>
      )}
    </>
  );
}

function PendingItem({ req, now }: { req: PendingInfo; now: number }) {
  const { client } = useConn();
  const [busy, setBusy] = useState<'approve' | 'reject' | null>(null);
  const [error, setError] = useState<ErrorShape | null>(null);
  const decide = (kind: 'approve' | 'reject') => {
    setBusy(kind);
    setError(null);
    // The row goes away on device.pair.resolved, which the host sends before this answer.
    client.call(`device.pair.${kind}`, { requestId: req.requestId }).then(
      () => setBusy(null),
      (e: unknown) => {
        setBusy(null);
        setError(toErrorShape(e));
      },
    );
  };
  const titleId = `req-${req.requestId}`;
  return (
    <li class="row pending" aria-labelledby={titleId} data-request-id={req.requestId}>
      <div class="row-main">
        <strong id={titleId}>{req.displayName}</strong> <span class="platform">{req.platform}</span>
        <div class="meta">
          asked {formatAgo(req.requestedAtMs, now)}
          {req.remoteAddr ? ` from ${req.remoteAddr}` : ''} · request <code>{req.requestId}</code>
        </div>
        {req.verificationCode ? (
          <p class="verify">
            Verification code <span class="vcode" data-testid="verification-code">{req.verificationCode}</span>
            <span class="hint"> Approve only if the device shows the same code.</span>
          </p>
        ) : (
          <p class="hint">This host sends no verification code; check the device name and address.</p>
        )}
        {error && <ErrorBox error={error} />}
      </div>
      <div class="row-actions">
        <button type="button" class="primary" disabled={busy !== null} onClick={() => decide('approve')} aria-describedby={titleId}>
          {busy === 'approve' ? 'Approving…' : 'Approve'}
        </button>
        <button type="button" class="danger" disabled={busy !== null} onClick={() => decide('reject')} aria-describedby={titleId}>
          {busy === 'reject' ? 'Rejecting…' : 'Reject'}
        </button>
      </div>
    </li>
  );
}

function DeviceItem({ row, now, onRevoked }: { row: DeviceRow; now: number; onRevoked: () => void }) {
  const { client } = useConn();
  const [confirming, setConfirming] = useState(false);
  const [showAccess, setShowAccess] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ErrorShape | null>(null);
  const cancelRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (confirming) cancelRef.current?.focus(); // keyboard users land on the safe choice
  }, [confirming]);
  const revoke = () => {
    setBusy(true);
    setError(null);
    client.call('device.pair.revoke', { deviceId: row.deviceId }).then(
      () => {
        setBusy(false);
        setConfirming(false);
        onRevoked();
      },
      (e: unknown) => {
        setBusy(false);
        setError(toErrorShape(e));
      },
    );
  };
  const titleId = `dev-${row.deviceId}`;
  return (
    <li class="row" data-device-id={row.deviceId} data-online={row.online ? 'true' : 'false'} aria-labelledby={titleId}>
      <div class="row-main">
        <span class={`status-dot ${row.online ? 'on' : 'off'}`} aria-hidden="true" />
        <strong id={titleId}>{row.displayName}</strong> <span class="platform">{row.platform}</span>{' '}
        <span class={`badge ${row.online ? 'ok' : ''}`} data-testid="device-status">
          {row.online ? 'online' : 'offline'}
        </span>
        <div class="meta">
          {describePresence(row, now)} · id <code title={row.deviceId}>{row.deviceId.slice(0, 10)}</code>
        </div>
        {row.commands.length > 0 && (
          <ul class="chips" aria-label="Commands">
            {row.commands.map((c) => (
              <li key={c} class="chip">
                {c}
              </li>
            ))}
          </ul>
        )}
        {error && <ErrorBox error={error} />}
        {showAccess && <AccessView row={row} now={now} />}
        {confirming && (
          <div class="confirm" role="group" aria-label={`Revoke ${row.displayName}?`}>
            <p>
              Revoke <strong>{row.displayName}</strong>? It is disconnected now and may not connect again until you
              forget it.
            </p>
            <button type="button" class="danger" disabled={busy} onClick={revoke}>
              {busy ? 'Revoking…' : 'Yes, revoke'}
            </button>{' '}
            <button type="button" ref={cancelRef} disabled={busy} onClick={() => setConfirming(false)}>
              Cancel
            </button>
          </div>
        )}
      </div>
      {!confirming && (
        <div class="row-actions">
          <button type="button" aria-expanded={showAccess} onClick={() => setShowAccess(!showAccess)} aria-describedby={titleId}>
            Access
          </button>
          <button type="button" onClick={() => setConfirming(true)} aria-describedby={titleId}>
            Revoke…
          </button>
        </div>
      )}
    </li>
  );
}

/** Rows per page of a device's access record. */
const ACCESS_PAGE = 20;

/** What was run on a device: who asked (an assistant turn or an operator app), the command,
 * when and what came of it, newest first, with older pages on request. Never params or results:
 * the host does not keep them. */
function AccessView({ row, now }: { row: DeviceRow; now: number }) {
  const { client } = useConn();
  const [state, dispatch] = useReducer(accessReducer, initialAccess);
  const [error, setError] = useState<ErrorShape | null>(null);
  const [busy, setBusy] = useState(false);
  const load = (before?: string) => {
    setBusy(true);
    setError(null);
    client.call('device.access.list', { nodeId: row.deviceId, limit: ACCESS_PAGE, ...(before ? { before } : {}) }).then(
      (payload) => {
        setBusy(false);
        dispatch({ type: before ? 'older' : 'first', payload });
      },
      (e: unknown) => {
        setBusy(false);
        setError(toErrorShape(e));
      },
    );
  };
  useEffect(() => load(), [client, row.deviceId]);
  if (isUnknownMethod(error)) return <NotAvailable what="The access record" />;
  const label = `Access record of ${row.displayName}`;
  return (
    <div class="access" role="region" aria-label={label}>
      <h3>What was run on {row.displayName}</h3>
      {error && <ErrorBox error={error} />}
      {!state.loaded && !error && <p class="muted">Loading…</p>}
      {state.loaded && state.entries.length === 0 && (
        <p class="muted">Nothing was run on this device yet (records are kept 30 days).</p>
      )}
      {state.entries.length > 0 && (
        <table class="access-table" data-testid="access-table">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">Command</th>
              <th scope="col">Outcome</th>
            </tr>
          </thead>
          <tbody>
            {state.entries.map((e, i) => (
              <tr key={`${e.atMs}-${i}`} data-outcome={e.outcome} data-requester={e.requester.kind}>
                <td title={new Date(e.atMs).toISOString()}>{formatAgo(e.atMs, now)}</td>
                <td>{describeRequester(e.requester)}</td>
                <td>
                  <code>{e.command}</code>
                </td>
                <td class={`outcome-${e.outcome}`}>
                  {describeOutcome(e)} <span class="muted">· {e.durationMs} ms</span>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {state.nextBefore && (
        <button type="button" disabled={busy} onClick={() => load(state.nextBefore)}>
          {busy ? 'Loading…' : 'Older'}
        </button>
      )}
    </div>
  );
}

function RevokedItem({ rec, onRemoved }: { rec: PairedInfo; onRemoved: () => void }) {
  const { client } = useConn();
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<ErrorShape | null>(null);
  const remove = () =>
    client.call('device.pair.remove', { deviceId: rec.deviceId }).then(onRemoved, (e: unknown) => setError(toErrorShape(e)));
  return (
    <li class="row">
      <div class="row-main">
        <strong>{rec.displayName}</strong> <span class="platform">{rec.platform}</span>
        {error && <ErrorBox error={error} />}
      </div>
      <div class="row-actions">
        {confirming ? (
          <>
            <button type="button" class="danger" onClick={remove}>
              Yes, forget it
            </button>
            <button type="button" onClick={() => setConfirming(false)}>
              Cancel
            </button>
          </>
        ) : (
          <button type="button" onClick={() => setConfirming(true)}>
            Forget…
          </button>
        )}
      </div>
    </li>
  );
}
