// Shared bits: error boxes with the host's code, "not available" notes, the connection line.

import type { ComponentChildren } from 'preact';
import type { ErrorShape } from '../protocol/frames';
import { type ConnState, describeState } from '../protocol/state';
import { explainError } from '../state/chat';

/** Backticked words in our own help texts become <code>. Never used on host text. */
export function Help({ text }: { text: string }) {
  const parts = text.split('`');
  return <>{parts.map((p, i) => (i % 2 === 1 ? <code key={i}>{p}</code> : p))}</>;
}

export function isUnknownMethod(e: ErrorShape | null | undefined): boolean {
  return !!e && e.code === 'UNKNOWN_METHOD';
}

export function ErrorBox({ error, children }: { error: ErrorShape; children?: ComponentChildren }) {
  const help = explainError(error.code);
  return (
    <div class="error-box" role="alert">
      <p>
        <code class="code">{error.code}</code> {error.message}
      </p>
      {help && (
        <p class="hint">
          <Help text={help} />
        </p>
      )}
      {children}
    </div>
  );
}

export function NotAvailable({ what }: { what: string }) {
  return (
    <div class="note" role="note">
      <p>
        <strong>{what} is not available on this host.</strong>{' '}
        {'The host answered that it does not know this request ('}
        <code>UNKNOWN_METHOD</code>
        {'); it runs an older Perch than this page. Update Perch on the host to use it.'}
      </p>
    </div>
  );
}

export function ConnectionLine({ state, onRetry }: { state: ConnState; onRetry: () => void }) {
  return (
    <div class={`conn conn-${state.kind}`} role="status" aria-live="polite">
      <span class="dot" aria-hidden="true" />
      <span class="conn-text">{describeState(state)}</span>
      {(state.kind === 'retrying' || (state.kind === 'closed' && state.error)) && (
        <button type="button" class="link" onClick={onRetry}>
          Retry now
        </button>
      )}
    </div>
  );
}

/** Shown by pages while there is no connection yet. */
export function Waiting({ state }: { state: ConnState }) {
  return (
    <p class="muted" aria-busy="true">
      {state.kind === 'retrying' ? 'Waiting for the host to come back…' : 'Connecting to the host…'}
    </p>
  );
}
