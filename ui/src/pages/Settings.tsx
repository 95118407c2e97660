import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { ErrorShape } from '../protocol/frames';
import { toErrorShape } from '../protocol/client';
import {
  type FormErrors,
  MDNS_MODES,
  PRECISIONS,
  PROVIDERS,
  type Settings,
  type SettingsForm,
  type SharingRow,
  TIERS,
  type TierName,
  buildPatch,
  describeCredential,
  formFromSettings,
  prepareSecret,
  tierSecretState,
  parseSettings,
  parseSharing,
  validateForm,
} from '../state/settings';
import { ErrorBox, Help, NotAvailable, Waiting, isUnknownMethod } from '../app/components';
import { useConn, useEvent, useHello, useTitle } from '../app/hooks';

const MDNS_HELP: Record<string, string> = {
  off: 'Not advertised; nodes need the address or a setup code.',
  minimal: 'Advertises the port and the host key fingerprint only.',
  full: 'Also advertises the host name and version.',
};

export function SettingsPage() {
  useTitle('Settings');
  const { state: conn } = useConn();
  const hello = useHello();
  if (!hello) {
    return (
      <section>
        <h1>Settings</h1>
        <Waiting state={conn} />
      </section>
    );
  }
  return (
    <>
      <h1>Settings</h1>
      <HostSettings />
      <LocationSharing />
    </>
  );
}

function Field(props: { id: string; label: string; error?: string | undefined; help?: string; children: ComponentChildren }) {
  return (
    <div class={`field ${props.error ? 'has-error' : ''}`}>
      <label for={props.id}>{props.label}</label>
      {props.children}
      {props.help && !props.error && (
        <p class="hint" id={`${props.id}-help`}>
          <Help text={props.help} />
        </p>
      )}
      {props.error && (
        <p class="field-error" id={`${props.id}-error`}>
          {props.error}
        </p>
      )}
    </div>
  );
}

function describedBy(id: string, errors: FormErrors, key: string, hasHelp = true): string | undefined {
  if (errors[key]) return `${id}-error`;
  return hasHelp ? `${id}-help` : undefined;
}

