import { describe, expect, it } from 'vitest';
import { TOKEN_KEY, checkTokenShape, forgetToken, loadToken, takeTokenFromHash, type StorageLike } from './token';

class MemoryStorage implements StorageLike {
  map = new Map<string, string>();
  getItem(k: string) {
    return this.map.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    this.map.set(k, v);
  }
  removeItem(k: string) {
    this.map.delete(k);
  }
}

describe('takeTokenFromHash', () => {
  it('splits the token out and keeps the rest of the fragment', () => {
    expect(takeTokenFromHash('#token=abc')).toEqual({ token: 'abc', rest: '' });
    expect(takeTokenFromHash('#token=abc&tab=2')).toEqual({ token: 'abc', rest: '#tab=2' });
    expect(takeTokenFromHash('#tab=2')).toEqual({ token: null, rest: '#tab=2' });
    expect(takeTokenFromHash('')).toEqual({ token: null, rest: '' });
    expect(takeTokenFromHash('#token=')).toEqual({ token: null, rest: '' });
    // base64url tokens survive untouched
    expect(takeTokenFromHash('#token=Ab-_09xyzXYZ').token).toBe('Ab-_09xyzXYZ');
  });
});

describe('loadToken', () => {
  it('moves a fragment token to sessionStorage and gives a clean URL', () => {
    const st = new MemoryStorage();
    const r = loadToken({ pathname: '/ui/chat', search: '?a=1', hash: '#token=sekrit-token-123456' }, st);
    expect(r).toEqual({ token: 'sekrit-token-123456', cleanUrl: '/ui/chat?a=1' });
    expect(st.getItem(TOKEN_KEY)).toBe('sekrit-token-123456');
    expect(r.cleanUrl).not.toContain('sekrit');
  });

  it('falls back to sessionStorage, then to nothing', () => {
    const st = new MemoryStorage();
    expect(loadToken({ pathname: '/ui/', search: '', hash: '' }, st)).toEqual({ token: null, cleanUrl: null });
    st.setItem(TOKEN_KEY, 'stored-token-1234567');
    expect(loadToken({ pathname: '/ui/', search: '', hash: '' }, st)).toEqual({ token: 'stored-token-1234567', cleanUrl: null });
    forgetToken(st);
    expect(loadToken({ pathname: '/ui/', search: '', hash: '' }, st).token).toBeNull();
  });

  it('a fragment token replaces a stored one', () => {
    const st = new MemoryStorage();
    st.setItem(TOKEN_KEY, 'old-token-xxxxxxxxxx');
    expect(loadToken({ pathname: '/ui/', search: '', hash: '#token=new-token-yyyyyyyyyy' }, st).token).toBe('new-token-yyyyyyyyyy');
    expect(st.getItem(TOKEN_KEY)).toBe('new-token-yyyyyyyyyy');
  });

  it('works when storage is unavailable or throws', () => {
    const throwing: StorageLike = {
      getItem: () => {
        throw new Error('denied');
      },
      setItem: () => {
        throw new Error('denied');
      },
      removeItem: () => {
        throw new Error('denied');
      },
    };
    expect(loadToken({ pathname: '/ui/', search: '', hash: '#token=abcdefghijklmnopq' }, throwing).token).toBe('abcdefghijklmnopq');
    expect(loadToken({ pathname: '/ui/', search: '', hash: '' }, throwing).token).toBeNull();
    expect(loadToken({ pathname: '/ui/', search: '', hash: '' }, null).token).toBeNull();
    expect(() => forgetToken(throwing)).not.toThrow();
  });
});

describe('checkTokenShape', () => {
  it('explains what is wrong with a pasted token', () => {
    expect(checkTokenShape('')).toMatch(/Paste/);
    expect(checkTokenShape('short')).toMatch(/too short/);
    expect(checkTokenShape('abc defghijklmnopqrst')).toMatch(/spaces/);
    expect(checkTokenShape('  Kay64UG8yvCyLhqU000LxzYeUm0L_hLIl5S8kyKWbdc\n')).toBeNull();
  });
});
