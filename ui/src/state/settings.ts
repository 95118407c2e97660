// The settings form: the host's Settings (settings.get) as editable strings, validation that
// names the field, and the SettingsPatch (settings.set) holding only what changed. A tier's key
// is write-only: it goes out once with settings.secret.set and is never kept or shown; the host
// answers only whether one is set and where the tier's credential comes from.

import { isObject, num, str } from '../protocol/frames';

export const TIERS = ['fast', 'default', 'smart'] as const;
export type TierName = (typeof TIERS)[number];
export const PROVIDERS = ['openai', 'anthropic'] as const;
export const MDNS_MODES = ['off', 'minimal', 'full'] as const;

export interface CredentialProblem {
  /** Stable: `credential-origin-changed`, `insecure-http`, `credential-missing`, ... */
  reason: string;
  message: string;
}

export interface Credential {
  configured: boolean;
  source: string | null;
  /** This tier's own key (set from this page) is stored on the host. */
  tierSecret?: boolean;
  problem?: CredentialProblem;
}

export interface Tier {
  provider: string;
  model: string;
  baseUrl: string | null;
  allowInsecureHttp?: boolean;
  credential: Credential;
}

export interface Location {
  lat: number;
  lon: number;
  accuracyM?: number;
}

export interface Settings {
  configPath: string;
  name: string;
  bind: string;
  mdns: string;
  running: { name: string; bind: string; mdns: string } | null;
  restartRequired: boolean;
  models: Record<TierName, Tier | null>;
  desktop: { location: Location | null };
  /** What in perch.toml a host would refuse at start, per section; empty when the file is fine. */
  problems: { section: string; message: string }[];
}

function parseTier(v: unknown): Tier | null {
  if (!isObject(v)) return null;
  const cred = isObject(v.credential) ? v.credential : {};
  const credential: Credential = { configured: cred.configured === true, source: str(cred.source) ?? null };
  if (cred.tierSecret === true) credential.tierSecret = true;
  if (isObject(cred.problem)) {
    credential.problem = { reason: str(cred.problem.reason) ?? '', message: str(cred.problem.message) ?? '' };
  }
  const tier: Tier = {
    provider: str(v.provider) ?? '',
    model: str(v.model) ?? '',
    baseUrl: str(v.baseUrl) ?? null,
    credential,
  };
  if (v.allowInsecureHttp === true) tier.allowInsecureHttp = true;
  return tier;
}

function parseLocation(v: unknown): Location | null {
  if (!isObject(v)) return null;
  const lat = num(v.lat);
  const lon = num(v.lon);
  if (lat === undefined || lon === undefined) return null;
  const loc: Location = { lat, lon };
  const acc = num(v.accuracyM);
  if (acc !== undefined) loc.accuracyM = acc;
  return loc;
}

/** Reads the host's Settings leniently; `null` if it is not an object at all. */
export function parseSettings(v: unknown): Settings | null {
  if (!isObject(v)) return null;
  const models = isObject(v.models) ? v.models : {};
  const running = isObject(v.running)
    ? { name: str(v.running.name) ?? '', bind: str(v.running.bind) ?? '', mdns: str(v.running.mdns) ?? '' }
    : null;
  const desktop = isObject(v.desktop) ? v.desktop : {};
  return {
    configPath: str(v.configPath) ?? '',
    name: str(v.name) ?? '',
    bind: str(v.bind) ?? '',
    mdns: str(v.mdns) ?? 'minimal',
    running,
    restartRequired: v.restartRequired === true,
    models: { fast: parseTier(models.fast), default: parseTier(models.default), smart: parseTier(models.smart) },
    desktop: { location: parseLocation(desktop.location) },
    problems: Array.isArray(v.problems)
      ? v.problems.filter(isObject).map((p) => ({ section: str(p.section) ?? '', message: str(p.message) ?? '' }))
      : [],
  };
}

export interface TierForm {
  provider: string;
  model: string;
  baseUrl: string;
  allowInsecureHttp: boolean;
}

