// The console is a client of the public API only: /api/v1 with the bearer
// token kept in this tab (sessionStorage, never a cookie: no CSRF surface).

const TOKEN_KEY = 'registry-resolver.token';

export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  signIn: (token) => sessionStorage.setItem(TOKEN_KEY, token),
  signOut: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** An answer other than 2xx: the API's error envelope, or a network failure. */
export class ApiError extends Error {
  constructor(status, body, aborted = false) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || (aborted ? 'aborted' : status === 0 ? 'network' : 'http');
    this.field = error.field;
    this.details = error.details || [];
    // Why the webhook would refuse (`resolution_denied` only).
    this.reason = error.reason;
  }
}

let unauthorized = () => {};
/** Called on any 401: the app sends the user to sign-in. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

let warned = () => {};
/** Called with the texts of a response's `Warning: 299` headers. */
export function onWarnings(handler) {
  warned = handler;
}

/** The texts of `299 - "text"` warnings (several may share one header). */
function warningTexts(header) {
  if (!header) return [];
  return [...header.matchAll(/299 - "((?:[^"\\]|\\.)*)"/g)].map((m) => m[1].replace(/\\(.)/g, '$1'));
}

/**
 * fetch('/api/v1' + path). `timeoutMs` bounds calls that reach a registry;
 * `signal` lets the user cancel them; `ifMatch` is a record version the
 * write needs the record to still be at. `quiet` keeps the answer's
 * warnings from the page a save leads to (a dry run saves nothing).
 */
export async function api(method, path, { body, signal, timeoutMs = 30000, auth = true, ifMatch, quiet = false } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  if (signal) signal.addEventListener('abort', () => controller.abort(), { once: true });
  const headers = { Accept: 'application/json' };
  if (auth) headers.Authorization = `Bearer ${session.token() || ''}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  // The version the page was built from: the write fails (412) if the
  // record changed since, instead of undoing someone else's edit.
  if (ifMatch) headers['If-Match'] = `"${ifMatch}"`;
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: controller.signal,
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, null, controller.signal.aborted);
  } finally {
    clearTimeout(timer);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (e) {
    data = null;
  }
  if (response.status === 401 && auth) unauthorized();
  if (!response.ok) throw new ApiError(response.status, data);
  const warnings = warningTexts(response.headers.get('Warning'));
  if (warnings.length && !quiet) warned(warnings);
  return data;
}

export const enc = encodeURIComponent;
