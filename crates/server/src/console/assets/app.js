// The console: sign-in, the registries list, a registry's page with its
// repositories, the create and edit dialog, and the workload form with the
// image picker. Hash routes, so a reload or a shared link lands on the page.

import { api, ApiError, enc, onUnauthorized, onWarnings, session } from './api.js';
import { debounce, h, id, mount } from './dom.js';
import { applyStatic, currentLang, has, setLang, t } from './i18n.js';

const main = document.getElementById('main');
let info = { store: 'embedded' };
// What the server warned about on the last save (e.g. overlapping default
// patterns), said once on the page the save leads to.
let pendingWarnings = [];
onWarnings((warnings) => { pendingWarnings = warnings; });

/** The pending warnings as an alert, once. */
function takeWarnings() {
  const warnings = pendingWarnings;
  pendingWarnings = [];
  return warnings.length ? alertBox('warn', h('ul', { class: 'warnings' }, warnings.map((w) => h('li', {}, w)))) : null;
}

// ---------- routing ----------

function route() {
  const hash = location.hash.replace(/^#/, '') || '/registries';
  const [path, query = ''] = hash.split('?');
  const params = new URLSearchParams(query);
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const signedIn = Boolean(session.token());
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('signout').hidden = !signedIn;
  for (const link of document.querySelectorAll('#nav a')) {
    const current = link.getAttribute('href') === `#/${parts[0] || ''}`;
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (!signedIn && parts[0] !== 'signin') {
    location.replace(`#/signin?next=${enc(hash)}`);
    return;
  }
  if (parts[0] === 'signin') return signInPage(params.get('next') || '/registries');
  if (parts[0] === 'registries' && parts[1]) return registryPage(parts[1]);
  if (parts[0] === 'workload') return workloadPage(params);
  if (parts[0] === 'activity') return activityPage(params);
  return listPage();
}

onUnauthorized(() => {
  session.signOut();
  const here = location.hash.replace(/^#/, '');
  if (!here.startsWith('/signin')) location.replace(`#/signin?next=${enc(here)}&expired=1`);
});

function page(title, ...content) {
  document.title = `${title} · registry-resolver`;
  mount(main, ...content);
  main.focus({ preventScroll: true });
}

// ---------- shared pieces ----------

function alertBox(kind, ...content) {
  return h('div', { class: `alert alert-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...content);
}

/** What an API error means, in the user's language, with the fix. */
/**
 * An API error in the reader's language: by its code when the console
 * knows it (the server's own words, English and more specific, are folded
 * away under "Details" rather than said a second time beside ours), else
 * the server's words.
 */
function explain(error) {
  if (!(error instanceof ApiError)) return String(error);
  // The message names the permission missing, which no translation can.
  if (error.status === 403) return `${t('code.forbidden_rbac')} ${error.message}`;
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

function errorState(error, retry) {
  return alertBox('error', h('p', {}, explain(error)),
    retry ? h('button', { type: 'button', class: 'btn', onclick: retry }, t('action.retry')) : null);
}

function loading(label) {
  return h('p', { class: 'loading', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), label || t('state.loading'));
}

function schemeOf(server) {
  return server.startsWith('http://') ? 'http' : 'https';
}

function serverBadges(record) {
  const scheme = schemeOf(record.server);
  const badges = [h('span', { class: `badge badge-${scheme}` }, scheme)];
  if (scheme === 'http') badges.push(h('span', { class: 'badge badge-warn', title: t('warn.plainHttp') }, '⚠ ', t('warn.plainHttpShort')));
  if (record.tls && record.tls.insecureSkipVerify && !record.tls.caBundle) {
    badges.push(h('span', { class: 'badge badge-warn', title: t('warn.skipVerify') }, '⚠ ', t('warn.skipVerifyShort')));
  }
  return badges;
}

function statusOf(record) {
  const status = record.status || {};
  if (status.verified) return { kind: 'ok', label: t('status.verified') };
  if (status.lastVerifiedAt) return { kind: 'bad', label: t('status.failed') };
  return { kind: 'none', label: t('status.unchecked') };
}

/** An error line for `control`, announced with it; hidden while empty. */
function fieldError(control) {
  control.id = control.id || id('f');
  const error = h('p', { class: 'field-error', id: id('err'), hidden: true });
  control.setAttribute('aria-describedby', error.id);
  return error;
}

/** Shows `message` under `control` (or clears it when empty). */
function showFieldError(control, error, message) {
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
function fieldMessage(detail) {
  const key = `reason.${detail.reason}`;
  return currentLang() !== 'en' && detail.reason && has(key) ? t(key) : detail.message;
}

/** Error codes that say all there is to say of a field, in any language. */
const SAID_AT_FIELD = new Set(['password_required']);

/** The picker's order of statuses: healthy, not checked, failing. */
const PICKER_ORDER = ['ok', 'none', 'bad'];

function statusChip(record, withMessage) {
  const status = statusOf(record);
  const when = record.status && record.status.lastVerifiedAt;
  return h('span', { class: 'status' },
    h('span', { class: `chip chip-${status.kind}` }, status.kind === 'ok' ? '✓ ' : status.kind === 'bad' ? '✕ ' : '○ ', status.label),
    when ? h('span', { class: 'muted small' }, ' ', formatTime(when)) : null,
    withMessage && record.status && record.status.message && status.kind === 'bad'
      ? h('span', { class: 'status-message small' }, record.status.message) : null);
}

function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(currentLang() === 'zh' ? 'zh-CN' : 'en', { dateStyle: 'medium', timeStyle: 'short' });
}

/** A modal dialog: the rest of the page is inert and focus stays inside. */
function openDialog(title, build, { wide = false } = {}) {
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

function confirmDialog(title, body, confirmLabel, onConfirm) {
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

// ---------- sign-in ----------

function signInPage(next) {
  const expired = new URLSearchParams(location.hash.split('?')[1] || '').get('expired');
  const inputId = id('token');
  const input = h('input', { id: inputId, type: 'password', class: 'input', autocomplete: 'off', required: true, spellcheck: 'false' });
  const result = h('div', { 'aria-live': 'polite' });
  const hint = info.store === 'kubernetes' ? t('signin.hintKubernetes') : t('signin.hintEmbedded');
  const form = h('form', { class: 'card signin', novalidate: true },
    h('h1', {}, t('signin.title')),
    h('p', { class: 'muted' }, hint),
    expired ? alertBox('info', t('signin.expired')) : null,
    h('label', { for: inputId, class: 'label' }, t('signin.token')),
    input, result,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, t('signin.submit'))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) {
      mount(result, alertBox('error', t('signin.empty')));
      input.focus();
      return;
    }
    session.signIn(token);
    try {
      await api('GET', '/registries?limit=1');
    } catch (error) {
      if (error.status === 401) {
        session.signOut();
        mount(result, alertBox('error', t('signin.rejected')));
        input.focus();
        return;
      }
      // 403: signed in, but RBAC says what this user may not do; the page says so.
    }
    location.replace(`#${next}`);
  });
  page(t('signin.title'), h('div', { class: 'center' }, form));
  input.focus();
}

// ---------- registries list ----------

// The server pages, filters and sorts (GET /registries with limit, continue,
// q, sort, order), so the list stays fast with thousands of records. A page
// is reached through the continue tokens of the pages before it, kept here.
const listState = { q: '', sort: 'name', dir: 1, page: 0, size: 20, tokens: [null], selected: new Set(), notice: null };

function resetPaging() {
  listState.page = 0;
  listState.tokens = [null];
}

async function listPage() {
  const content = h('div', {});
  page(t('list.title'), h('div', { class: 'page-head' },
    h('h1', {}, t('list.title')),
    h('button', { type: 'button', class: 'btn btn-primary', onclick: () => registryDialog(null) }, t('action.add'))),
  content);
  mount(content, loading());
  await loadList(content);
  // A notice (what a delete did) is said once, not on every later visit.
  listState.notice = null;
}

/** Fetches the current page and renders it; `focus` says what to focus after. */
async function loadList(content, focus) {
  const params = new URLSearchParams({ limit: String(listState.size), sort: listState.sort, order: listState.dir > 0 ? 'asc' : 'desc' });
  if (listState.q) params.set('q', listState.q);
  const token = listState.tokens[listState.page];
  if (token) params.set('continue', token);
  let list;
  try {
    list = await api('GET', `/registries?${params}`);
  } catch (error) {
    if (error.status === 422 && error.field === 'continue') {
      // A token from before a sort change or a restart: start over.
      resetPaging();
      return loadList(content, focus);
    }
    mount(content, errorState(error, () => loadList(content, focus)));
    return;
  }
  if (list.items.length === 0 && listState.page > 0) {
    // The page emptied (deleted meanwhile): show the one before it.
    listState.page -= 1;
    return loadList(content, focus);
  }
  listState.tokens[listState.page + 1] = list.metadata.continue || null;
  renderList(content, list);
  if (focus) {
    const target = content.querySelector(focus);
    if (target) {
      target.focus();
      if (target.type === 'search') target.setSelectionRange(target.value.length, target.value.length);
    }
  }
}

function renderList(content, list) {
  const rows = list.items;
  const remaining = list.metadata.remainingItemCount || 0;
  const first = listState.page * listState.size;
  const total = first + rows.length + remaining;
  if (total === 0 && !listState.q) {
    mount(content, listState.notice, h('div', { class: 'empty card' },
      h('h2', {}, t('list.emptyTitle')),
      h('p', { class: 'muted' }, t('list.emptyBody')),
      h('button', { type: 'button', class: 'btn btn-primary', onclick: () => registryDialog(null) }, t('action.add'))));
    return;
  }
  const reload = (focus) => loadList(content, focus);

  const searchId = id('search');
  const search = h('input', { id: searchId, type: 'search', class: 'input', value: listState.q, placeholder: t('list.searchPlaceholder') });
  search.addEventListener('input', debounce(() => {
    listState.q = search.value.trim();
    resetPaging();
    reload('input[type=search]');
  }, 200));
  const selectedCount = listState.selected.size;
  const deleteButton = h('button', { type: 'button', class: 'btn btn-danger', disabled: selectedCount === 0, onclick: () => deleteSelected() },
    t('list.deleteSelected', { n: selectedCount }));

  const header = (key, label) => {
    const active = listState.sort === key;
    return h('th', { scope: 'col', 'aria-sort': active ? (listState.dir > 0 ? 'ascending' : 'descending') : 'none' },
      h('button', { type: 'button', class: 'sort', onclick: () => {
        listState.dir = active ? -listState.dir : 1;
        listState.sort = key;
        resetPaging();
        reload('th[aria-sort]:not([aria-sort=none]) button');
      } }, label, h('span', { class: 'sort-mark', 'aria-hidden': 'true' }, active ? (listState.dir > 0 ? ' ▲' : ' ▼') : '')));
  };
  // Selection changes redraw this page without asking the server again.
  const redraw = (focus) => {
    renderList(content, list);
    const target = content.querySelector(focus);
    if (target) target.focus();
  };
  const allOnPage = rows.length > 0 && rows.every((r) => listState.selected.has(r.name));
  const selectAll = h('input', { type: 'checkbox', 'aria-label': t('list.selectPage'), checked: allOnPage, onchange: (e) => {
    for (const r of rows) {
      if (e.target.checked) listState.selected.add(r.name);
      else listState.selected.delete(r.name);
    }
    redraw('thead input[type=checkbox]');
  } });
  const table = h('table', { class: 'table' },
    h('caption', { class: 'sr-only' }, t('list.title')),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col', class: 'check' }, selectAll),
      header('name', t('field.name')),
      header('server', t('field.server')),
      header('username', t('field.username')),
      header('namespaces', t('field.namespaces')),
      h('th', { scope: 'col' }, t('field.defaultFor')),
      header('status', t('field.status')),
      header('created', t('field.created')))),
    h('tbody', {}, rows.map((r) => h('tr', {},
      h('td', { class: 'check' }, h('input', { type: 'checkbox', 'aria-label': t('list.select', { name: r.name }), checked: listState.selected.has(r.name), onchange: (e) => {
        if (e.target.checked) listState.selected.add(r.name);
        else listState.selected.delete(r.name);
        redraw(`input[data-row="${CSS.escape(r.name)}"]`);
      }, dataset: { row: r.name } })),
      cell(t('field.name'), h('a', { href: `#/registries/${enc(r.name)}`, class: 'strong' }, r.name)),
      cell(t('field.server'), h('span', { class: 'mono' }, r.server.replace(/^https?:\/\//, '')), ' ', serverBadges(r)),
      cell(t('field.username'), r.username || h('span', { class: 'muted' }, '—')),
      cell(t('field.namespaces'), h('span', { class: 'count' }, r.namespaces.length), ' ',
        h('span', { class: 'muted' }, r.namespaces.slice(0, 3).join(', ') + (r.namespaces.length > 3 ? ', …' : '')),
        r.namespaceSelector ? [' ', h('span', { class: 'badge', title: selectorText(r.namespaceSelector) }, t('list.byLabels'))] : null),
      cell(t('field.defaultFor'), r.defaultFor.length ? r.defaultFor.slice(0, 3).join(', ') + (r.defaultFor.length > 3 ? ', …' : '') : h('span', { class: 'muted' }, '—')),
      cell(t('field.status'), statusChip(r, true)),
      cell(t('field.created'), formatTime(r.createdAt))))));
  const pager = h('nav', { class: 'pager', 'aria-label': t('list.paging') },
    h('span', { class: 'muted' }, total
      ? t('list.range', { from: first + 1, to: first + rows.length, total })
      : t('list.noMatch')),
    h('button', { type: 'button', class: 'btn', 'data-page': 'previous', disabled: listState.page === 0, onclick: () => { listState.page -= 1; reload('[data-page=previous]:not([disabled]), [data-page=next]'); } }, t('action.previous')),
    h('button', { type: 'button', class: 'btn', 'data-page': 'next', disabled: !list.metadata.continue, onclick: () => { listState.page += 1; reload('[data-page=next]:not([disabled]), [data-page=previous]'); } }, t('action.next')));
  mount(content, listState.notice,
    h('div', { class: 'toolbar' },
      h('label', { for: searchId, class: 'sr-only' }, t('list.search')), search, deleteButton),
    h('div', { class: 'table-wrap' }, table), pager);
}

/** A table cell; its label is shown beside the value on narrow screens. */
function cell(label, ...content) {
  return h('td', { 'data-label': label }, h('div', { class: 'cell' }, ...content));
}

function deleteSelected() {
  const names = [...listState.selected].sort();
  confirmDialog(t('list.deleteTitle', { n: names.length }),
    h('div', {}, h('p', {}, t('list.deleteBody')), h('ul', { class: 'names' }, names.map((n) => h('li', { class: 'mono' }, n)))),
    t('action.delete'),
    async (close) => {
      const result = await api('POST', '/registries:batchDelete', { body: { names } });
      listState.selected.clear();
      listState.notice = alertBox('info',
        result.deleted.length ? t('list.deleted', { names: result.deleted.join(', ') }) : null,
        result.notFound.length ? h('span', {}, ' ', t('list.notFound', { names: result.notFound.join(', ') })) : null);
      close();
      listPage();
    });
}

// ---------- create and edit ----------

const FIELD_OF = (path) => path.replace(/\[\d+\]$/, '').replace(/^(namespaceSelector|defaultForSelector)\b.*/, 'namespaceSelector');

/** A label selector in the short form `kubectl -l` reads: `k=v`, `k`, `!k`. */
function selectorText(selector) {
  if (!selector) return '';
  const parts = Object.entries(selector.matchLabels || {}).map(([k, v]) => `${k}=${v}`);
  for (const e of selector.matchExpressions || []) {
    if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
    else parts.push(`${e.key} ${e.operator === 'In' ? 'in' : 'notin'} (${(e.values || []).join(',')})`);
  }
  return parts.join(', ');
}

/** Can the short form say this selector (no In/NotIn)? */
const selectorEditable = (selector) => !selector
  || (selector.matchExpressions || []).every((e) => e.operator === 'Exists' || e.operator === 'DoesNotExist');

/** The short form back to a selector; the server checks keys and values. */
function parseSelector(text) {
  const matchLabels = {};
  const matchExpressions = [];
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq >= 0) matchLabels[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
    else if (part.startsWith('!')) matchExpressions.push({ key: part.slice(1).trim(), operator: 'DoesNotExist' });
    else matchExpressions.push({ key: part, operator: 'Exists' });
  }
  const selector = {};
  if (Object.keys(matchLabels).length) selector.matchLabels = matchLabels;
  if (matchExpressions.length) selector.matchExpressions = matchExpressions;
  return Object.keys(selector).length ? selector : null;
}

function registryDialog(existing) {
  const editing = Boolean(existing);
  openDialog(editing ? t('dialog.editTitle', { name: existing.name }) : t('dialog.createTitle'), (close) => {
    const fields = {};
    const errors = {};
    const field = (key, label, control, help) => {
      const errorId = id('err');
      errors[key] = h('p', { class: 'field-error', id: errorId, hidden: true });
      const controlId = control.id || id('f');
      control.id = controlId;
      control.setAttribute('aria-describedby', errorId);
      fields[key] = control;
      return h('div', { class: 'field', dataset: { field: key } },
        h('label', { for: controlId, class: 'label' }, label),
        control, help ? h('p', { class: 'help' }, help) : null, errors[key]);
    };
    const current = existing || { namespaces: [], defaultFor: [], tls: {} };
    const scheme = h('select', { class: 'input scheme', 'aria-label': t('field.scheme') },
      h('option', { value: 'https', selected: schemeOf(current.server || 'https://') === 'https' }, 'https://'),
      h('option', { value: 'http', selected: schemeOf(current.server || 'https://') === 'http' }, 'http://'));
    const host = h('input', { class: 'input', value: (current.server || '').replace(/^https?:\/\//, ''),
      placeholder: 'dockerhub.qingcloud.com · harbor.example.com:8443/library', required: true, spellcheck: 'false', autocomplete: 'off' });
    const schemeHelp = h('p', { class: 'help warn', hidden: true }, t('warn.plainHttp'));
    const syncScheme = () => { schemeHelp.hidden = scheme.value !== 'http'; };
    scheme.addEventListener('change', syncScheme);
    // A pasted URL (`https://harbor.example.com:8443/library/`) is split
    // where it belongs: its scheme into the scheme menu (which would
    // otherwise win over it unseen), host, port and path prefix into the
    // address, without the trailing slash.
    host.addEventListener('input', () => {
      const url = /^\s*(https?):\/\/(.*)$/i.exec(host.value);
      if (!url) return;
      scheme.value = url[1].toLowerCase();
      host.value = url[2].trim().replace(/\/+$/, '');
      syncScheme();
    });
    const name = h('input', { class: 'input', value: current.name || '', required: true, disabled: editing, spellcheck: 'false', autocomplete: 'off', placeholder: 'harbor' });
    const username = h('input', { class: 'input', value: current.username || '', autocomplete: 'off', spellcheck: 'false' });
    const password = h('input', { class: 'input', type: 'password', autocomplete: 'new-password',
      placeholder: editing && current.hasPassword ? t('dialog.passwordKeep') : '' });
    const description = h('input', { class: 'input', value: current.description || '' });
    const namespaces = chips(current.namespaces, t('dialog.namespacePlaceholder'));
    // Suggestions: the cluster's namespaces (or those records already use).
    const suggestions = h('datalist', { id: id('ns-suggestions') });
    namespaces.input.setAttribute('list', suggestions.id);
    api('GET', '/namespaces')
      .then((found) => mount(suggestions, found.items.map((ns) => h('option', { value: ns }))))
      .catch(() => {});
    // Namespaces by label: Kubernetes mode only (namespaces have labels
    // only in a cluster). A selector the short form cannot say is kept
    // as it is and edited with kubectl.
    const byLabels = info.store === 'kubernetes' || Boolean(current.namespaceSelector);
    const selectorLocked = !selectorEditable(current.namespaceSelector);
    const selectorInput = h('input', { class: 'input mono', value: selectorText(current.namespaceSelector),
      placeholder: 'kubesphere.io/workspace=ws1', spellcheck: 'false', autocomplete: 'off', disabled: selectorLocked });
    const selectorDefault = h('input', { type: 'checkbox', checked: Boolean(current.defaultForSelector) });
    const defaults = h('div', { class: 'checks', tabindex: -1 });
    // The fieldset's own error line, like every other field's: a default
    // another record holds is said here, not above the form.
    const defaultsError = h('p', { class: 'field-error', id: id('err'), hidden: true });
    errors.defaultFor = defaultsError;
    fields.defaultFor = defaults;
    defaults.setAttribute('aria-describedby', defaultsError.id);
    const chosenDefaults = new Set(current.defaultFor);
    const renderDefaults = () => {
      const list = namespaces.values();
      for (const ns of [...chosenDefaults]) if (!list.includes(ns)) chosenDefaults.delete(ns);
      mount(defaults, list.length ? list.map((ns) => h('label', { class: 'check-label' },
        h('input', { type: 'checkbox', checked: chosenDefaults.has(ns), onchange: (e) => {
          if (e.target.checked) chosenDefaults.add(ns); else chosenDefaults.delete(ns);
        } }), ' ', ns)) : h('p', { class: 'muted small' }, t('dialog.defaultsEmpty')));
    };
    namespaces.onchange = () => {
      renderDefaults();
      // Chips are added and removed outside the input's own events.
      edited('namespaces');
    };
    renderDefaults();
    const caBundle = h('textarea', { class: 'input mono', rows: 4, spellcheck: 'false', placeholder: '-----BEGIN CERTIFICATE-----' }, (current.tls && current.tls.caBundle) || '');
    const caFile = h('input', { type: 'file', accept: '.crt,.pem,.cer', class: 'file', 'aria-label': t('dialog.caUpload') });
    caFile.addEventListener('change', async () => {
      const file = caFile.files && caFile.files[0];
      if (file) caBundle.value = await file.text();
    });
    const skipVerify = h('input', { type: 'checkbox', checked: Boolean(current.tls && current.tls.insecureSkipVerify) });
    const skipWarn = h('p', { class: 'help warn', hidden: !skipVerify.checked }, t('warn.skipVerify'));
    skipVerify.addEventListener('change', () => { skipWarn.hidden = !skipVerify.checked; });
    const pullSecret = h('input', { class: 'input', value: editing ? current.pullSecretName : '', placeholder: t('dialog.pullSecretPlaceholder'), spellcheck: 'false', autocomplete: 'off' });
    const pin = h('input', { type: 'checkbox', checked: Boolean(current.pinDigests) });
    const browseMethod = h('select', { class: 'input' },
      ['auto', 'catalog', 'harbor', 'dockerhub', 'none'].map((m) => h('option', { value: m, selected: (current.browse || 'auto') === m }, t(`browse.method.${m}`))));
    const noCheck = h('input', { type: 'checkbox' });
    const outcome = h('div', { class: 'outcome', role: 'status', 'aria-live': 'polite' });
    // What a click on Check or Save led to, brought into view: on a small
    // screen the form scrolls and the buttons stay put, so the answer would
    // land out of sight and the click seem to do nothing.
    const tell = (...content) => {
      mount(outcome, ...content);
      if (content.length) outcome.scrollIntoView({ block: 'nearest' });
    };

    const body = () => {
      const value = {
        name: editing ? existing.name : name.value.trim(),
        server: `${scheme.value}://${host.value.trim().replace(/^https?:\/\//, '')}`,
        namespaces: namespaces.values(),
        defaultFor: namespaces.values().filter((ns) => chosenDefaults.has(ns)),
        tls: { insecureSkipVerify: skipVerify.checked },
        pinDigests: pin.checked,
        browse: browseMethod.value,
      };
      if (username.value.trim()) value.username = username.value.trim();
      if (password.value) value.password = password.value;
      if (description.value.trim()) value.description = description.value.trim();
      if (caBundle.value.trim()) value.tls.caBundle = caBundle.value.trim();
      if (pullSecret.value.trim()) value.pullSecretName = pullSecret.value.trim();
      const selector = selectorLocked ? current.namespaceSelector : parseSelector(selectorInput.value);
      if (selector) {
        value.namespaceSelector = selector;
        if (selectorDefault.checked) value.defaultForSelector = selectorLocked && current.defaultForSelector ? current.defaultForSelector : selector;
      }
      return value;
    };
    const clearErrors = () => {
      for (const [key, el] of Object.entries(errors)) {
        el.hidden = true;
        el.textContent = '';
        fields[key].removeAttribute('aria-invalid');
      }
    };
    // Each field's problem, at the field. A problem whose code says it all
    // (a password the server needs again) is said in the reader's
    // language; others in the server's words, which name what is at fault
    // (the namespace another record holds as its default, say), or, in
    // another language than English, by the kind of problem the server
    // names (`reason`). `shown`
    // picks the fields to speak of (live validation: those touched).
    const showErrors = (error, shown = () => true) => {
      const own = SAID_AT_FIELD.has(error.code) ? t(`code.${error.code}`) : error.message;
      const details = error.details.length ? error.details.map((detail) => ({ ...detail, message: fieldMessage(detail) }))
        : error.field ? [{ field: error.field, message: own }] : [];
      let first = null;
      for (const detail of details) {
        const key = FIELD_OF(detail.field);
        const target = errors[key] ? key : key.startsWith('tls') ? 'tls.caBundle' : null;
        if (!target || !shown(target)) continue;
        errors[target].hidden = false;
        errors[target].textContent = errors[target].textContent ? `${errors[target].textContent}; ${detail.message}` : detail.message;
        fields[target].setAttribute('aria-invalid', 'true');
        first = first || fields[target];
      }
      return first;
    };
    // Live validation: the server answers as a save would (`?dryRun=All`:
    // nothing saved, no registry check), and what it says of the fields
    // someone has touched is shown at them as they type. No rule of the
    // server's is written here. On an edit, the password's problem is shown
    // whatever was touched: only a change elsewhere (a new address or
    // trust) can cause it.
    const touched = new Set();
    let validating = null;
    const validate = debounce(async () => {
      if (running) return;
      if (validating) validating.abort();
      const mine = new AbortController();
      validating = mine;
      const options = { body: body(), signal: mine.signal, timeoutMs: 10000, quiet: true };
      try {
        // No If-Match: whether someone saved meanwhile is Save's to say
        // (a controller's status write moves the version in a cluster).
        if (editing) await api('PUT', `/registries/${enc(existing.name)}?dryRun=All`, options);
        else await api('POST', '/registries?dryRun=All', options);
        if (validating === mine) clearErrors();
      } catch (error) {
        if (validating !== mine || !(error instanceof ApiError) || !(error.field || error.details.length)) return;
        clearErrors();
        showErrors(error, (key) => touched.has(key) || (editing && key === 'password'));
        // The field being typed in may be the last above the sticky
        // buttons: its new line must not appear under them.
        const typing = document.activeElement && document.activeElement.closest('[data-field]');
        const line = typing && typing.querySelector('.field-error:not([hidden])');
        if (line) line.scrollIntoView({ block: 'nearest' });
      } finally {
        if (validating === mine) validating = null;
      }
    }, 400);
    const edited = (key) => {
      if (key) touched.add(key);
      validate();
    };

    const check = h('button', { type: 'button', class: 'btn' }, t('action.check'));
    const save = h('button', { type: 'submit', class: 'btn btn-primary' }, t('action.save'));
    let running = null;
    const cancelRun = h('button', { type: 'button', class: 'btn btn-ghost', hidden: true, onclick: () => running && running.abort() }, t('action.cancel'));
    const busy = (on, label) => {
      check.disabled = on;
      save.disabled = on;
      cancelRun.hidden = !on;
      if (on) tell(loading(label));
    };
    const run = async (fn, label) => {
      clearErrors();
      if (validating) validating.abort();
      running = new AbortController();
      busy(true, label);
      try {
        await fn(running.signal);
      } catch (error) {
        const first = error.field || error.details.length ? showErrors(error) : null;
        if (first) {
          // Said at the field it names, where the cursor goes; the line
          // above the buttons only says that something needs fixing.
          tell(alertBox('error', t('dialog.fixFields')));
          (first.querySelector('input') || first).focus();
        } else if (error.status === 412) {
          // Someone saved this record after the dialog opened: saving now
          // would undo their change. Offer a fresh copy to edit.
          const reload = h('button', { type: 'button', class: 'btn', onclick: async () => {
            close();
            try {
              registryDialog(await api('GET', `/registries/${enc(existing.name)}`));
            } catch (e) {
              route();
            }
          } }, t('dialog.reload'));
          tell(alertBox('error', h('p', {}, t('dialog.changedMeanwhile')), reload));
          reload.focus();
        } else {
          tell(alertBox('error', explain(error)));
        }
      } finally {
        running = null;
        busy(false);
      }
    };
    check.addEventListener('click', () => run(async (signal) => {
      const value = body();
      if (!value.name) value.name = 'unsaved';
      if (editing && !value.password && existing.hasPassword) {
        // The stored password stays on the server: check the saved record.
        const saved = await api('POST', `/registries/${enc(existing.name)}/verify`, { signal, timeoutMs: 20000 });
        tell(alertBox(saved.status.verified ? 'ok' : 'error', saved.status.message || ''));
        return;
      }
      await api('POST', '/registries:verify', { body: value, signal, timeoutMs: 20000 });
      tell(alertBox('ok', '✓ ', t('dialog.checkOk')));
    }, t('dialog.checking')));
    const form = h('form', { class: 'form', novalidate: true });
    const fieldOf = (target) => {
      if (target === skipVerify) return 'tls.caBundle';
      const holder = target.closest && target.closest('[data-field]');
      return holder ? holder.dataset.field : null;
    };
    form.addEventListener('input', (event) => edited(fieldOf(event.target)));
    form.addEventListener('change', (event) => edited(fieldOf(event.target)));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      run(async (signal) => {
        const verify = noCheck.checked ? '?verify=false' : '';
        const saved = editing
          ? await api('PUT', `/registries/${enc(existing.name)}${verify}`, { body: body(), signal, timeoutMs: 20000, ifMatch: existing.version })
          : await api('POST', `/registries${verify}`, { body: body(), signal, timeoutMs: 20000 });
        close();
        location.hash = `#/registries/${enc(saved.name)}`;
        if (editing) route();
      }, noCheck.checked ? t('dialog.saving') : t('dialog.checkingAndSaving'));
    });
    mount(form,
      h('div', { class: 'grid-2' },
        field('name', t('field.name'), name, editing ? t('dialog.nameImmutable') : t('dialog.nameHelp')),
        field('description', t('field.description'), description)),
      h('div', { class: 'field', dataset: { field: 'server' } },
        h('label', { for: 'server-host', class: 'label' }, t('field.server')),
        h('div', { class: 'input-group' }, scheme, (() => { host.id = 'server-host'; return host; })()),
        h('p', { class: 'help' }, t('dialog.serverHelp')), schemeHelp,
        (() => { const e = h('p', { class: 'field-error', hidden: true, id: id('err') }); errors.server = e; fields.server = host; host.setAttribute('aria-describedby', e.id); return e; })()),
      h('div', { class: 'grid-2' },
        field('username', t('field.username'), username),
        field('password', t('field.password'), password, editing ? t('dialog.passwordHelpEdit') : t('dialog.passwordHelp'))),
      field('namespaces', t('field.namespaces'), namespaces.input, t('dialog.namespacesHelp')),
      suggestions,
      namespaces.list,
      h('fieldset', { class: 'field', dataset: { field: 'defaultFor' } }, h('legend', { class: 'label' }, t('field.defaultFor')),
        h('p', { class: 'help' }, t('dialog.defaultForHelp')), defaults, defaultsError),
      byLabels ? [
        field('namespaceSelector', t('field.namespaceSelector'), selectorInput,
          selectorLocked ? t('dialog.selectorLocked') : t('dialog.selectorHelp')),
        h('label', { class: 'check-label' }, selectorDefault, ' ', t('dialog.selectorDefault'))] : null,
      h('details', { class: 'advanced', open: Boolean(current.tls && (current.tls.caBundle || current.tls.insecureSkipVerify)) || undefined },
        h('summary', {}, t('dialog.advanced')),
        field('tls.caBundle', t('field.caBundle'), caBundle, t('dialog.caHelp')),
        h('div', { class: 'field' }, caFile),
        h('label', { class: 'check-label' }, skipVerify, ' ', t('field.skipVerify')), skipWarn,
        field('pullSecretName', t('field.pullSecretName'), pullSecret, t('dialog.pullSecretHelp')),
        h('label', { class: 'check-label' }, pin, ' ', t('field.pinDigests')),
        field('browse', t('field.browse'), browseMethod, t('dialog.browseHelp'))),
      h('label', { class: 'check-label' }, noCheck, ' ', t('dialog.saveWithoutCheck')),
      outcome,
      h('div', { class: 'dialog-actions' }, cancelRun,
        h('button', { type: 'button', class: 'btn btn-ghost', onclick: close }, t('action.cancel')), check, save));
    syncScheme();
    setTimeout(() => (editing ? host : name).focus(), 0);
    return form;
  }, { wide: true });
}

/** A chips input: Enter or comma adds, each chip has a remove button. */
function chips(initial, placeholder) {
  const values = [...initial];
  const list = h('ul', { class: 'chips', 'aria-live': 'polite' });
  const input = h('input', { class: 'input', placeholder, spellcheck: 'false', autocomplete: 'off' });
  const api = { input, list, onchange: () => {}, values: () => [...values] };
  const render = () => {
    mount(list, values.map((value, index) => h('li', { class: 'chip chip-ns' }, value,
      h('button', { type: 'button', class: 'chip-remove', 'aria-label': t('dialog.removeNamespace', { name: value }), onclick: () => {
        values.splice(index, 1);
        render();
        api.onchange();
        input.focus();
      } }, '×'))));
  };
  const add = () => {
    for (const part of input.value.split(/[\s,]+/)) {
      const value = part.trim();
      if (value && !values.includes(value)) values.push(value);
    }
    input.value = '';
    render();
    api.onchange();
  };
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ',') {
      event.preventDefault();
      add();
    } else if (event.key === 'Backspace' && !input.value && values.length) {
      values.pop();
      render();
      api.onchange();
    }
  });
  input.addEventListener('blur', () => { if (input.value.trim()) add(); });
  render();
  return api;
}