export interface SettingsForm {
  name: string;
  bind: string;
  mdns: string;
  useLocation: boolean;
  lat: string;
  lon: string;
  accuracyM: string;
  models: Record<TierName, TierForm>;
}

export function formFromSettings(s: Settings): SettingsForm {
  const loc = s.desktop.location;
  const tier = (t: Tier | null): TierForm => ({
    provider: t?.provider ?? '',
    model: t?.model ?? '',
    baseUrl: t?.baseUrl ?? '',
    allowInsecureHttp: t?.allowInsecureHttp === true,
  });
  return {
    name: s.name,
    bind: s.bind,
    mdns: s.mdns,
    useLocation: loc !== null,
    lat: loc ? String(loc.lat) : '',
    lon: loc ? String(loc.lon) : '',
    accuracyM: loc?.accuracyM !== undefined ? String(loc.accuracyM) : '',
    models: { fast: tier(s.models.fast), default: tier(s.models.default), smart: tier(s.models.smart) },
  };
}

// ---- validation ----

const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)$/;

/** A plain decimal number (no exponent, no hex, no empty string), or undefined. */
export function parseDecimal(raw: string): number | undefined {
  const t = raw.trim();
  if (!DECIMAL.test(t)) return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

function ipv4(host: string): boolean {
  const parts = host.split('.');
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255 && (p === '0' || !p.startsWith('0')));
}

function ipv6(host: string): boolean {
  if (!/^[0-9a-fA-F:.]+$/.test(host) || !host.includes(':')) return false;
  const doubles = host.split('::').length - 1;
  if (doubles > 1) return false;
  let groups = host.split(':').filter((g) => g !== '');
  const last = groups[groups.length - 1];
  let extra = 0;
  if (last && last.includes('.')) {
    if (!ipv4(last)) return false;
    groups = groups.slice(0, -1);
    extra = 2;
  }
  if (!groups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return false;
  const count = groups.length + extra;
  return doubles === 1 ? count < 8 : count === 8;
}

/** Checks a bind address as the host parses it: `IPv4:PORT`, `[IPv6]:PORT` or `localhost:PORT`. */
export function validateBind(raw: string): string | null {
  const s = raw.trim();
  if (!s) return 'Enter an address and port, for example 127.0.0.1:18789.';
  const m = /^(\[[^\]]*\]|[^:[\]]+):(\d+)$/.exec(s);
  if (!m) return 'Use ADDRESS:PORT, for example 127.0.0.1:18789 or [::1]:18789.';
  const host = m[1] ?? '';
  const portText = m[2] ?? '';
  const port = Number(portText);
  if (!/^[1-9]\d{0,4}$/.test(portText) || port > 65535) return 'The port must be a number from 1 to 65535.';
  if (host.startsWith('[')) {
    return ipv6(host.slice(1, -1)) ? null : 'The part in brackets is not an IPv6 address.';
  }
  if (host === 'localhost' || ipv4(host)) return null;
  return 'Use an IP address (like 127.0.0.1 or 0.0.0.0) or localhost; the host does not look names up.';
}

export function validateLatitude(raw: string): string | null {
  const n = parseDecimal(raw);
  if (n === undefined) return 'Latitude must be a number, for example 48.2082.';
  return n < -90 || n > 90 ? 'Latitude must be between -90 and 90.' : null;
}

export function validateLongitude(raw: string): string | null {
  const n = parseDecimal(raw);
  if (n === undefined) return 'Longitude must be a number, for example 16.3738.';
  return n < -180 || n > 180 ? 'Longitude must be between -180 and 180.' : null;
}

/** The host's limit (core/protocol/src/settings.rs): half the Earth's circumference. */
export const MAX_ACCURACY_M = 20_000_000;

export function validateAccuracy(raw: string): string | null {
  if (!raw.trim()) return null;
  const n = parseDecimal(raw);
  if (n === undefined || n <= 0 || n > MAX_ACCURACY_M) {
    return 'Accuracy is a distance in meters, above 0 and at most 20000000 (or leave it empty for 100).';
  }
  return null;
}

