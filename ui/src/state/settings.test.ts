import { describe, expect, it } from 'vitest';
import {
  type Settings,
  buildPatch,
  MAX_SECRET_CHARS,
  describeCredential,
  formFromSettings,
  prepareSecret,
  tierSecretState,
  parseDecimal,
  parseSettings,
  parseSharing,
  validateBaseUrl,
  validateBind,
  validateForm,
  validateLatitude,
  validateLongitude,
} from './settings';

const wire = {
  configPath: '/data/perch.toml',
  name: 'Perch on box',
  bind: '127.0.0.1:18789',
  mdns: 'minimal',
  running: { name: 'Perch on box', bind: '127.0.0.1:18789', mdns: 'minimal' },
  restartRequired: false,
  models: {
    fast: null,
    default: {
      provider: 'openai',
      model: 'gpt-4o-mini',
      baseUrl: null,
      credential: { configured: true, source: 'keyring' },
    },
    smart: { provider: 'anthropic', model: 'claude-x', baseUrl: 'https://proxy.local/v1', credential: { configured: false, source: null } },
  },
  desktop: { location: { lat: 48.2, lon: 16.37, accuracyM: 100 } },
};

const settings = parseSettings(wire) as Settings;

describe('parseSettings', () => {
  it('reads the contract shape', () => {
    expect(settings.models.fast).toBeNull();
    expect(settings.models.default).toEqual({
      provider: 'openai',
      model: 'gpt-4o-mini',
      baseUrl: null,
      credential: { configured: true, source: 'keyring' },
    });
    expect(settings.desktop.location).toEqual({ lat: 48.2, lon: 16.37, accuracyM: 100 });
    expect(settings.running?.bind).toBe('127.0.0.1:18789');
    expect(settings.problems).toEqual([]);
    const withProblems = parseSettings({ ...wire, problems: [{ section: 'models', message: 'line 3: unknown provider' }, 'junk'] });
    expect(withProblems?.problems).toEqual([{ section: 'models', message: 'line 3: unknown provider' }]);
  });

  it('is lenient with what is missing or odd', () => {
    expect(parseSettings(null)).toBeNull();
    expect(parseSettings([])).toBeNull();
    const s = parseSettings({ name: 'x', models: { default: 'nope' }, desktop: { location: { lat: 'north' } }, running: null });
    expect(s).toMatchObject({ name: 'x', bind: '', mdns: 'minimal', running: null, restartRequired: false });
    expect(s?.models.default).toBeNull();
    expect(s?.desktop.location).toBeNull();
  });
});

