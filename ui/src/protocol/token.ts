// Where the operator token comes from: the URL fragment `#token=...` (what `perch ui` and the
// desktop app open), else this tab's sessionStorage, else the sign-in form. A token in the
// fragment is moved to sessionStorage and removed from the address bar at once, so it does not
// stay in history, bookmarks or screenshots. Nothing here logs the token.

export const TOKEN_KEY = 'perch.operatorToken';

export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** Splits `#token=...` out of a fragment; `rest` is the fragment without it (with its `#`, or ''). */
export function takeTokenFromHash(hash: string): { token: string | null; rest: string } {
  const body = hash.startsWith('#') ? hash.slice(1) : hash;
  if (!body) return { token: null, rest: '' };
  const params = new URLSearchParams(body);
  const token = params.get('token');
  if (token === null) return { token: null, rest: hash };
  params.delete('token');
  const left = params.toString();
  return { token: token.trim() || null, rest: left ? `#${left}` : '' };
}

/** Whether a pasted string looks like an operator token (the host wants >= 16 chars, no whitespace). */
export function checkTokenShape(raw: string): string | null {
  const t = raw.trim();
  if (!t) return 'Paste the operator token.';
  if (/\s/.test(t)) return 'The token has no spaces or line breaks; paste just the token.';
  if (t.length < 16) return 'That is too short to be an operator token.';
  return null;
}

/**
 * Reads the token at start-up. When it came from the fragment, `cleanUrl` is the address to put
 * in the bar instead (path and query kept, the token removed).
 */
export function loadToken(
  loc: { pathname: string; search: string; hash: string },
  storage: StorageLike | null,
): { token: string | null; cleanUrl: string | null } {
  const { token, rest } = takeTokenFromHash(loc.hash);
  if (token) {
    try {
      storage?.setItem(TOKEN_KEY, token);
    } catch {
      // storage can be disabled; the token then lives only in memory for this page
    }
    return { token, cleanUrl: `${loc.pathname}${loc.search}${rest}` };
  }
  let stored: string | null = null;
  try {
    stored = storage?.getItem(TOKEN_KEY) ?? null;
  } catch {
    stored = null;
  }
  return { token: stored, cleanUrl: loc.hash !== rest ? `${loc.pathname}${loc.search}${rest}` : null };
}

export function saveToken(storage: StorageLike | null, token: string): void {
  try {
    storage?.setItem(TOKEN_KEY, token);
  } catch {
    // see loadToken
  }
}

export function forgetToken(storage: StorageLike | null): void {
  try {
    storage?.removeItem(TOKEN_KEY);
  } catch {
    // nothing stored
  }
}