function HostSettings() {
  const { client } = useConn();
  const hello = useHello();
  const [settings, setSettings] = useState<Settings | null>(null);
  const [form, setForm] = useState<SettingsForm | null>(null);
  const [loadError, setLoadError] = useState<ErrorShape | null>(null);
  const [saveError, setSaveError] = useState<ErrorShape | null>(null);
  const [errors, setErrors] = useState<FormErrors>({});
  const [saving, setSaving] = useState(false);
  const [saved, setSaved] = useState(false);

  const adopt = (v: unknown) => {
    const s = parseSettings(v);
    if (!s) {
      setLoadError({ code: 'INVALID_RESPONSE', message: 'the host sent settings this page cannot read' });
      return;
    }
    setSettings(s);
    setForm(formFromSettings(s));
  };

  useEffect(() => {
    if (!hello) return;
    setLoadError(null);
    client.call('settings.get').then(adopt, (e: unknown) => setLoadError(toErrorShape(e)));
  }, [hello, client]);

  // Another window (or the menu-bar app) saved: show it, unless this form has unsaved edits.
  useEvent('settings.changed', (payload) => {
    const s = parseSettings(payload);
    if (!s) return;
    const untouched = !form || !settings || JSON.stringify(form) === JSON.stringify(formFromSettings(settings));
    setSettings(s);
    if (untouched) setForm(formFromSettings(s));
  });

  if (loadError && isUnknownMethod(loadError)) {
    return (
      <section class="card" aria-labelledby="host-title">
        <h2 id="host-title">Host</h2>
        <NotAvailable what="Changing settings here" />
        <p class="hint">
          Until then, edit <code>perch.toml</code> in the host's data directory (<code>perch doctor</code> shows where) and
          restart the host.
        </p>
      </section>
    );
  }
  if (loadError) {
    return (
      <section class="card" aria-labelledby="host-title">
        <h2 id="host-title">Host</h2>
        <ErrorBox error={loadError} />
      </section>
    );
  }
  if (!settings || !form) {
    return (
      <section class="card" aria-labelledby="host-title">
        <h2 id="host-title">Host</h2>
        <p class="muted">Loading…</p>
      </section>
    );
  }

  const update = (f: (draft: SettingsForm) => void) => {
    const next: SettingsForm = structuredClone(form);
    f(next);
    setForm(next);
    setSaved(false);
    if (Object.keys(errors).length) setErrors(validateForm(next, settings));
  };

  const submit = (e: Event) => {
    e.preventDefault();
    const errs = validateForm(form, settings);
    setErrors(errs);
    setSaveError(null);
    setSaved(false);
    if (Object.keys(errs).length) {
      const first = Object.keys(errs)[0];
      if (first) document.getElementById(`f-${first.replace(/\./g, '-')}`)?.focus();
      return;
    }
    const patch = buildPatch(settings, form);
    if (!patch) {
      setSaved(true);
      return;
    }
    setSaving(true);
    client.call('settings.set', patch).then(
      (v) => {
        setSaving(false);
        setSaved(true);
        adopt(v);
      },
      (err: unknown) => {
        setSaving(false);
        setSaveError(toErrorShape(err));
      },
    );
  };

  const id = (key: string) => `f-${key.replace(/\./g, '-')}`;

  return (
    <form class="card settings" onSubmit={submit} novalidate aria-labelledby="host-title">
      <h2 id="host-title">Host</h2>
      {settings.restartRequired && (
        <div class="banner warn" role="status" data-testid="restart-required">
          <strong>Restart required.</strong> The settings file differs from what the running host uses
          {settings.running ? ` (it listens on ${settings.running.bind}, mDNS ${settings.running.mdns})` : ''}. Restart the
          host to apply the changes.
        </div>
      )}
      {settings.problems.length > 0 && (
        <div class="banner warn" role="alert" data-testid="settings-problems">
          <strong>perch.toml has problems a host would refuse:</strong>
          <ul>
            {settings.problems.map((p, i) => (
              <li key={i}>
                [{p.section}] {p.message}
              </li>
            ))}
          </ul>
        </div>
      )}
      {settings.configPath && (
        <p class="hint">
          Stored in <code>{settings.configPath}</code>.
        </p>
      )}

      <Field id={id('name')} label="Name" error={errors.name} help="Shown to devices and in discovery.">
        <input
          id={id('name')}
          value={form.name}
          maxLength={63}
          onInput={(e) => update((d) => (d.name = (e.currentTarget as HTMLInputElement).value))}
          aria-invalid={errors.name ? 'true' : undefined}
          aria-describedby={describedBy(id('name'), errors, 'name')}
        />
      </Field>

      <Field
        id={id('bind')}
        label="Listen address"
        error={errors.bind}
        help="ADDRESS:PORT. `127.0.0.1:18789` is this machine only; `0.0.0.0:18789` lets devices on your network connect."
      >
        <input
          id={id('bind')}
          value={form.bind}
          spellcheck={false}
          onInput={(e) => update((d) => (d.bind = (e.currentTarget as HTMLInputElement).value))}
          aria-invalid={errors.bind ? 'true' : undefined}
          aria-describedby={describedBy(id('bind'), errors, 'bind')}
        />
      </Field>

      <fieldset class={`field ${errors.mdns ? 'has-error' : ''}`}>
        <legend>Discovery on the local network (mDNS)</legend>
        {MDNS_MODES.map((m) => (
          <label key={m} class="radio">
            <input
              type="radio"
              name="mdns"
              id={m === form.mdns ? id('mdns') : undefined}
              value={m}
              checked={form.mdns === m}
              onChange={() => update((d) => (d.mdns = m))}
            />{' '}
            <strong>{m}</strong> <span class="hint">{MDNS_HELP[m]}</span>
          </label>
        ))}
        {errors.mdns && <p class="field-error">{errors.mdns}</p>}
      </fieldset>

      <fieldset class="field">
        <legend>This computer's location</legend>
        <label class="checkbox">
          <input
            type="checkbox"
            checked={form.useLocation}
            onChange={(e) => update((d) => (d.useLocation = (e.currentTarget as HTMLInputElement).checked))}
          />{' '}
          Use a fixed location (for a desktop without GPS)
        </label>
        {form.useLocation && (
          <div class="grid3">
            <Field id={id('lat')} label="Latitude" error={errors.lat}>
              <input
                id={id('lat')}
                inputMode="decimal"
                value={form.lat}
                onInput={(e) => update((d) => (d.lat = (e.currentTarget as HTMLInputElement).value))}
                aria-invalid={errors.lat ? 'true' : undefined}
                aria-describedby={describedBy(id('lat'), errors, 'lat', false)}
              />
            </Field>
            <Field id={id('lon')} label="Longitude" error={errors.lon}>
              <input
                id={id('lon')}
                inputMode="decimal"
                value={form.lon}
                onInput={(e) => update((d) => (d.lon = (e.currentTarget as HTMLInputElement).value))}
                aria-invalid={errors.lon ? 'true' : undefined}
                aria-describedby={describedBy(id('lon'), errors, 'lon', false)}
              />
            </Field>
            <Field id={id('accuracyM')} label="Accuracy (m, optional)" error={errors.accuracyM}>
              <input
                id={id('accuracyM')}
                inputMode="decimal"
                value={form.accuracyM}
                onInput={(e) => update((d) => (d.accuracyM = (e.currentTarget as HTMLInputElement).value))}
                aria-invalid={errors.accuracyM ? 'true' : undefined}
                aria-describedby={describedBy(id('accuracyM'), errors, 'accuracyM', false)}
              />
            </Field>
          </div>
        )}
      </fieldset>

      <h3>Models</h3>
      <p class="hint">
        <Help text="A tier's key goes to the host's system keyring and is never shown again, here or anywhere; it is sent only to the address the tier pointed at when you set it. `perch auth set` on the host works too." />
      </p>
      {TIERS.map((t) => (
        <TierFields
          key={t}
          tier={t}
          settings={settings}
          form={form}
          errors={errors}
          update={update}
          onSettings={(v) => {
            const s = parseSettings(v);
            if (s) setSettings(s);
          }}
        />
      ))}

      {saveError && <ErrorBox error={saveError} />}
      {saved && !saveError && (
        <p class="ok" role="status">
          Saved.
        </p>
      )}
      <div class="actions">
        <button type="submit" class="primary" disabled={saving}>
          {saving ? 'Saving…' : 'Save'}
        </button>
        <button
          type="button"
          disabled={saving}
          onClick={() => {
            setForm(formFromSettings(settings));
            setErrors({});
            setSaveError(null);
          }}
        >
          Undo changes
        </button>
      </div>
    </form>
  );
}

