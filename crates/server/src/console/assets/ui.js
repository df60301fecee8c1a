// Pieces every page uses: the page frame, alerts and error words, status
// chips and badges, dialogs, field errors, the audit trail's entries, and
// what the server said on the last save.

import { ApiError, enc, onWarnings } from './api.js';
import { h, id, mount } from './dom.js';
import { currentLang, has, t } from './i18n.js';

const main = document.getElementById('main');
/** What the server told about itself (`GET /info`): which store it runs on. */
export const info = { store: 'embedded' };
// What the server warned about on the last save (e.g. overlapping default
// patterns), said once on the page the save leads to.
let pendingWarnings = [];
onWarnings((warnings) => { pendingWarnings = warnings; });

// The router, which app.js registers: a dialog that saved shows the page
// again through it.
let router = () => {};

/** Registers the function that shows the page for the current address. */
export function onRerender(fn) {
  router = fn;
}

/** Shows the page for the current address again. */
export function rerender() {
  router();
}

/** The pending warnings as an alert, once. */
export function takeWarnings() {
  const warnings = pendingWarnings;
  pendingWarnings = [];
  return warnings.length ? alertBox('warn', h('ul', { class: 'warnings' }, warnings.map((w) => h('li', {}, w)))) : null;
}

export function page(title, ...content) {
  document.title = `${title} · registry-resolver`;
  mount(main, ...content);
  main.focus({ preventScroll: true });
}

// ---------- shared pieces ----------

