// The registries list: search, sort, paging and multi-select delete, all
// done by the server.

import { api, enc } from './api.js';
import { debounce, h, id, mount } from './dom.js';
import { t } from './i18n.js';
import { registryDialog } from './dialog.js';
import { alertBox, confirmDialog, errorState, formatTime, loading, page, serverBadges, statusChip } from './ui.js';

// ---------- registries list ----------

// The server pages, filters and sorts (GET /registries with limit, continue,
// q, sort, order), so the list stays fast with thousands of records. A page
// is reached through the continue tokens of the pages before it, kept here.
export const listState = { q: '', sort: 'name', dir: 1, page: 0, size: 20, tokens: [null], selected: new Set(), notice: null };

function resetPaging() {
  listState.page = 0;
  listState.tokens = [null];
}

export async function listPage() {
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
        r.namespaceSelector ? [' ', h('span', { class: 'badge', title: r.namespaceSelectorText }, t('list.byLabels'))] : null),
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