/** Does a `namespaces` entry (a name, `*` or `prefix*`) reach `ns`? */
function reaches(entry, ns) {
  return entry.endsWith('*') ? ns.startsWith(entry.slice(0, -1)) : entry === ns;
}

/** Where a namespace entry's pull Secret is in place: one namespace, or how many a pattern reaches. */
function pullSecretChip(record, entry) {
  const placed = record.pullSecrets.replicatedNamespaces.filter((ns) => reaches(entry, ns));
  if (entry.endsWith('*')) {
    return h('span', { class: `chip ${placed.length ? 'chip-ok' : 'chip-none'}` }, placed.length ? '✓ ' : '○ ',
      t('detail.pullSecretPattern', { secret: record.pullSecretName, n: placed.length }));
  }
  return placed.length
    ? h('span', { class: 'chip chip-ok' }, '✓ ', t('detail.pullSecretPresent', { secret: record.pullSecretName }))
    : h('span', { class: 'chip chip-none' }, '○ ', t('detail.pullSecretMissing', { secret: record.pullSecretName }));
}

// ---------- a registry's page ----------

async function registryPage(name) {
  page(name, loading());
  let record;
  try {
    record = await api('GET', `/registries/${enc(name)}`);
  } catch (error) {
    page(name, h('p', {}, h('a', { href: '#/registries' }, '← ', t('list.title'))), errorState(error, () => registryPage(name)));
    return;
  }
  const statusBox = h('div', {}, statusChip(record, true));
  const checkResult = h('div', { role: 'status', 'aria-live': 'polite' });
  const checkAgain = h('button', { type: 'button', class: 'btn' }, t('action.checkAgain'));
  checkAgain.addEventListener('click', async () => {
    checkAgain.disabled = true;
    mount(checkResult, loading(t('dialog.checking')));
    try {
      record = await api('POST', `/registries/${enc(name)}/verify`, { timeoutMs: 20000 });
      mount(checkResult, alertBox('ok', '✓ ', t('dialog.checkOk')));
    } catch (error) {
      mount(checkResult, alertBox('error', explain(error)));
      try { record = await api('GET', `/registries/${enc(name)}`); } catch (e) { /* keep what we have */ }
    }
    mount(statusBox, statusChip(record, true));
    checkAgain.disabled = false;
  });
  const scheme = schemeOf(record.server);
  const needsNodeTrust = scheme === 'http' || (record.tls && (record.tls.caBundle || record.tls.insecureSkipVerify));
  const host = record.server.replace(/^https?:\/\//, '');
  const dl = (...pairs) => h('dl', { class: 'facts' }, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  page(name,
    h('p', { class: 'crumbs' }, h('a', { href: '#/registries' }, '← ', t('list.title'))),
    takeWarnings(),
    h('div', { class: 'page-head' },
      h('div', {}, h('h1', {}, record.name), h('p', { class: 'muted' }, h('span', { class: 'mono' }, host), ' ', serverBadges(record))),
      h('div', { class: 'actions' }, checkAgain,
        h('button', { type: 'button', class: 'btn', onclick: () => registryDialog(record) }, t('action.edit')),
        h('button', { type: 'button', class: 'btn btn-danger', onclick: () => confirmDialog(t('detail.deleteTitle', { name }),
          h('p', {}, t('detail.deleteBody', { name })), t('action.delete'), async (close) => {
            await api('DELETE', `/registries/${enc(name)}`);
            close();
            listState.notice = alertBox('info', t('list.deleted', { names: name }));
            location.hash = '#/registries';
          }) }, t('action.delete')))),
    checkResult,
    h('div', { class: 'cards' },
      h('section', { class: 'card', 'aria-labelledby': 'sec-status' },
        h('h2', { id: 'sec-status' }, t('detail.status')), statusBox,
        needsNodeTrust ? nodeTrustBox(record, scheme) : null),
      h('section', { class: 'card', 'aria-labelledby': 'sec-conn' },
        h('h2', { id: 'sec-conn' }, t('detail.connection')),
        dl([t('field.server'), h('span', { class: 'mono' }, record.server)],
          [t('field.username'), record.username || '—'],
          [t('field.password'), record.hasPassword ? t('detail.passwordStored') : '—'],
          [t('field.caBundle'), record.tls && record.tls.caBundle ? t('detail.caProvided') : '—'],
          [t('field.skipVerify'), record.tls && record.tls.insecureSkipVerify ? t('state.yes') : t('state.no')],
          [t('field.pullSecretName'), h('span', { class: 'mono' }, record.pullSecretName)],
          [t('field.pinDigests'), record.pinDigests ? t('state.yes') : t('state.no')],
          [t('field.browse'), t(`browse.method.${record.browse || 'auto'}`)],
          [t('field.description'), record.description || '—'],
          [t('field.created'), formatTime(record.createdAt)],
          [t('field.updated'), formatTime(record.updatedAt)]))),
    h('section', { class: 'card', 'aria-labelledby': 'sec-ns' },
      h('h2', { id: 'sec-ns' }, t('field.namespaces')),
      record.pullSecrets && !record.pullSecrets.ready && record.pullSecrets.message
        ? alertBox('warn', t('detail.pullSecretsIncomplete'), ' ', record.pullSecrets.message) : null,
      record.namespaceSelector ? h('p', {}, record.namespaces.length ? t('detail.byLabels') : t('detail.byLabelsOnly'), ' ',
        h('code', { class: 'mono' }, selectorText(record.namespaceSelector)),
        record.defaultForSelector ? [' ', h('span', { class: 'badge badge-default' }, t('detail.default')),
          selectorText(record.defaultForSelector) !== selectorText(record.namespaceSelector)
            ? [' ', h('code', { class: 'mono' }, selectorText(record.defaultForSelector))] : null] : null) : null,
      h('ul', { class: 'ns-list' }, record.namespaces.map((ns) => h('li', {},
        h('span', { class: 'mono' }, ns),
        record.defaultFor.includes(ns) ? h('span', { class: 'badge badge-default' }, t('detail.default')) : null,
        record.pullSecrets ? pullSecretChip(record, ns) : null,
        ns.endsWith('*') ? null : [' ', h('a', { href: `#/workload?namespace=${enc(ns)}&registry=${enc(record.name)}`, class: 'small' }, t('detail.useHere'))])))),
    howToUse(record),
    recentChanges(record),
    repositoryBrowser(record));
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
  status: 'field.status',
};

/** A field by its label, its API name kept as a tooltip for those who script. */
function fieldLabel(field) {
  const key = FIELD_LABELS[field];
  return key ? h('span', { title: field }, t(key)) : h('code', { class: 'mono' }, field);
}

/** Entries of the audit trail: when, who, what, and whether it worked. */
function auditList(entries, { showRegistry = true } = {}) {
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

/** At most this many of a record's default namespaces are asked about. */
const HOW_TO_USE_CANDIDATES = 5;

/**
 * How to use the record, with a command that works as shown: the short
 * form in a namespace where the server says this record is the default
 * (a default it claims may be outranked by another record's), else the
 * annotation that picks it, in a namespace it is authorized for.
 */
function howToUse(record) {
  const body = h('div', {}, loading());
  const annotation = `metadata:\n  annotations:\n    registry-resolver.io/registry: ${record.name}`;
  const named = (list) => list.filter((ns) => !ns.endsWith('*'));
  const show = (defaultHere) => {
    const authorized = named(record.namespaces)[0] || 'my-namespace';
    mount(body, defaultHere
      ? [h('p', {}, t('detail.howToUseBody', { namespace: defaultHere })),
        h('pre', { class: 'code', tabindex: 0 }, `kubectl create deployment mysql --image=/mysql/mysql:5.6 -n ${defaultHere}`),
        h('p', {}, t('detail.annotationBody')),
        h('pre', { class: 'code', tabindex: 0 }, annotation)]
      : [h('p', {}, t('detail.howToUseAnnotated')),
        // kubectl run refuses a registry-relative image; create
        // deployment takes it, and the annotation on the Deployment picks
        // the registry for its pods.
        h('pre', { class: 'code', tabindex: 0 },
          `kubectl create deployment mysql --image=/mysql/mysql:5.6 -n ${authorized} --dry-run=client -o yaml \\\n`
          + `  | kubectl annotate --local -f - registry-resolver.io/registry=${record.name} -o yaml \\\n`
          + '  | kubectl apply -f -'),
        h('p', {}, t('detail.annotationTemplate')),
        h('pre', { class: 'code', tabindex: 0 }, annotation)]);
  };
  const candidates = named(record.defaultFor).slice(0, HOW_TO_USE_CANDIDATES);
  Promise.all(candidates.map((ns) => api('GET', `/namespaces/${enc(ns)}/registries`)
    .then((list) => (list.default && list.default.registry === record.name ? ns : null))
    .catch(() => null)))
    .then((answers) => show(answers.find(Boolean) || null));
  return h('section', { class: 'card', 'aria-labelledby': 'sec-use' },
    h('h2', { id: 'sec-use' }, t('detail.howToUse')), body);
}

/** The record's last changes, on its page. */
function recentChanges(record) {
  const body = h('div', {}, loading());
  const load = () => {
    mount(body, loading());
    api('GET', `/audit?registry=${enc(record.name)}&limit=5`)
      .then((trail) => mount(body,
        trail.items.length
          ? auditList(trail.items, { showRegistry: false })
          : h('p', { class: 'muted' }, t('audit.none')),
        h('p', {}, h('a', { href: `#/activity?registry=${enc(record.name)}` }, t('audit.all')))))
      .catch((error) => mount(body, errorState(error, load)));
  };
  load();
  return h('section', { class: 'card', 'aria-labelledby': 'sec-changes' },
    h('h2', { id: 'sec-changes' }, t('audit.recent')), body);
}

/** Every change, newest first, a page at a time; one record's with ?registry=. */
function activityPage(params) {
  const registry = params.get('registry') || '';
  const body = h('div', {});
  const list = h('div', {});
  const older = h('button', { type: 'button', class: 'btn', hidden: true }, t('audit.older'));
  let next = null;
  const path = () => `/audit?limit=50${registry ? `&registry=${enc(registry)}` : ''}${next ? `&continue=${enc(next)}` : ''}`;
  const more = async () => {
    older.disabled = true;
    try {
      const trail = await api('GET', path());
      if (!list.firstChild && !trail.items.length) {
        mount(list, h('div', { class: 'empty' }, h('h2', {}, t('audit.emptyTitle')), h('p', { class: 'muted' }, t('audit.emptyBody'))));
      } else {
        const rendered = auditList(trail.items, { showRegistry: !registry });
        const existing = list.querySelector('.audit-list');
        if (existing) existing.append(...rendered.children); else mount(list, rendered);
      }
      next = trail.metadata.continue || null;
      older.hidden = !next;
    } catch (error) {
      mount(list, errorState(error, () => { next = null; mount(list); more(); }));
    } finally {
      older.disabled = false;
    }
  };
  older.addEventListener('click', more);
  mount(body, list, older);
  page(t('audit.title'), h('div', { class: 'page-head' },
    h('h1', {}, registry ? t('audit.titleFor', { registry }) : t('audit.title')),
    registry ? h('a', { href: '#/activity' }, t('audit.showAll')) : null),
  h('p', { class: 'muted' }, t('audit.intro')),
  body);
  mount(list, loading());
  more();
}

/** Whether the nodes can pull from a registry that needs more than public
 * HTTPS: the node agents' count when they run, else what to set up. */
function nodeTrustBox(record, scheme) {
  const trust = record.nodeTrust;
  if (!trust) {
    return alertBox('warn', scheme === 'http' ? t('detail.nodeTrustHttp') : t('detail.nodeTrustCa'), ' ', t('detail.nodeTrustAgent'));
  }
  const kind = trust.failed ? 'warn' : trust.configured === trust.nodes ? 'ok' : 'info';
  return alertBox(kind, t('detail.nodeTrustCount', { configured: trust.configured, nodes: trust.nodes }),
    trust.failed ? h('ul', {}, (trust.failedNodes || []).map((n) => h('li', {}, h('span', { class: 'mono' }, n.node), ': ', n.message)),
      trust.failed > (trust.failedNodes || []).length ? h('li', {}, t('detail.nodeTrustMore', { count: trust.failed - trust.failedNodes.length })) : null) : null);
}

/** Repositories (filter as you type, paged), then a repository's tags. */
function repositoryBrowser(record, onPick) {
  const section = h('section', { class: 'card', 'aria-labelledby': 'sec-repos' });
  const filterId = id('repo-filter');
  const filter = h('input', { id: filterId, type: 'search', class: 'input', placeholder: t('browse.filter') });
  const results = h('div', { 'aria-live': 'polite' });
  const tagsBox = h('div', {});
  let controller = null;
  const load = async (append, last) => {
    if (controller) controller.abort();
    controller = new AbortController();
    const mine = controller;
    const cancel = h('button', { type: 'button', class: 'btn btn-ghost', onclick: () => mine.abort() }, t('action.cancel'));
    if (!append) mount(results, h('div', { class: 'inline' }, loading(t('browse.loading')), cancel));
    const query = new URLSearchParams({ limit: '50' });
    if (filter.value.trim()) query.set('q', filter.value.trim());
    if (last) query.set('continue', last);
    try {
      const listing = await api('GET', `/registries/${enc(record.name)}/repositories?${query}`, { signal: mine.signal, timeoutMs: 20000 });
      const list = append ? results.querySelector('ul') : h('ul', { class: 'repo-list' });
      for (const repo of listing.items) {
        list.append(h('li', {}, h('button', { type: 'button', class: 'link mono', onclick: () => loadTags(repo) }, repo)));
      }
      const searchFirst = record.browse === 'dockerhub' && !filter.value.trim();
      if (!append) {
        mount(results, listing.items.length ? list : h('p', { class: 'muted' }, searchFirst ? t('browse.typeToSearch') : t('browse.noRepos')),
          listing.source ? h('p', { class: 'muted small' }, t('browse.source', { method: t(`browse.method.${listing.source}`) })) : null);
      }
      const more = results.querySelector('.more');
      if (more) more.remove();
      if (listing.metadata.continue) {
        results.append(h('button', { type: 'button', class: 'btn more', onclick: () => load(true, listing.metadata.continue) }, t('browse.more')));
      }
    } catch (error) {
      if (error.code === 'browse_unsupported') {
        // This registry (or account) does not list: type the path, and
        // its tags are listed all the same.
        const pathId = id('repo-path');
        const path = h('input', { id: pathId, class: 'input mono', placeholder: 'library/nginx', spellcheck: 'false', autocomplete: 'off' });
        const go = (event) => {
          event.preventDefault();
          const repo = path.value.trim().replace(/^\/+/, '').replace(/:.*$/, '');
          if (repo) loadTags(repo);
        };
        filter.hidden = true;
        mount(results, alertBox('info', t('browse.unsupported')),
          h('form', { class: 'inline', onsubmit: go },
            h('label', { for: pathId, class: 'sr-only' }, t('browse.path')), path,
            h('button', { type: 'submit', class: 'btn' }, t('browse.listTags'))));
        return;
      }
      mount(results, alertBox(error.code === 'aborted' ? 'info' : 'error', error.code === 'aborted' ? t('browse.cancelled') : explain(error)),
        h('button', { type: 'button', class: 'btn', onclick: () => load(false) }, t('action.retry')));
    } finally {
      if (controller === mine) controller = null;
    }
  };
  const loadTags = async (repo, last) => {
    const query = new URLSearchParams({ limit: '20' });
    if (last) query.set('continue', last);
    if (!last) mount(tagsBox, loading(t('browse.loadingTags')));
    try {
      const listing = await api('GET', `/registries/${enc(record.name)}/repositories/${repo.split('/').map(enc).join('/')}/tags?${query}`, { timeoutMs: 20000 });
      const list = last ? tagsBox.querySelector('ul') : h('ul', { class: 'tag-list' });
      for (const tag of listing.items) {
        const path = `/${repo}:${tag}`;
        list.append(h('li', {}, onPick
          ? h('button', { type: 'button', class: 'link mono', onclick: () => onPick(path) }, tag)
          : h('span', { class: 'mono' }, tag), ' ', h('code', { class: 'muted small' }, path)));
      }
      if (!last) {
        mount(tagsBox, h('h3', {}, t('browse.tagsOf', { repo })), listing.items.length ? list : h('p', { class: 'muted' }, t('browse.noTags')));
      }
      const more = tagsBox.querySelector('.more');
      if (more) more.remove();
      if (listing.metadata.continue) tagsBox.append(h('button', { type: 'button', class: 'btn more', onclick: () => loadTags(repo, listing.metadata.continue) }, t('browse.more')));
    } catch (error) {
      mount(tagsBox, alertBox('error', explain(error)));
    }
  };
  filter.addEventListener('input', debounce(() => load(false), 250));
  mount(section, h('h2', { id: 'sec-repos' }, t('browse.title')),
    h('label', { for: filterId, class: 'sr-only' }, t('browse.filter')), filter,
    h('div', { class: 'browse' }, results, tagsBox));
  load(false);
  return section;
}

// ---------- the workload form and image picker ----------

function workloadPage(params) {
  const state = {
    namespace: params.get('namespace') || '',
    // False while the namespace field holds something that is not a
    // namespace name: one message at the field, no request that would fail.
    namespaceValid: true,
    registries: [],
    registry: params.get('registry') || '',
    name: 'mysql',
    replicas: 1,
    containers: [{ name: 'mysql', image: '/mysql/mysql:5.6', ports: '3306', env: [{ name: 'MYSQL_ROOT_PASSWORD', mode: 'secret', value: '', secret: 'mysql-secret', key: 'password' }], requests: { cpu: '', memory: '' }, limits: { cpu: '', memory: '' } }],
  };
  const nsId = id('ns');
  const ns = h('input', { id: nsId, class: 'input', value: state.namespace, spellcheck: 'false', autocomplete: 'off' });
  const nsError = fieldError(ns);
  // The namespaces the server knows (the cluster's, or those the records
  // name), offered as the field is typed in.
  const nsSuggestions = h('datalist', { id: id('ns-known') });
  ns.setAttribute('list', nsSuggestions.id);
  const regId = id('reg');
  const registrySelect = h('select', { id: regId, class: 'input' });
  const regStatus = h('div', { 'aria-live': 'polite' });
  const failing = h('div', { 'aria-live': 'polite' });
  const containersBox = h('div', {});
  const output = h('div', {});
  const browserBox = h('div', {});

  const loadRegistries = async () => {
    state.namespace = ns.value.trim();
    state.namespaceValid = true;
    showFieldError(ns, nsError, '');
    mount(regStatus, loading());
    // The server says which registry is the default here and why (names,
    // patterns and the precedence between them are its rule, not ours).
    let chosen = null;
    try {
      const list = await api('GET', `/namespaces/${enc(state.namespace)}/registries`);
      // Healthy first: a registry whose last check failed is offered
      // last, and says so (the server keeps its order within each group).
      state.registries = PICKER_ORDER.flatMap((kind) => list.items.filter((r) => statusOf(r).kind === kind));
      chosen = list.default || null;
      const why = chosen ? h('p', { class: 'muted small' },
        chosen.by === 'selector'
          ? t('workload.defaultBySelector', { name: chosen.registry, via: chosen.via })
          : chosen.by === 'pattern'
            ? t('workload.defaultByPattern', { name: chosen.registry, via: chosen.via })
            : t('workload.defaultByName', { name: chosen.registry, ns: state.namespace }),
        chosen.outranked.length ? ` ${t('workload.defaultOutranked', { names: chosen.outranked.join(', ') })}` : '') : null;
      mount(regStatus, state.registries.length ? why : alertBox('warn', t('workload.noRegistries', { ns: state.namespace })));
    } catch (error) {
      state.registries = [];
      if (error.status === 422 && error.field === 'namespace') {
        // Said once, at the field; nothing else asks the server meanwhile.
        state.namespaceValid = false;
        showFieldError(ns, nsError, error.message);
        mount(regStatus);
      } else {
        mount(regStatus, alertBox('error', explain(error)));
      }
    }
    state.defaultRegistry = chosen ? chosen.registry : '';
    if (!state.registries.some((r) => r.name === state.registry)) state.registry = '';
    mount(registrySelect,
      h('option', { value: '', selected: state.registry === '' },
        chosen ? t('workload.useDefault', { name: chosen.registry }) : t('workload.noDefault')),
      state.registries.map((r) => h('option', { value: r.name, selected: r.name === state.registry },
        `${r.name} — ${r.server.replace(/^https?:\/\//, '')}${chosen && chosen.registry === r.name ? ` (${t('detail.default')})` : ''}`
        + (statusOf(r).kind === 'bad' ? ` · ${t('workload.lastCheckFailed')}` : ''))));
    warnIfFailing();
    renderContainers();
  };
  // The registry images will come from, if its last check failed: pods
  // would fail to pull, so say it where the choice is made.
  const warnIfFailing = () => {
    const name = state.registry || state.defaultRegistry;
    const record = state.registries.find((r) => r.name === name);
    mount(failing, record && statusOf(record).kind === 'bad'
      ? alertBox('warn', t('workload.registryFailing', { name }), ' ', record.status.message || '')
      : null);
  };
  registrySelect.addEventListener('change', () => {
    state.registry = registrySelect.value;
    warnIfFailing();
    renderContainers();
  });
  ns.addEventListener('input', debounce(loadRegistries, 300));

  const preview = async (container, box) => {
    if (!state.namespaceValid || !state.namespace) {
      mount(box);
      return;
    }
    if (!container.image.startsWith('/')) {
      mount(box, h('p', { class: 'muted small' }, t('workload.notRelative')));
      return;
    }
    const body = { image: container.image };
    if (state.registry) body.registry = state.registry;
    try {
      const resolved = await api('POST', `/namespaces/${enc(state.namespace)}/resolve`, { body });
      mount(box, h('p', { class: 'preview ok' }, h('span', { 'aria-hidden': 'true' }, '→ '), h('code', {}, resolved.image),
        resolved.pullSecret ? h('span', { class: 'muted small preview-note' }, t('workload.withSecret', { secret: resolved.pullSecret })) : null));
    } catch (error) {
      mount(box, h('p', { class: 'preview bad', role: 'alert' }, '✕ ', error.code === 'resolution_denied' ? t('workload.denied', { message: error.message }) : explain(error)));
    }
  };

  const renderContainers = () => {
    mount(containersBox, state.containers.map((c, index) => {
      const previewBox = h('div', { 'aria-live': 'polite' });
      const imgId = id('img');
      const image = h('input', { id: imgId, class: 'input mono', value: c.image, spellcheck: 'false', autocomplete: 'off', placeholder: '/mysql/mysql:5.6' });
      const update = debounce(() => { c.image = image.value.trim(); preview(c, previewBox); renderOutput(); }, 250);
      image.addEventListener('input', update);
      const nameInput = h('input', { class: 'input', value: c.name, spellcheck: 'false', autocomplete: 'off' });
      nameInput.addEventListener('input', () => { c.name = nameInput.value.trim(); renderOutput(); });
      const ports = h('input', { class: 'input', value: c.ports, placeholder: '3306', inputmode: 'numeric' });
      const portsError = fieldError(ports);
      const checkPorts = () => {
        const { bad } = parsePorts(c.ports);
        showFieldError(ports, portsError, bad.length ? t('workload.badPort', { value: bad.join(', ') }) : '');
      };
      ports.addEventListener('input', () => { c.ports = ports.value; checkPorts(); renderOutput(); });
      const browse = h('button', { type: 'button', class: 'btn', onclick: () => {
        const target = state.registry || state.defaultRegistry;
        const record = state.registries.find((r) => r.name === target);
        if (!record) {
          mount(browserBox, alertBox('warn', t('workload.chooseRegistry')));
          return;
        }
        mount(browserBox, repositoryBrowser(record, (path) => {
          image.value = path;
          c.image = path;
          preview(c, previewBox);
          renderOutput();
          mount(browserBox);
          image.focus();
        }));
        // The panel opens below every container: bring it into view and
        // put the cursor in its filter, or the click seems to do nothing.
        browserBox.scrollIntoView({ block: 'start' });
        const filter = browserBox.querySelector('input');
        if (filter) filter.focus({ preventScroll: true });
      } }, t('workload.browse'));
      const envBox = h('div', { class: 'env' });
      const renderEnv = () => mount(envBox, c.env.map((e, i) => {
        const mode = h('select', { class: 'input', 'aria-label': t('workload.envKind', { name: e.name || i + 1 }) },
          h('option', { value: 'value', selected: e.mode === 'value' }, t('workload.envValue')),
          h('option', { value: 'secret', selected: e.mode === 'secret' }, t('workload.envSecret')));
        const envName = h('input', { class: 'input mono', value: e.name, 'aria-label': t('workload.envName'), placeholder: 'NAME' });
        envName.addEventListener('input', () => {
          const looksSecret = /PASSWORD|SECRET|TOKEN|KEY/i.test(envName.value);
          e.name = envName.value.trim();
          if (looksSecret && e.mode === 'value' && !e.value) { e.mode = 'secret'; renderEnv(); envBox.querySelectorAll('input')[i * 3].focus(); }
          renderOutput();
        });
        mode.addEventListener('change', () => { e.mode = mode.value; renderEnv(); renderOutput(); });
        const fields = e.mode === 'secret'
          ? [h('input', { class: 'input mono', value: e.secret, 'aria-label': t('workload.secretName'), placeholder: 'mysql-secret', oninput: (ev) => { e.secret = ev.target.value.trim(); renderOutput(); } }),
            h('input', { class: 'input mono', value: e.key, 'aria-label': t('workload.secretKey'), placeholder: 'password', oninput: (ev) => { e.key = ev.target.value.trim(); renderOutput(); } })]
          : [h('input', { class: 'input', value: e.value, 'aria-label': t('workload.envValue'), oninput: (ev) => { e.value = ev.target.value; renderOutput(); } })];
        return h('div', { class: 'env-row' }, envName, mode, ...fields,
          h('button', { type: 'button', class: 'btn btn-ghost btn-icon', 'aria-label': t('workload.removeEnv', { name: e.name || i + 1 }), onclick: () => { c.env.splice(i, 1); renderEnv(); renderOutput(); } }, '×'));
      }), h('button', { type: 'button', class: 'btn btn-small', onclick: () => { c.env.push({ name: '', mode: 'value', value: '', secret: '', key: '' }); renderEnv(); renderOutput(); } }, t('workload.addEnv')));
      renderEnv();
      const resource = (group, key, label, placeholder) => {
        const input = h('input', { class: 'input', value: c[group][key], placeholder, 'aria-label': label });
        const error = fieldError(input);
        const check = () => showFieldError(input, error,
          c[group][key] && !isQuantity(c[group][key]) ? t('workload.badQuantity', { value: c[group][key] }) : '');
        input.addEventListener('input', () => { c[group][key] = input.value.trim(); check(); renderOutput(); });
        check();
        return h('div', { class: 'mini' }, h('label', { class: 'label', for: input.id }, label), input, error);
      };
      preview(c, previewBox);
      checkPorts();
      return h('fieldset', { class: 'card container' },
        h('legend', {}, t('workload.container', { n: index + 1 })),
        h('div', { class: 'field' }, h('label', { class: 'label', for: imgId }, t('workload.image')),
          h('div', { class: 'input-group' }, image, browse), previewBox),
        h('div', { class: 'grid-2' },
          h('label', { class: 'field' }, h('span', { class: 'label' }, t('field.name')), nameInput),
          h('div', { class: 'field' }, h('label', { class: 'label', for: ports.id }, t('workload.ports')), ports, portsError)),
        h('div', { class: 'field' }, h('span', { class: 'label' }, t('workload.env')), envBox),
        h('details', { class: 'advanced' }, h('summary', {}, t('workload.resources')),
          h('div', { class: 'grid-4' },
            resource('requests', 'cpu', t('workload.requestsCpu'), '250m'),
            resource('requests', 'memory', t('workload.requestsMemory'), '256Mi'),
            resource('limits', 'cpu', t('workload.limitsCpu'), '1'),
            resource('limits', 'memory', t('workload.limitsMemory'), '512Mi'))),
        state.containers.length > 1 ? h('button', { type: 'button', class: 'btn btn-ghost', onclick: () => { state.containers.splice(index, 1); renderContainers(); } }, t('workload.removeContainer')) : null);
    }), h('button', { type: 'button', class: 'btn', onclick: () => {
      state.containers.push({ name: `app-${state.containers.length + 1}`, image: '', ports: '', env: [], requests: { cpu: '', memory: '' }, limits: { cpu: '', memory: '' } });
      renderContainers();
    } }, t('workload.addContainer')));
    renderOutput();
  };

  const deploymentName = h('input', { class: 'input', value: state.name, spellcheck: 'false', autocomplete: 'off' });
  deploymentName.addEventListener('input', () => { state.name = deploymentName.value.trim(); renderOutput(); });
  const replicas = h('input', { class: 'input', type: 'number', min: 0, value: state.replicas });
  replicas.addEventListener('input', () => { state.replicas = Number(replicas.value) || 0; renderOutput(); });

  // The result of "Create in the cluster" outlives re-renders of the output
  // (a debounced keystroke may re-render while the request is in flight); it
  // is cleared only when the manifest itself changes.
  const createResult = h('div', { 'aria-live': 'polite' });
  let creating = false;
  let renderedYaml = null;
  /** Copy and Download buttons for `text`, saved as `file`. */
  const saveButtons = (text, file) => {
    const copy = h('button', { type: 'button', class: 'btn', onclick: async () => {
      try {
        await navigator.clipboard.writeText(text);
        copy.textContent = t('workload.copied');
      } catch (e) {
        copy.textContent = t('workload.copyFailed');
      }
      setTimeout(() => { copy.textContent = t('workload.copy'); }, 2000);
    } }, t('workload.copy'));
    const download = h('a', { class: 'btn', download: file, href: URL.createObjectURL(new Blob([text], { type: 'application/yaml' })) }, t('workload.download'));
    return [copy, download];
  };
  /** `kubectl create secret generic` for the Secrets the env refers to. */
  const envSecretCommands = () => {
    const secrets = state.containers.flatMap((c) => c.env.filter((e) => e.mode === 'secret' && e.secret));
    return [...new Set(secrets.map((e) => e.secret))].map((secret) => `kubectl create secret generic ${secret} -n ${state.namespace} ${secrets.filter((e) => e.secret === secret).map((e) => `--from-literal=${e.key || 'value'}=<${t('workload.secretValue')}>`).join(' ')}`);
  };

  // In a cluster with the webhook (Kubernetes mode) the manifest keeps the
  // registry-relative paths: the webhook expands them at admission, and
  // Create submits it with the signed-in user's own token.
  const renderClusterOutput = () => {
    const yaml = deploymentYaml(state);
    if (renderedYaml !== null && yaml !== renderedYaml && !creating) mount(createResult);
    renderedYaml = yaml;
    const first = state.containers[0] || { image: '' };
    const commands = [
      ...envSecretCommands(),
      `kubectl apply -n ${state.namespace} -f ${state.name || 'deployment'}.yaml`,
      `# ${t('workload.orSimply')}`,
      `kubectl create deployment ${state.name || 'app'} -n ${state.namespace} --image=${first.image}`,
    ];
    // Created with the signed-in user's own token, so RBAC and admission
    // (this webhook included) apply as they do for kubectl.
    const create = h('button', { type: 'button', class: 'btn btn-primary', disabled: creating, onclick: async () => {
      if (creating) return;
      creating = true;
      create.disabled = true;
      mount(createResult, loading(t('workload.creating')));
      try {
        const stored = await api('POST', `/namespaces/${enc(state.namespace)}/deployments`, { body: deploymentObject(state) });
        const containers = ((stored.spec || {}).template || {}).spec?.containers || [];
        mount(createResult, alertBox('ok', h('p', {}, '✓ ', t('workload.created', { name: stored.metadata.name, ns: state.namespace })),
          h('ul', {}, containers.map((c) => h('li', {}, h('span', { class: 'mono' }, `${c.name}: ${c.image}`))))));
      } catch (error) {
        mount(createResult, alertBox('error', explain(error)));
      } finally {
        creating = false;
        for (const button of output.querySelectorAll('button[data-create]')) button.disabled = false;
      }
    } }, t('workload.create'));
    create.dataset.create = '';
    mount(output,
      h('div', { class: 'page-head' }, h('h2', {}, t('workload.manifest')),
        h('div', { class: 'actions' }, create, ...saveButtons(yaml, `${state.name || 'deployment'}.yaml`))),
      createResult,
      h('pre', { class: 'code manifest', tabindex: 0, 'aria-label': t('workload.manifest') }, yaml),
      h('h3', {}, t('workload.commands')),
      h('pre', { class: 'code', tabindex: 0 }, commands.join('\n')),
      state.registry ? h('p', { class: 'muted small' }, t('workload.annotationNote', { name: state.registry })) : null);
  };

  // Without the webhook in the cluster (the embedded store) the page ends
  // with what can be applied as it is: the manifest resolved by the server
  // (the webhook's own code), the pull Secret's command with every value
  // but the password, and the apply command.
  let resolving = null;
  const renderResolvedOutput = debounce(async () => {
    if (resolving) resolving.abort();
    if (!state.namespaceValid || !state.namespace) {
      mount(output, h('h2', {}, t('workload.resolvedManifest')), h('p', { class: 'muted' }, t('workload.chooseNamespace')));
      return;
    }
    const mine = new AbortController();
    resolving = mine;
    const file = `${state.name || 'deployment'}.yaml`;
    let answer;
    try {
      answer = await api('POST', `/namespaces/${enc(state.namespace)}/workloads:resolve`,
        { body: deploymentObject(state), signal: mine.signal });
    } catch (error) {
      if (mine.signal.aborted) return;
      mount(output, h('h2', {}, t('workload.resolvedManifest')),
        alertBox('error', error.code === 'resolution_denied' ? t('workload.denied', { message: error.message }) : explain(error)));
      return;
    }
    if (mine.signal.aborted) return;
    const yaml = `${toYaml(answer.object)}\n`;
    const commands = [
      ...answer.pullSecrets.map((secret) => `kubectl create secret docker-registry ${secret.name} -n ${state.namespace} `
        + `--docker-server=${secret.server} --docker-username=${secret.username} --docker-password=<${t('workload.passwordOf', { name: secret.registry })}>`),
      ...envSecretCommands(),
      `kubectl apply -n ${state.namespace} -f ${file}`,
    ];
    mount(output,
      h('div', { class: 'page-head' }, h('h2', {}, t('workload.resolvedManifest')),
        h('div', { class: 'actions' }, ...saveButtons(yaml, file))),
      h('p', { class: 'muted small' }, t('workload.resolvedNote')),
      answer.warnings.length ? alertBox('warn', h('ul', {}, answer.warnings.map((w) => h('li', {}, w)))) : null,
      h('pre', { class: 'code manifest', tabindex: 0, 'aria-label': t('workload.resolvedManifest') }, yaml),
      h('h3', {}, t('workload.commands')),
      answer.pullSecrets.length ? h('p', { class: 'muted small' }, t('workload.pullSecretNote')) : null,
      h('pre', { class: 'code commands', tabindex: 0 }, commands.join('\n')));
  }, 250);

  const renderOutput = () => {
    if (info.store === 'kubernetes') {
      renderClusterOutput();
      return;
    }
    // Until the first answer the card says it is working, not nothing.
    if (!output.hasChildNodes()) mount(output, h('h2', {}, t('workload.resolvedManifest')), loading());
    renderResolvedOutput();
  };

  page(t('workload.title'),
    h('div', { class: 'page-head' }, h('h1', {}, t('workload.title'))),
    h('p', { class: 'muted' }, t('workload.intro')),
    h('div', { class: 'workload' },
      h('div', { class: 'workload-form' },
        h('section', { class: 'card' },
          h('div', { class: 'grid-2' },
            h('div', { class: 'field' }, h('label', { class: 'label', for: nsId }, t('workload.namespace')), ns, nsSuggestions, nsError),
            h('div', { class: 'field' }, h('label', { class: 'label', for: regId }, t('workload.registry')), registrySelect)),
          regStatus,
          failing,
          h('div', { class: 'grid-2' },
            h('label', { class: 'field' }, h('span', { class: 'label' }, t('workload.deploymentName')), deploymentName),
            h('label', { class: 'field' }, h('span', { class: 'label' }, t('workload.replicas')), replicas))),
        containersBox, browserBox),
      h('section', { class: 'card workload-output' }, output)));
  // Without a namespace in the link, start in the first one the server
  // knows rather than in one where nothing is authorized.
  api('GET', '/namespaces')
    .then((known) => {
      mount(nsSuggestions, known.items.map((name) => h('option', { value: name })));
      if (!ns.value) ns.value = known.items[0] || 'default';
    })
    .catch(() => { if (!ns.value) ns.value = 'default'; })
    .finally(loadRegistries);
}

/**
 * Container ports from "80, 443": the valid ones, and what is not a port
 * (said at the field, never dropped without a word).
 */
function parsePorts(text) {
  const tokens = text.split(/[\s,]+/).filter(Boolean);
  const valid = (token) => /^\d+$/.test(token) && Number(token) > 0 && Number(token) < 65536;
  return { ports: tokens.filter(valid).map(Number), bad: tokens.filter((token) => !valid(token)) };
}

/** A Kubernetes resource quantity (`250m`, `1.5`, `512Mi`, `1e3`), as the API server reads one. */
function isQuantity(text) {
  return /^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?$/.test(text);
}

/** The Deployment as the API takes it (what deploymentYaml writes out). */
function deploymentObject(state) {
  const name = state.name || 'app';
  const template = { metadata: { labels: { app: name } }, spec: { containers: [] } };
  if (state.registry) template.metadata.annotations = { 'registry-resolver.io/registry': state.registry };
  for (const c of state.containers) {
    const container = { name: c.name || 'app', image: c.image };
    const { ports } = parsePorts(c.ports);
    if (ports.length) container.ports = ports.map((containerPort) => ({ containerPort }));
    const env = c.env.filter((e) => e.name).map((e) => (e.mode === 'secret'
      ? { name: e.name, valueFrom: { secretKeyRef: { name: e.secret || 'secret', key: e.key || 'value' } } }
      : { name: e.name, value: e.value }));
    if (env.length) container.env = env;
    const pick = (values) => Object.fromEntries(Object.entries(values).filter(([, v]) => v && isQuantity(v)));
    const resources = {};
    if (Object.keys(pick(c.requests)).length) resources.requests = pick(c.requests);
    if (Object.keys(pick(c.limits)).length) resources.limits = pick(c.limits);
    if (Object.keys(resources).length) container.resources = resources;
    template.spec.containers.push(container);
  }
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: state.namespace },
    spec: { replicas: Number(state.replicas) || 0, selector: { matchLabels: { app: name } }, template },
  };
}

/**
 * A JSON value as block YAML: strings always double-quoted (JSON's own
 * escaping, which YAML reads), numbers and booleans bare, keys as they are
 * (ours are plain words). The Deployment is built once, by
 * deploymentObject; this only writes it out.
 */
function toYaml(value, indent = '') {
  const scalar = (v) => (typeof v === 'string' ? JSON.stringify(v) : String(v));
  const nested = (v) => v !== null && typeof v === 'object';
  if (Array.isArray(value)) {
    return value.map((item) => {
      if (!nested(item)) return `${indent}- ${scalar(item)}`;
      const [first, ...rest] = toYaml(item, `${indent}  `).split('\n');
      return [`${indent}- ${first.slice(indent.length + 2)}`, ...rest].join('\n');
    }).join('\n');
  }
  return Object.entries(value).map(([key, v]) => (nested(v)
    ? `${indent}${key}:\n${toYaml(v, Array.isArray(v) ? indent : `${indent}  `)}`
    : `${indent}${key}: ${scalar(v)}`)).join('\n');
}

/** The Deployment as YAML, from the one builder. */
function deploymentYaml(state) {
  return `${toYaml(deploymentObject(state))}\n`;
}

// ---------- start ----------

async function start() {
  const lang = document.getElementById('lang');
  lang.value = currentLang();
  lang.addEventListener('change', () => {
    setLang(lang.value);
    applyStatic();
    route();
  });
  document.getElementById('signout').addEventListener('click', () => {
    session.signOut();
    location.hash = '#/signin';
  });
  applyStatic();
  try {
    info = await api('GET', '/info', { auth: false });
  } catch (e) {
    info = { store: 'embedded' };
  }
  window.addEventListener('hashchange', route);
  route();
}

start();