export function alertBox(kind, ...content) {
  return h('div', { class: `alert alert-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...content);
}

/** What an API error means, in the user's language, with the fix. */
/**
 * An API error in the reader's language: by its code when the console
 * knows it (the server's own words, English and more specific, are folded
 * away under "Details" rather than said a second time beside ours), else
 * the server's words.
 */
export function explain(error) {
  if (!(error instanceof ApiError)) return String(error);
  // The message names the permission missing, which no translation can.
  if (error.status === 403) return `${t('code.forbidden_rbac')} ${error.message}`;
  // The cluster's own words (an object that exists, a quota): said after ours.
  if (error.code === 'cluster_refused') return `${t('code.cluster_refused')} ${error.message}`;
  if (error.code === 'network' || error.code === 'aborted') return t(`code.${error.code}`);
  return byCode(error.code, error.message);
}

/** A refusal by its code, with the server's words under Details (or alone, for a code the console does not know). */
function byCode(code, message) {
  if (!code || !has(`code.${code}`)) return message;
  const said = t(`code.${code}`);
  if (!message) return said;
  return [said, ' ', h('details', { class: 'server-words' },
    h('summary', {}, t('error.details')), h('span', { lang: 'en' }, message))];
}

export function errorState(error, retry) {
  return alertBox('error', h('p', {}, explain(error)),
    retry ? h('button', { type: 'button', class: 'btn', onclick: retry }, t('action.retry')) : null);
}

export function loading(label) {
  return h('p', { class: 'loading', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), label || t('state.loading'));
}

export function schemeOf(server) {
  return server.startsWith('http://') ? 'http' : 'https';
}

export function serverBadges(record) {
  const scheme = schemeOf(record.server);
  const badges = [h('span', { class: `badge badge-${scheme}` }, scheme)];
  if (scheme === 'http') badges.push(h('span', { class: 'badge badge-warn', title: t('warn.plainHttp') }, '⚠ ', t('warn.plainHttpShort')));
  // The server says how the certificate is checked (a CA bundle wins).
  if (record.certificateCheck === 'skipped') {
    badges.push(h('span', { class: 'badge badge-warn', title: t('warn.skipVerify') }, '⚠ ', t('warn.skipVerifyShort')));
  }
  return badges;
}

export function statusOf(record) {
  // The server says it in one word (`status.health`); the console only
  // picks a colour and the words for it.
  const health = (record.status && record.status.health) || 'unchecked';
  const kind = { verified: 'ok', failed: 'bad', unchecked: 'none' }[health] || 'none';
  return { kind, label: t(`status.${health}`) };
}

/** An error line for `control`, announced with it; hidden while empty. */
export function fieldError(control) {
  control.id = control.id || id('f');
  const error = h('p', { class: 'field-error', id: id('err'), hidden: true });
  control.setAttribute('aria-describedby', error.id);
  return error;
}

/** Shows `message` under `control` (or clears it when empty). */
export function showFieldError(control, error, message) {
  error.textContent = message;
  error.hidden = !message;
  if (message) control.setAttribute('aria-invalid', 'true');
  else control.removeAttribute('aria-invalid');
}

/**
 * A field's problem for the reader: in English the server's own words
 * (which quote the value and the limit), in another language what the kind
 * of problem (`reason`) means, the server's words when the reason is not
 * one the console knows.
 */
export function fieldMessage(detail) {
  const key = `reason.${detail.reason}`;
  return currentLang() !== 'en' && detail.reason && has(key) ? t(key) : detail.message;
}

/**
 * What the webhook would refuse, for the reader: in English the server's
 * words (they name the container, image and registry); in another
 * language what the reason means, with the server's words under Details.
 */
export function deniedMessage(error) {
  const key = `denied.${error.reason}`;
  if (currentLang() === 'en' || !error.reason || !has(key)) return t('workload.denied', { message: error.message });
  return [t('workload.denied', { message: t(key) }), ' ', h('details', { class: 'server-words' },
    h('summary', {}, t('error.details')), h('span', { lang: 'en' }, error.message))];
}

/** Error codes that say all there is to say of a field, in any language. */
export const SAID_AT_FIELD = new Set(['password_required']);

/** The picker's order of statuses: healthy, not checked, failing. */
export const PICKER_ORDER = ['ok', 'none', 'bad'];

export function statusChip(record, withMessage) {
  const status = statusOf(record);
  const when = record.status && record.status.lastVerifiedAt;
  return h('span', { class: 'status' },
    h('span', { class: `chip chip-${status.kind}` }, status.kind === 'ok' ? '✓ ' : status.kind === 'bad' ? '✕ ' : '○ ', status.label),
    when ? h('span', { class: 'muted small' }, ' ', formatTime(when)) : null,
    withMessage && record.status && record.status.message && status.kind === 'bad'
      ? h('span', { class: 'status-message small' }, record.status.message) : null);
}

export function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(currentLang() === 'zh' ? 'zh-CN' : 'en', { dateStyle: 'medium', timeStyle: 'short' });
}

/** A modal dialog: the rest of the page is inert and focus stays inside. */
export function openDialog(title, build, { wide = false } = {}) {
  const titleId = id('dialog-title');
  const dialog = h('dialog', { class: wide ? 'dialog dialog-wide' : 'dialog', 'aria-labelledby': titleId });
  const close = () => dialog.close();
  dialog.addEventListener('close', () => dialog.remove());
  mount(dialog, h('div', { class: 'dialog-head' },
    h('h2', { id: titleId }, title),
    h('button', { type: 'button', class: 'btn btn-ghost btn-icon', 'aria-label': t('action.close'), onclick: close }, '×')),
  build(close));
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

export function confirmDialog(title, body, confirmLabel, onConfirm) {
  openDialog(title, (close) => {
    const result = h('div', { role: 'status', 'aria-live': 'polite' });
    const confirm = h('button', { type: 'button', class: 'btn btn-danger' }, confirmLabel);
    confirm.addEventListener('click', async () => {
      confirm.disabled = true;
      try {
        await onConfirm(close);
      } catch (error) {
        mount(result, errorState(error));
        confirm.disabled = false;
      }
    });
    return h('div', {}, body, result,
      h('div', { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'btn', onclick: close, autofocus: true }, t('action.cancel')), confirm));
  });
}

// ---------- the audit trail ----------

/** The label people see for each field of a record the API names. */
const FIELD_LABELS = {
  name: 'field.name',
  server: 'field.server',
  username: 'field.username',
  password: 'field.password',
  description: 'field.description',
  namespaces: 'field.namespaces',
  defaultFor: 'field.defaultFor',
  namespaceSelector: 'field.namespaceSelector',
  defaultForSelector: 'field.defaultForSelector',
  'tls.caBundle': 'field.caBundle',
  'tls.insecureSkipVerify': 'field.skipVerify',
  pullSecretName: 'field.pullSecretName',
  pinDigests: 'field.pinDigests',
  browse: 'field.browse',
  mirrorOf: 'field.mirrorOf',
  status: 'field.status',
};

/** A field by its label, its API name kept as a tooltip for those who script. */
function fieldLabel(field) {
  const key = FIELD_LABELS[field];
  return key ? h('span', { title: field }, t(key)) : h('code', { class: 'mono' }, field);
}

/** Entries of the audit trail: when, who, what, and whether it worked. */
export function auditList(entries, { showRegistry = true } = {}) {
  return h('ol', { class: 'audit-list' }, entries.map((entry) => h('li', { class: 'audit-entry' },
    h('div', { class: 'audit-head' },
      h('span', { class: `chip ${entry.succeeded ? 'chip-ok' : 'chip-bad'}` },
        entry.succeeded ? '✓ ' : '✕ ', t(`audit.action.${entry.action}`)),
      showRegistry ? h('a', { href: `#/registries/${enc(entry.registry)}`, class: 'mono' }, entry.registry) : null,
      h('span', { class: 'muted small' }, t('audit.by', { actor: entry.actor }), ' · ', formatTime(entry.time))),
    entry.fields.length
      ? h('p', { class: 'audit-fields small' }, t('audit.fields'), ' ',
        entry.fields.map((f, i) => [i ? ', ' : '', fieldLabel(f)]))
      : null,
    entry.message ? h('div', { class: 'status-message small' }, byCode(entry.code, entry.message)) : null)));
}
