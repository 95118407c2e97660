// The shell: top nav, connection line, sign-in when there is no (valid) token, and the page.

import { useEffect, useMemo, useState } from 'preact/hooks';
import { PerchClient, detectPlatform, socketUrl } from '../protocol/client';
import type { ConnState } from '../protocol/state';
import { forgetToken, saveToken } from '../protocol/token';
import { ConnectionLine } from './components';
import { ConnContext } from './hooks';
import { NAV, type Route, pathFor, routeFromPath } from './router';
import { SignIn } from '../pages/SignIn';
import { DevicesPage } from '../pages/Devices';
import { ChatPage } from '../pages/Chat';
import { SettingsPage } from '../pages/Settings';

function storage(): Storage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

function makeClient(token: string): PerchClient {
  return new PerchClient({
    url: socketUrl(window.location),
    token,
    platform: detectPlatform(navigator as Navigator & { userAgentData?: { platform?: string } }),
    locale: navigator.language,
  });
}

export function App({ initialToken }: { initialToken: string | null }) {
  const [token, setToken] = useState<string | null>(initialToken);
  const client = useMemo(() => (token ? makeClient(token) : null), [token]);
  const [state, setState] = useState<ConnState>({ kind: 'closed' });
  const [route, setRoute] = useState<Route>(() => routeFromPath(window.location.pathname));

  useEffect(() => {
    if (!client) return;
    setState(client.state);
    const off = client.onState(setState);
    client.start();
    return () => {
      off();
      client.stop();
    };
  }, [client]);

  useEffect(() => {
    const onPop = () => setRoute(routeFromPath(window.location.pathname));
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);

  const go = (r: Exclude<Route, 'notfound'>) => (e: MouseEvent) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    if (window.location.pathname !== pathFor(r)) window.history.pushState(null, '', pathFor(r));
    setRoute(r);
    // Screen readers and keyboards start at the new page, not at the link they used.
    setTimeout(() => document.getElementById('main')?.focus({ preventScroll: true }), 0);
  };

  const signIn = (t: string) => {
    saveToken(storage(), t);
    if (client && t === token) client.setToken(t);
    else setToken(t);
  };

  const signOut = () => {
    forgetToken(storage());
    setToken(null);
    setState({ kind: 'closed' });
  };

  const needsSignIn = !client || state.kind === 'unauthorized';
  const hostName = state.kind === 'connected' ? state.hello.server.name : '';

  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <div class="brand">
          <span class="logo" aria-hidden="true">
            ◆
          </span>{' '}
          Perch{hostName && <span class="host-name"> · {hostName}</span>}
        </div>
        <nav aria-label="Pages">
          <ul>
            {NAV.map((n) => (
              <li key={n.route}>
                <a href={pathFor(n.route)} aria-current={route === n.route ? 'page' : undefined} onClick={go(n.route)}>
                  {n.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="top-right">
          {client && state.kind !== 'unauthorized' && <ConnectionLine state={state} onRetry={() => client.start()} />}
          {token && (
            <button type="button" class="link" onClick={signOut}>
              Sign out
            </button>
          )}
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {needsSignIn ? (
          <SignIn error={state.kind === 'unauthorized' ? state.error : null} onSubmit={signIn} />
        ) : (
          <ConnContext.Provider value={{ client, state }}>
            {route === 'devices' && <DevicesPage />}
            {route === 'chat' && <ChatPage />}
            {route === 'settings' && <SettingsPage />}
            {route === 'notfound' && (
              <section>
                <h1>Not found</h1>
                <p>
                  There is no page here. Go to <a href={pathFor('devices')} onClick={go('devices')}>Devices</a>.
                </p>
              </section>
            )}
          </ConnContext.Provider>
        )}
      </main>
    </>
  );
}
