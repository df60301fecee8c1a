// A registry's page: status, connection, authorized namespaces and where
// the pull Secret is, how to use it, node trust, recent changes.

import { api, enc } from './api.js';
import { h, id, mount } from './dom.js';
import { currentLang, t } from './i18n.js';
import { repositoryBrowser } from './browse.js';
import { registryDialog } from './dialog.js';
import { listState } from './list.js';
import { alertBox, auditList, confirmDialog, errorState, explain, formatTime, loading, page, schemeOf, serverBadges, statusChip, takeWarnings } from './ui.js';

/** Where a namespace entry's pull Secret is in place: one namespace, or how many a pattern reaches. */
function pullSecretChip(record, entry) {
  // The server places each namespace under the entries that reach it.
  const placement = (record.pullSecrets.byEntry || []).find((p) => p.entry === entry);
  const placed = placement ? placement.namespaces : [];
  if (entry.endsWith('*')) {
    return h('span', { class: `chip ${placed.length ? 'chip-ok' : 'chip-none'}` }, placed.length ? '✓ ' : '○ ',
      t('detail.pullSecretPattern', { secret: record.pullSecretName, n: placed.length }));
  }
  return placed.length
    ? h('span', { class: 'chip chip-ok' }, '✓ ', t('detail.pullSecretPresent', { secret: record.pullSecretName }))
    : h('span', { class: 'chip chip-none' }, '○ ', t('detail.pullSecretMissing', { secret: record.pullSecretName }));
}

/**
 * How far the record's pull Secrets are in line: a rotation or a record
 * for thousands of namespaces is written at the leader's paced rate, so
 * while it goes on the line is read again every few seconds, for as long
 * as it is on the page.
 */
function replicationProgress(record) {
  const box = h('div', { class: 'replication', role: 'status', 'aria-live': 'polite' });
  const show = (again) => {
    if (!replicating(again)) {
      box.replaceChildren();
      return false;
    }
    const progress = again.pullSecrets.progress;
    const format = new Intl.NumberFormat(currentLang());
    box.replaceChildren(
      h('progress', { max: String(progress.authorized), value: String(progress.replicated), 'aria-hidden': 'true' }),
      h('span', {}, t('detail.replicating', { n: format.format(progress.replicated), total: format.format(progress.authorized) })));
    return true;
  };
  const poll = () => setTimeout(async () => {
    if (!box.isConnected) return;
    try {
      const again = await api('GET', `/registries/${enc(record.name)}`, { quiet: true });
      if (!box.isConnected) return;
      // Done: the whole page again, for where each Secret now is.
      if (show(again)) poll(); else registryPage(record.name);
    } catch (error) {
      // Gone, or no longer ours to read: nothing more to follow. A
      // network blip: try again.
      if (box.isConnected && !(error.status >= 400 && error.status < 500)) poll();
    }
  }, PROGRESS_POLL_MS);
  if (show(record)) poll();
  return box;
}

const PROGRESS_POLL_MS = 3000;

/** Whether the leader is writing the record's pull Secrets now. */
function replicating(record) {
  const secrets = record.pullSecrets;
  return Boolean(secrets && secrets.replicating && secrets.progress);
}

// ---------- a registry's page ----------

export async function registryPage(name) {
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
        // The server says whether the nodes must be configured for it.
        record.needsNodeTrust ? nodeTrustBox(record, scheme) : null),
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
      record.pullSecrets ? replicationProgress(record) : null,
      record.pullSecrets && !record.pullSecrets.ready && record.pullSecrets.message
        ? alertBox('warn', t('detail.pullSecretsIncomplete'), ' ', record.pullSecrets.message) : null,
      record.namespaceSelector ? h('p', {}, record.namespaces.length ? t('detail.byLabels') : t('detail.byLabelsOnly'), ' ',
        h('code', { class: 'mono' }, record.namespaceSelectorText),
        record.defaultForSelector ? [' ', h('span', { class: 'badge badge-default' }, t('detail.default')),
          record.defaultForSelectorText !== record.namespaceSelectorText
            ? [' ', h('code', { class: 'mono' }, record.defaultForSelectorText)] : null] : null) : null,
      h('ul', { class: 'ns-list' }, record.namespaces.map((ns) => h('li', {},
        h('span', { class: 'mono' }, ns),
        record.defaultFor.includes(ns) ? h('span', { class: 'badge badge-default' }, t('detail.default')) : null,
        record.pullSecrets && !replicating(record) ? pullSecretChip(record, ns) : null,
        ns.endsWith('*') ? null : [' ', h('a', { href: `#/workload?namespace=${enc(ns)}&registry=${enc(record.name)}`, class: 'small' }, t('detail.useHere'))])))),
    (record.mirrorOf || []).length ? mirrorsCard(record) : null,
    howToUse(record),
    recentChanges(record),
    repositoryBrowser(record));
}

/** The upstream registries the record mirrors, and how. */
function mirrorsCard(record) {
  const host = record.server.replace(/^https?:\/\//, '');
  return h('section', { class: 'card', 'aria-labelledby': 'sec-mirrors' },
    h('h2', { id: 'sec-mirrors' }, t('dialog.mirrors')),
    h('ul', { class: 'mirror-summary' }, record.mirrorOf.map((entry) => h('li', {},
      h('code', { class: 'mono' }, entry.upstream), ' → ',
      h('code', { class: 'mono' }, entry.pathPrefix ? `${host}/${entry.pathPrefix}` : host), ' ',
      h('span', { class: 'badge' }, t(`mirrorMode.${entry.mode || 'rewrite'}`)),
      entry.fallback === 'deny' ? [' ', h('span', { class: 'badge badge-warn' }, t('fallback.deny'))] : null,
      entry.checkUpstream ? [' ', h('span', { class: 'badge' }, t('field.checkUpstream'))] : null,
      (entry.excludes || []).length
        ? h('p', { class: 'muted small' }, t('detail.mirrorExcludes'), ' ', h('span', { class: 'mono' }, entry.excludes.join(', '))) : null))));
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
      : [h('p', {}, record.defaultForSelectorText
        ? t('detail.howToUseSelector', { selector: record.defaultForSelectorText })
        : t('detail.howToUseAnnotated')),
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
