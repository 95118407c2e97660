import { render } from 'preact';
import { App } from './app/App';
import { loadToken } from './protocol/token';
import './styles.css';

let store: Storage | null = null;
try {
  store = window.sessionStorage;
} catch {
  store = null;
}
// `#token=...` (from `perch ui` or the desktop app) moves to sessionStorage and leaves the address bar.
const { token, cleanUrl } = loadToken(window.location, store);
if (cleanUrl !== null) window.history.replaceState(window.history.state, '', cleanUrl);

const root = document.getElementById('app');
if (root) render(<App initialToken={token} />, root);
