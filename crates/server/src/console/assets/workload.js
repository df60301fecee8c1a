// The workload form and image picker; on the embedded store it ends with
// a manifest resolved by the server to apply.

import { api, enc } from './api.js';
import { debounce, h, id, mount } from './dom.js';
import { t } from './i18n.js';
import { repositoryBrowser } from './browse.js';
import { alertBox, deniedMessage, explain, fieldError, info, loading, page, PICKER_ORDER, showFieldError, statusOf } from './ui.js';

// ---------- the workload form and image picker ----------

export function workloadPage(params) {
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
    if (!container.image) {
      mount(box);
      return;
    }
    const body = { image: container.image };
    if (state.registry) body.registry = state.registry;
    try {
      // The server decides what is registry-relative (the reference
      // grammar): an image it leaves as written comes back without a
      // registry.
      const resolved = await api('POST', `/namespaces/${enc(state.namespace)}/resolve`, { body });
      if (resolved.registry === null || resolved.registry === undefined) {
        // Left as written; a mirror that could have taken it says why not.
        mount(box, h('p', { class: 'muted small' }, t('workload.notRelative')),
          resolved.warning ? h('p', { class: 'preview warn small', lang: 'en' }, resolved.warning) : null);
        return;
      }
      mount(box, h('p', { class: 'preview ok' }, h('span', { 'aria-hidden': 'true' }, '→ '), h('code', {}, resolved.image),
        resolved.mirrorOf ? h('span', { class: 'muted small preview-note' }, t('workload.viaMirror', { registry: resolved.registry, upstream: resolved.mirrorOf })) : null,
        resolved.pullSecret ? h('span', { class: 'muted small preview-note' }, t('workload.withSecret', { secret: resolved.pullSecret })) : null));
    } catch (error) {
      mount(box, h('p', { class: 'preview bad', role: 'alert' }, '✕ ', error.code === 'resolution_denied' ? deniedMessage(error) : explain(error)));
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
        alertBox('error', error.code === 'resolution_denied' ? deniedMessage(error) : explain(error)));
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