/** This machine, as the host counts it: localhost, 127.0.0.0/8 and ::1. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase();
  if (h === 'localhost' || h === '[::1]' || h === '::1') return true;
  return ipv4(h) && h.startsWith('127.');
}

export function validateBaseUrl(raw: string, allowInsecureHttp = false): string | null {
  const t = raw.trim();
  if (!t) return null;
  let u: URL;
  try {
    u = new URL(t);
  } catch {
    return 'Enter a full URL, for example https://api.openai.com/v1, or leave it empty for the provider default.';
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return 'The base URL must start with https:// or http://.';
  if (u.username || u.password) return 'Do not put credentials in the URL; set the tier\'s key below instead.';
  if (u.protocol === 'http:' && !allowInsecureHttp && !isLoopbackHost(u.hostname)) {
    return 'Plain http:// is only for a server on this computer: the key and your chats would cross the network unencrypted. Use https://, or allow plain http for this tier if the server is on a network you trust.';
  }
  return null;
}

// ---- a tier's key (write-only) ----

/** The host's limit (core/protocol/src/settings.rs MAX_SECRET_CHARS). */
export const MAX_SECRET_CHARS = 4096;

/**
 * Checks a pasted key as the host will, and gives the settings.secret.set params; the key is
 * trimmed (a paste often brings a newline). Never includes the key in an error.
 */
export function prepareSecret(
  tier: TierName,
  raw: string,
): { ok: true; params: { tier: TierName; secret: string } } | { ok: false; error: string } {
  const secret = raw.trim();
  if (!secret) return { ok: false, error: 'Paste the key first.' };
  if (secret.length > MAX_SECRET_CHARS) return { ok: false, error: `That is longer than ${MAX_SECRET_CHARS} characters; paste only the key.` };
  if (!/^[\x21-\x7e]+$/.test(secret)) return { ok: false, error: 'A key is one line of letters, digits and symbols, without spaces.' };
  return { ok: true, params: { tier, secret } };
}

/** The indicator beside a tier's key field: its own key is on the host, or not. */
export function tierSecretState(t: Tier | null): 'set' | 'not set' {
  return t?.credential.tierSecret === true ? 'set' : 'not set';
}

/** Field path -> message; empty when the form can be saved. */
export type FormErrors = Record<string, string>;

export function validateForm(form: SettingsForm, original: Settings | null): FormErrors {
  const errors: FormErrors = {};
  const name = form.name.trim();
  if (!name) errors.name = 'The host needs a name.';
  else if ([...name].length > 63) errors.name = 'At most 63 characters.';
  const bind = validateBind(form.bind);
  if (bind) errors.bind = bind;
  if (!(MDNS_MODES as readonly string[]).includes(form.mdns)) errors.mdns = 'Choose off, minimal or full.';
  if (form.useLocation) {
    const lat = validateLatitude(form.lat);
    if (lat) errors.lat = lat;
    const lon = validateLongitude(form.lon);
    if (lon) errors.lon = lon;
    const acc = validateAccuracy(form.accuracyM);
    if (acc) errors.accuracyM = acc;
  }
  for (const t of TIERS) {
    const f = form.models[t];
    const wasSet = original?.models[t] != null;
    const provider = f.provider.trim();
    const model = f.model.trim();
    const empty = !provider && !model && !f.baseUrl.trim();
    if (empty && !wasSet) continue;
    if (!(PROVIDERS as readonly string[]).includes(provider)) errors[`models.${t}.provider`] = 'Choose openai or anthropic.';
    if (!model) errors[`models.${t}.model`] = 'Name the model, for example gpt-4o-mini.';
    else if (model.length > 200 || /\s/.test(model)) errors[`models.${t}.model`] = 'A model name has no spaces.';
    const url = validateBaseUrl(f.baseUrl, f.allowInsecureHttp);
    if (url) errors[`models.${t}.baseUrl`] = url;
  }
  return errors;
}

