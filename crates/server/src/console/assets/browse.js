// Browsing a registry: repositories, then a repository's tags.

import { api, enc } from './api.js';
import { debounce, h, id, mount } from './dom.js';
import { t } from './i18n.js';
import { alertBox, explain, loading } from './ui.js';

/** Repositories (filter as you type, paged), then a repository's tags. */
export function repositoryBrowser(record, onPick) {
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
