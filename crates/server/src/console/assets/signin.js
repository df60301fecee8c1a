// The sign-in page.

import { api, session } from './api.js';
import { h, id, mount } from './dom.js';
import { t } from './i18n.js';
import { alertBox, info, page } from './ui.js';

// ---------- sign-in ----------

export function signInPage(next) {
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