// ---- the patch ----

export interface TierPatch {
  provider?: string;
  model?: string;
  baseUrl?: string | null;
  allowInsecureHttp?: boolean;
}

export interface SettingsPatch {
  name?: string;
  bind?: string;
  mdns?: string;
  models?: Partial<Record<TierName, TierPatch>>;
  desktop?: { location: Location | null };
}

/** Only what differs from `original`; `null` when nothing changed. Call after validateForm passed. */
export function buildPatch(original: Settings, form: SettingsForm): SettingsPatch | null {
  const patch: SettingsPatch = {};
  const name = form.name.trim();
  if (name !== original.name) patch.name = name;
  const bind = form.bind.trim();
  if (bind !== original.bind) patch.bind = bind;
  if (form.mdns !== original.mdns) patch.mdns = form.mdns;
  const loc = original.desktop.location;
  if (form.useLocation) {
    const next: Location = { lat: parseDecimal(form.lat) ?? 0, lon: parseDecimal(form.lon) ?? 0 };
    const acc = parseDecimal(form.accuracyM);
    if (form.accuracyM.trim() && acc !== undefined) next.accuracyM = acc;
    if (!loc || loc.lat !== next.lat || loc.lon !== next.lon || loc.accuracyM !== next.accuracyM) {
      patch.desktop = { location: next };
    }
  } else if (loc) {
    patch.desktop = { location: null };
  }
  const models: Partial<Record<TierName, TierPatch>> = {};
  for (const t of TIERS) {
    const f = form.models[t];
    const o = original.models[t];
    const provider = f.provider.trim();
    const model = f.model.trim();
    const baseUrl = f.baseUrl.trim();
    if (!o && !provider && !model && !baseUrl) continue;
    const tp: TierPatch = {};
    if (provider !== (o?.provider ?? '')) tp.provider = provider;
    if (model !== (o?.model ?? '')) tp.model = model;
    if (baseUrl !== (o?.baseUrl ?? '')) tp.baseUrl = baseUrl || null;
    if (f.allowInsecureHttp !== (o?.allowInsecureHttp === true)) tp.allowInsecureHttp = f.allowInsecureHttp;
    if (Object.keys(tp).length) models[t] = tp;
  }
  if (Object.keys(models).length) patch.models = models;
  return Object.keys(patch).length ? patch : null;
}

/** Where a credential comes from, in words. */
export function describeCredential(c: Tier['credential']): string {
  if (!c.configured && c.problem?.reason === 'credential-origin-changed') return 'Key needed for the new address';
  if (!c.configured && c.problem?.reason === 'insecure-http') return 'Blocked: plain http off this computer';
  if (!c.configured) return 'No credential: set the key below, or run `perch auth set` on the host';
  if (c.source === null) return 'No credential needed';
  switch (c.source) {
    case 'env':
      return 'Credential set (from the environment)';
    case 'config':
      return 'Credential set (in perch.toml)';
    case 'keyring':
      return 'Credential set (in the system keyring)';
    case 'file':
      return 'Credential set (in the 0600 secrets file)';
    default:
      return 'Credential set';
  }
}

// ---- location sharing per node (location.status / location.share) ----

export const PRECISIONS = ['off', 'city', 'exact'] as const;

export interface SharingRow {
  nodeId: string;
  displayName: string;
  precision: string;
  updatedAtMs?: number;
}

export function parseSharing(v: unknown): SharingRow[] {
  if (!Array.isArray(v)) return [];
  const out: SharingRow[] = [];
  for (const r of v) {
    if (!isObject(r)) continue;
    const nodeId = str(r.nodeId);
    if (!nodeId) continue;
    const row: SharingRow = { nodeId, displayName: str(r.displayName) || nodeId.slice(0, 10), precision: str(r.precision) ?? 'off' };
    const at = num(r.updatedAtMs);
    if (at !== undefined) row.updatedAtMs = at;
    out.push(row);
  }
  return out.sort((a, b) => a.displayName.localeCompare(b.displayName));
}
