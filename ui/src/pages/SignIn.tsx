import { useState } from 'preact/hooks';
import type { ErrorShape } from '../protocol/frames';
import { checkTokenShape } from '../protocol/token';
import { useTitle } from '../app/hooks';

export function SignIn({ error, onSubmit }: { error: ErrorShape | null; onSubmit: (token: string) => void }) {
  useTitle('Sign in');
  const [value, setValue] = useState('');
  const [problem, setProblem] = useState<string | null>(null);

  const submit = (e: Event) => {
    e.preventDefault();
    const p = checkTokenShape(value);
    setProblem(p);
    if (p) return;
    const t = value.trim();
    setValue('');
    onSubmit(t);
  };

  return (
    <section class="signin" aria-labelledby="signin-title">
      <h1 id="signin-title">Sign in to this Perch host</h1>
      {error && (
        <div class="error-box" role="alert" data-testid="signin-error">
          <p>
            <code class="code">{error.code}</code> The host refused the token: {error.message}
          </p>
        </div>
      )}
      <p>
        The easiest way in is <code>perch ui</code> on the host: it opens this page already signed in. Otherwise paste
        the operator token, which the host keeps in the file <code>operator.token</code> in its data directory (
        <code>perch doctor</code> shows where that is, for example <code>~/.local/share/perch/operator.token</code>).
      </p>
      <form onSubmit={submit} novalidate>
        <label for="token">Operator token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          value={value}
          onInput={(e) => setValue((e.currentTarget as HTMLInputElement).value)}
          aria-invalid={problem ? 'true' : undefined}
          aria-describedby={problem ? 'token-problem' : 'token-help'}
          required
        />
        <p id="token-help" class="hint">
          The token stays in this browser tab only (session storage) and is sent only to this host.
        </p>
        {problem && (
          <p id="token-problem" class="field-error">
            {problem}
          </p>
        )}
        <button type="submit" class="primary">
          Sign in
        </button>
      </form>
    </section>
  );
}
