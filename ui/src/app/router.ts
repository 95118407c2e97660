// Path routes under the base the gateway serves the UI at.

export const BASE = '/ui/';

export type Route = 'devices' | 'chat' | 'settings' | 'notfound';

export const NAV: { route: Exclude<Route, 'notfound'>; label: string }[] = [
  { route: 'devices', label: 'Devices' },
  { route: 'chat', label: 'Chat' },
  { route: 'settings', label: 'Settings' },
];

export function routeFromPath(pathname: string): Route {
  const base = BASE.replace(/\/$/, '');
  if (pathname !== base && !pathname.startsWith(BASE)) return 'notfound';
  const rest = pathname.slice(BASE.length).replace(/\/+$/, '');
  switch (rest) {
    case '':
    case 'devices':
      return 'devices';
    case 'chat':
      return 'chat';
    case 'settings':
      return 'settings';
    default:
      return 'notfound';
  }
}

export function pathFor(route: Exclude<Route, 'notfound'>): string {
  return `${BASE}${route}`;
}