function TierFields(props: {
  tier: TierName;
  settings: Settings;
  form: SettingsForm;
  errors: FormErrors;
  update: (f: (d: SettingsForm) => void) => void;
  onSettings: (v: unknown) => void;
}) {
  const { tier, settings, form, errors, update, onSettings } = props;
  const cur = settings.models[tier];
  const f = form.models[tier];
  const key = (k: string) => `models.${tier}.${k}`;
  const id = (k: string) => `f-models-${tier}-${k}`;
  return (
    <fieldset class="field tier">
      <legend>
        {tier}{' '}
        <span class={`badge ${cur?.credential.configured ? 'ok' : ''}`}>
          {cur ? describeCredential(cur.credential) : 'Not configured'}
        </span>
      </legend>
      <div class="grid3">
        <Field id={id('provider')} label="Provider" error={errors[key('provider')]}>
          <select
            id={id('provider')}
            value={f.provider}
            onChange={(e) => update((d) => (d.models[tier].provider = (e.currentTarget as HTMLSelectElement).value))}
            aria-invalid={errors[key('provider')] ? 'true' : undefined}
          >
            <option value="">—</option>
            {PROVIDERS.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </Field>
        <Field id={id('model')} label="Model" error={errors[key('model')]}>
          <input
            id={id('model')}
            value={f.model}
            spellcheck={false}
            onInput={(e) => update((d) => (d.models[tier].model = (e.currentTarget as HTMLInputElement).value))}
            aria-invalid={errors[key('model')] ? 'true' : undefined}
            aria-describedby={describedBy(id('model'), errors, key('model'), false)}
          />
        </Field>
        <Field id={id('baseUrl')} label="Base URL (optional)" error={errors[key('baseUrl')]}>
          <input
            id={id('baseUrl')}
            type="url"
            value={f.baseUrl}
            spellcheck={false}
            placeholder="provider default"
            onInput={(e) => update((d) => (d.models[tier].baseUrl = (e.currentTarget as HTMLInputElement).value))}
            aria-invalid={errors[key('baseUrl')] ? 'true' : undefined}
            aria-describedby={describedBy(id('baseUrl'), errors, key('baseUrl'), false)}
          />
        </Field>
      </div>
      {(f.allowInsecureHttp || f.baseUrl.trim().toLowerCase().startsWith('http://')) && (
        <label class="checkbox">
          <input
            type="checkbox"
            id={id('allowInsecureHttp')}
            checked={f.allowInsecureHttp}
            onChange={(e) => update((d) => (d.models[tier].allowInsecureHttp = (e.currentTarget as HTMLInputElement).checked))}
          />{' '}
          Allow plain http:// to a server off this computer (only on a network you trust)
        </label>
      )}
      {cur?.credential.problem && cur.credential.problem.reason !== 'credential-missing' && (
        <p class="field-error" role="alert" data-testid={`credential-problem-${tier}`}>
          {cur.credential.problem.message}
        </p>
      )}
      {cur && <TierKey tier={tier} cur={cur} onSettings={onSettings} />}
    </fieldset>
  );
}

/**
 * A tier's key: write-only. The field is a password field that is emptied as soon as the key is
 * sent; the host answers only whether a key is set. Not a nested form (it sits in the settings
 * form): Enter in the field sets the key instead of saving the page.
 */
function TierKey(props: { tier: TierName; cur: NonNullable<Settings['models'][TierName]>; onSettings: (v: unknown) => void }) {
  const { tier, cur, onSettings } = props;
  const { client } = useConn();
  const [draft, setDraft] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [hostError, setHostError] = useState<ErrorShape | null>(null);
  const state = tierSecretState(cur);
  const fieldId = `f-models-${tier}-key`;

  const run = (method: string, params: unknown) => {
    setBusy(true);
    setHostError(null);
    client.call(method, params).then(
      (v) => {
        setBusy(false);
        onSettings(v);
      },
      (e: unknown) => {
        setBusy(false);
        setHostError(toErrorShape(e));
      },
    );
  };

  const set = () => {
    const prepared = prepareSecret(tier, draft);
    if (!prepared.ok) {
      setError(prepared.error);
      return;
    }
    setError(null);
    // The key leaves the page's state before the call goes out.
    setDraft('');
    run('settings.secret.set', prepared.params);
  };

  return (
    <div class={`field tier-key ${error ? 'has-error' : ''}`}>
      <label for={fieldId}>
        Key for {tier}{' '}
        <span class={`badge ${state === 'set' ? 'ok' : ''}`} data-testid={`key-state-${tier}`}>
          {state}
        </span>
      </label>
      <div class="row-actions">
        <input
          id={fieldId}
          type="password"
          autocomplete="new-password"
          spellcheck={false}
          placeholder={state === 'set' ? 'paste a new key to replace it' : 'paste the key'}
          value={draft}
          disabled={busy}
          onInput={(e) => {
            setDraft((e.currentTarget as HTMLInputElement).value);
            setError(null);
          }}
          onKeyDown={(e) => {
            if (e.key === 'Enter') {
              e.preventDefault();
              set();
            }
          }}
          aria-invalid={error ? 'true' : undefined}
          aria-describedby={error ? `${fieldId}-error` : undefined}
        />
        <button type="button" disabled={busy} onClick={set}>
          {state === 'set' ? 'Replace' : 'Set'}
        </button>
        {state === 'set' && (
          <button type="button" disabled={busy} onClick={() => run('settings.secret.clear', { tier })}>
            Remove
          </button>
        )}
      </div>
      {error && (
        <p class="field-error" id={`${fieldId}-error`}>
          {error}
        </p>
      )}
      {hostError && <ErrorBox error={hostError} />}
    </div>
  );
}

function LocationSharing() {
  const { client } = useConn();
  const hello = useHello();
  const [rows, setRows] = useState<SharingRow[] | null>(null);
  const [error, setError] = useState<ErrorShape | null>(null);
  const [busy, setBusy] = useState<string | null>(null);

  useEffect(() => {
    if (!hello) return;
    setError(null);
    client.call('location.status').then(
      (v) => setRows(parseSharing(v)),
      (e: unknown) => setError(toErrorShape(e)),
    );
  }, [hello, client]);

  const share = (nodeId: string, precision: string) => {
    const before = rows;
    // Show the choice at once; put it back if the host refuses it.
    setRows((rs) => (rs ?? []).map((r) => (r.nodeId === nodeId ? { ...r, precision } : r)));
    setBusy(nodeId);
    setError(null);
    client.call('location.share', { nodeId, precision }).then(
      (v) => {
        setBusy(null);
        const [updated] = parseSharing([v]);
        if (updated) setRows((rs) => (rs ?? []).map((r) => (r.nodeId === updated.nodeId ? updated : r)));
      },
      (e: unknown) => {
        setBusy(null);
        setRows(before);
        setError(toErrorShape(e));
      },
    );
  };

  return (
    <section class="card" aria-labelledby="sharing-title">
      <h2 id="sharing-title">Location sharing with the assistant</h2>
      {error && isUnknownMethod(error) ? (
        <NotAvailable what="Location sharing" />
      ) : (
        <>
          <p class="hint">
            Per device: <strong>off</strong> shares nothing; <strong>city</strong> tells the assistant the nearest city or
            your named place, never coordinates; <strong>exact</strong> sends coordinates to the model provider.
          </p>
          {error && <ErrorBox error={error} />}
          {rows === null && !error && <p class="muted">Loading…</p>}
          {rows !== null && rows.length === 0 && <p class="muted">No paired devices.</p>}
          {rows !== null && rows.length > 0 && (
            <ul class="rows compact">
              {rows.map((r) => (
                <li key={r.nodeId} class="row">
                  <div class="row-main">
                    <strong id={`share-${r.nodeId}`}>{r.displayName}</strong>
                  </div>
                  <div class="row-actions" role="radiogroup" aria-labelledby={`share-${r.nodeId}`}>
                    {PRECISIONS.map((p) => (
                      <label key={p} class="radio inline">
                        <input
                          type="radio"
                          name={`share-${r.nodeId}`}
                          value={p}
                          checked={r.precision === p}
                          disabled={busy === r.nodeId}
                          onChange={() => share(r.nodeId, p)}
                        />{' '}
                        {p}
                      </label>
                    ))}
                  </div>
                </li>
              ))}
            </ul>
          )}
        </>
      )}
    </section>
  );
}
