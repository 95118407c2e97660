// Small hooks that connect pages to the client.

import { createContext } from 'preact';
import { useContext, useEffect, useRef, useState } from 'preact/hooks';
import type { EventFrame, HelloOk } from '../protocol/frames';
import type { PerchClient } from '../protocol/client';
import type { ConnState } from '../protocol/state';

export interface Conn {
  client: PerchClient;
  state: ConnState;
}

export const ConnContext = createContext<Conn | null>(null);

export function useConn(): Conn {
  const c = useContext(ConnContext);
  if (!c) throw new Error('useConn outside ConnContext');
  return c;
}

/** The current hello-ok, or null while not connected. A new object after every reconnect. */
export function useHello(): HelloOk | null {
  const { state } = useConn();
  return state.kind === 'connected' ? state.hello : null;
}

/** Subscribes to an event (or `*`) for the component's lifetime; the handler may change freely. */
export function useEvent(event: string, handler: (payload: unknown, frame: EventFrame) => void): void {
  const { client } = useConn();
  const ref = useRef(handler);
  ref.current = handler;
  useEffect(() => client.on(event, (p, f) => ref.current(p, f)), [client, event]);
}

/** The time, refreshed every `everyMs`, for "5 min ago" labels. */
export function useNow(everyMs = 30_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(t);
  }, [everyMs]);
  return now;
}

/** Sets document.title for the page. */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = `${title} · Perch`;
  }, [title]);
}