describe('field validation', () => {
  it('accepts bind addresses the host accepts', () => {
    for (const ok of ['127.0.0.1:18789', '0.0.0.0:1', '192.168.1.10:65535', '[::1]:18789', '[::]:80', '[fe80::1:2]:9', '[::ffff:10.0.0.1]:5', 'localhost:18789', ' 127.0.0.1:18789 ']) {
      expect(validateBind(ok), ok).toBeNull();
    }
  });

  it('refuses bind addresses the host refuses, and says why', () => {
    expect(validateBind('')).toMatch(/for example/);
    expect(validateBind('127.0.0.1')).toMatch(/ADDRESS:PORT/);
    expect(validateBind('127.0.0.1:0')).toMatch(/1 to 65535/);
    expect(validateBind('127.0.0.1:65536')).toMatch(/1 to 65535/);
    expect(validateBind('127.0.0.1:08080')).toMatch(/1 to 65535/);
    expect(validateBind('256.0.0.1:80')).toMatch(/IP address/);
    expect(validateBind('perch.local:80')).toMatch(/does not look names up/);
    expect(validateBind('::1:80')).toMatch(/ADDRESS:PORT/);
    expect(validateBind('[nope]:80')).toMatch(/IPv6/);
    expect(validateBind('[1::2::3]:80')).toMatch(/IPv6/);
  });

  it('checks latitude and longitude ranges', () => {
    expect(validateLatitude('48.2082')).toBeNull();
    expect(validateLatitude('-90')).toBeNull();
    expect(validateLatitude('90.0001')).toMatch(/between -90 and 90/);
    expect(validateLatitude('')).toMatch(/number/);
    expect(validateLatitude('1e1')).toMatch(/number/);
    expect(validateLongitude('-180')).toBeNull();
    expect(validateLongitude('180.5')).toMatch(/between -180 and 180/);
    expect(validateLongitude('east')).toMatch(/number/);
    expect(parseDecimal(' .5 ')).toBe(0.5);
    expect(parseDecimal('0x10')).toBeUndefined();
  });

  it('checks base URLs and keeps credentials out of them', () => {
    expect(validateBaseUrl('')).toBeNull();
    expect(validateBaseUrl('https://api.openai.com/v1')).toBeNull();
    expect(validateBaseUrl('http://127.0.0.1:11434/v1')).toBeNull();
    expect(validateBaseUrl('api.openai.com')).toMatch(/full URL/);
    expect(validateBaseUrl('ftp://x')).toMatch(/https:\/\//);
    expect(validateBaseUrl('https://user:sk-secret@api.example')).toMatch(/key below/);
    expect(validateBaseUrl('https://user:sk-secret@api.example')).not.toContain('sk-secret');
  });

  it('allows plain http only for this computer unless the tier allows it', () => {
    for (const ok of ['http://localhost:1/v1', 'http://127.0.0.1:11434/v1', 'http://127.8.0.1', 'http://[::1]:8080/v1']) {
      expect(validateBaseUrl(ok), ok).toBeNull();
    }
    for (const lan of ['http://192.168.1.5:8080/v1', 'http://localhost.evil.test/v1', 'http://128.0.0.1']) {
      expect(validateBaseUrl(lan), lan).toMatch(/Plain http/);
      expect(validateBaseUrl(lan, true), lan).toBeNull();
    }
    const f = formFromSettings(settings);
    f.models.smart.baseUrl = 'http://10.0.0.2/v1';
    expect(validateForm(f, settings)['models.smart.baseUrl']).toMatch(/Plain http/);
    f.models.smart.allowInsecureHttp = true;
    expect(validateForm(f, settings)).toEqual({});
    expect(buildPatch(settings, f)?.models?.smart).toEqual({ baseUrl: 'http://10.0.0.2/v1', allowInsecureHttp: true });
  });
});

describe('validateForm', () => {
  it('passes the host settings unchanged', () => {
    expect(validateForm(formFromSettings(settings), settings)).toEqual({});
  });

  it('names each bad field', () => {
    const f = formFromSettings(settings);
    f.name = '  ';
    f.bind = 'nope';
    f.mdns = 'loud';
    f.lat = '91';
    f.lon = 'x';
    f.accuracyM = '20000001';
    f.models.fast = { provider: 'openai', model: '', baseUrl: '', allowInsecureHttp: false };
    f.models.smart.provider = 'ollama';
    expect(Object.keys(validateForm(f, settings)).sort()).toEqual(
      ['accuracyM', 'bind', 'lat', 'lon', 'mdns', 'models.fast.model', 'models.smart.provider', 'name'].sort(),
    );
  });

  it('limits the name to 63 characters like the host', () => {
    const f = formFromSettings(settings);
    f.name = 'x'.repeat(63);
    expect(validateForm(f, settings)).toEqual({});
    f.name = 'x'.repeat(64);
    expect(validateForm(f, settings).name).toMatch(/63/);
  });

  it('ignores location fields when no fixed location is used, and empty tiers that were never set', () => {
    const f = formFromSettings(settings);
    f.useLocation = false;
    f.lat = 'garbage';
    expect(validateForm(f, settings)).toEqual({});
    // a configured tier cannot be blanked (the host has no "remove tier")
    f.models.default = { provider: '', model: '', baseUrl: '', allowInsecureHttp: false };
    expect(Object.keys(validateForm(f, settings))).toEqual(['models.default.provider', 'models.default.model']);
  });
});

describe('buildPatch', () => {
  it('is null when nothing changed', () => {
    expect(buildPatch(settings, formFromSettings(settings))).toBeNull();
  });

  it('holds only the changed fields', () => {
    const f = formFromSettings(settings);
    f.bind = '0.0.0.0:18789';
    f.mdns = 'off';
    f.models.default.model = 'gpt-4.1';
    f.models.smart.baseUrl = '';
    f.models.fast = { provider: 'anthropic', model: 'claude-haiku', baseUrl: '', allowInsecureHttp: false };
    expect(buildPatch(settings, f)).toEqual({
      bind: '0.0.0.0:18789',
      mdns: 'off',
      models: {
        fast: { provider: 'anthropic', model: 'claude-haiku' },
        default: { model: 'gpt-4.1' },
        smart: { baseUrl: null },
      },
    });
  });

  it('sets, moves and clears the desktop location', () => {
    const f = formFromSettings(settings);
    f.lat = '40.7128';
    f.lon = '-74.006';
    f.accuracyM = '';
    expect(buildPatch(settings, f)).toEqual({ desktop: { location: { lat: 40.7128, lon: -74.006 } } });
    f.useLocation = false;
    expect(buildPatch(settings, f)).toEqual({ desktop: { location: null } });
    const none = parseSettings({ ...wire, desktop: { location: null } }) as Settings;
    const g = formFromSettings(none);
    expect(g.useLocation).toBe(false);
    g.useLocation = true;
    g.lat = '1';
    g.lon = '2';
    g.accuracyM = '50';
    expect(buildPatch(none, g)).toEqual({ desktop: { location: { lat: 1, lon: 2, accuracyM: 50 } } });
  });

  it('never carries a secret-looking field', () => {
    const f = formFromSettings(settings);
    f.name = 'New name';
    f.models.fast = { provider: 'openai', model: 'm', baseUrl: 'https://x.test/v1', allowInsecureHttp: false };
    const text = JSON.stringify(buildPatch(settings, f));
    expect(text).not.toMatch(/apiKey|token|secret|password/i);
  });
});

describe('a tier\'s key field', () => {
  it('prepares settings.secret.set with the key trimmed', () => {
    expect(prepareSecret('fast', '  sk-abc_123-XYZ\n')).toEqual({ ok: true, params: { tier: 'fast', secret: 'sk-abc_123-XYZ' } });
  });

  it('refuses what the host would refuse, without repeating the key', () => {
    const cases = ['', '   \n', 'sk-two words', 'sk-caf\u00e9', 'sk-tab\tkey', 'k'.repeat(MAX_SECRET_CHARS + 1)];
    for (const raw of cases) {
      const r = prepareSecret('default', raw);
      expect(r.ok, JSON.stringify(raw)).toBe(false);
      if (!r.ok && raw.trim()) expect(r.error).not.toContain(raw.trim().slice(0, 8));
    }
    expect(prepareSecret('smart', 'k'.repeat(MAX_SECRET_CHARS)).ok).toBe(true);
  });

  it('shows only whether the tier\'s own key is set', () => {
    const withKey = parseSettings({
      ...wire,
      models: { ...wire.models, fast: { provider: 'openai', model: 'm', baseUrl: null, credential: { configured: true, source: 'keyring', tierSecret: true } } },
    }) as Settings;
    expect(tierSecretState(withKey.models.fast)).toBe('set');
    expect(tierSecretState(settings.models.default)).toBe('not set');
    expect(tierSecretState(null)).toBe('not set');
  });

  it('reads a credential problem and says what to do', () => {
    const moved = parseSettings({
      ...wire,
      models: {
        ...wire.models,
        smart: {
          provider: 'openai',
          model: 'm',
          baseUrl: 'https://new.example/v1',
          allowInsecureHttp: false,
          credential: {
            configured: false,
            source: null,
            tierSecret: true,
            problem: { reason: 'credential-origin-changed', message: 'store the key again for model tier "smart"' },
          },
        },
      },
    }) as Settings;
    const c = moved.models.smart?.credential;
    expect(c?.problem?.reason).toBe('credential-origin-changed');
    expect(describeCredential(c ?? { configured: false, source: null })).toMatch(/new address/);
    expect(describeCredential({ configured: false, source: null, problem: { reason: 'insecure-http', message: '' } })).toMatch(/plain http/);
  });
});

describe('credentials and sharing', () => {
  it('describes a credential without ever showing it', () => {
    expect(describeCredential({ configured: false, source: null })).toContain('perch auth set');
    expect(describeCredential({ configured: true, source: 'env' })).toContain('environment');
    expect(describeCredential({ configured: true, source: 'keyring' })).toContain('keyring');
    expect(describeCredential({ configured: true, source: 'new-place' })).toBe('Credential set');
    // configured without a source: a server that needs no key
    expect(describeCredential({ configured: true, source: null })).toBe('No credential needed');
  });

  it('reads location.status leniently, sorted by name', () => {
    expect(
      parseSharing([
        { nodeId: 'b'.repeat(64), displayName: 'Phone', precision: 'city', updatedAtMs: 5 },
        { nodeId: 'a'.repeat(64), displayName: 'Desk', precision: 'off' },
        { displayName: 'no id' },
        7,
      ]),
    ).toEqual([
      { nodeId: 'a'.repeat(64), displayName: 'Desk', precision: 'off' },
      { nodeId: 'b'.repeat(64), displayName: 'Phone', precision: 'city', updatedAtMs: 5 },
    ]);
    expect(parseSharing({})).toEqual([]);
  });
});
