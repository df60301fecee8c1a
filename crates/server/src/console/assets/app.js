// The console: hash routes to the pages, each in its own module (sign-in,
// the registries list, a registry's page, the dialog, activity, the
// workload form). A reload or a shared link lands on the page.

import { api, enc, onUnauthorized, session } from './api.js';
import { applyStatic, currentLang, setLang } from './i18n.js';
import { activityPage } from './activity.js';
import { listPage } from './list.js';
import { registryPage } from './registry.js';
import { signInPage } from './signin.js';
import { info, onRerender } from './ui.js';
import { workloadPage } from './workload.js';

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
    Object.assign(info, await api('GET', '/info', { auth: false }));
  } catch (e) {
    // Without an answer the console assumes the embedded store.
  }
  onRerender(route);
  window.addEventListener('hashchange', route);
  route();
}

start();
