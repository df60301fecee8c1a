// The activity page: the audit trail, a page at a time.

import { api, enc } from './api.js';
import { h, mount } from './dom.js';
import { t } from './i18n.js';
import { auditList, errorState, loading, page } from './ui.js';

/** Every change, newest first, a page at a time; one record's with ?registry=. */
export function activityPage(params) {
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
