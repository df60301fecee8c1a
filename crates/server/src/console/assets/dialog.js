// The create and edit dialog of a registry, validated by the server as it
// is typed (`?dryRun=All`).

import { api, ApiError, enc } from './api.js';
import { debounce, h, id, mount } from './dom.js';
import { t } from './i18n.js';
import { mirrorEditor } from './mirrors.js';
import { alertBox, explain, fieldError, fieldMessage, info, loading, openDialog, rerender, SAID_AT_FIELD, schemeOf, showFieldError } from './ui.js';

// ---------- create and edit ----------

const FIELD_OF = (path) => path.replace(/\[\d+\]$/, '').replace(/^(namespaceSelector|defaultForSelector)\b.*/, 'namespaceSelector')
  .replace(/^mirrorOf\b.*/, 'mirrorOf');

export function registryDialog(existing) {
  const editing = Boolean(existing);
  openDialog(editing ? t('dialog.editTitle', { name: existing.name }) : t('dialog.createTitle'), (close) => {
    const fields = {};
    const errors = {};
    const field = (key, label, control, help) => {
      errors[key] = fieldError(control);
      fields[key] = control;
      return h('div', { class: 'field', dataset: { field: key } },
        h('label', { for: control.id, class: 'label' }, label),
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
    // only in a cluster). The selector is edited in the short form
    // `kubectl -l` takes; the server writes it and reads it back.
    const byLabels = info.store === 'kubernetes' || Boolean(current.namespaceSelector);
    const selectorInput = h('input', { class: 'input mono', value: current.namespaceSelectorText || '',
      placeholder: 'kubesphere.io/workspace=ws1', spellcheck: 'false', autocomplete: 'off' });
    const selectorDefault = h('input', { type: 'checkbox', checked: Boolean(current.defaultForSelector) });
    const defaults = h('div', { class: 'checks', tabindex: -1 });
    // The fieldset's own error line, like every other field's: a default
    // another record holds is said here, not above the form.
    const defaultsError = fieldError(defaults);
    errors.defaultFor = defaultsError;
    fields.defaultFor = defaults;
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
    // Mirrors: a fieldset of entries with one error line, like the defaults'.
    const mirrors = mirrorEditor(current.mirrorOf, () => edited('mirrorOf'));
    const mirrorSet = h('fieldset', { class: 'field', dataset: { field: 'mirrorOf' }, tabindex: -1 },
      h('legend', { class: 'sr-only' }, t('field.mirrorOf')), h('p', { class: 'help' }, t('dialog.mirrorHelp')), mirrors.element);
    errors.mirrorOf = fieldError(mirrorSet);
    fields.mirrorOf = mirrorSet;
    mirrorSet.append(errors.mirrorOf);
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
      // An empty list is sent when entries were removed: it clears them.
      const mirrorOf = mirrors.values();
      if (mirrorOf.length || (current.mirrorOf || []).length) value.mirrorOf = mirrorOf;
      const selector = selectorInput.value.trim();
      if (selector) {
        value.namespaceSelector = selector;
        // A default selector of its own (set with kubectl) is kept while
        // the authorizing one is unchanged.
        const own = current.defaultForSelectorText && selector === (current.namespaceSelectorText || '');
        if (selectorDefault.checked) value.defaultForSelector = own ? current.defaultForSelectorText : selector;
      }
      return value;
    };
    const clearErrors = () => {
      for (const [key, line] of Object.entries(errors)) showFieldError(fields[key], line, '');
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
      // A mirror entry's problem says which entry it is.
      const entry = (detail) => {
        const at = /^mirrorOf\[(\d+)\]/.exec(detail.field || '');
        return at ? `${t('dialog.mirrorEntry', { n: Number(at[1]) + 1 })}: ` : '';
      };
      const details = error.details.length ? error.details.map((detail) => ({ ...detail, message: entry(detail) + fieldMessage(detail) }))
        : error.field ? [{ field: error.field, message: own }] : [];
      // Several problems of one field are said on its one line.
      const said = new Map();
      for (const detail of details) {
        const key = FIELD_OF(detail.field);
        const target = errors[key] ? key : key.startsWith('tls') ? 'tls.caBundle' : null;
        if (!target || !shown(target)) continue;
        said.set(target, [...(said.get(target) || []), detail.message]);
      }
      for (const [key, messages] of said) showFieldError(fields[key], errors[key], messages.join('; '));
      const [first] = said.keys();
      return first ? fields[first] : null;
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
              rerender();
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
        if (editing) rerender();
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
        field('namespaceSelector', t('field.namespaceSelector'), selectorInput, t('dialog.selectorHelp')),
        h('label', { class: 'check-label' }, selectorDefault, ' ', t('dialog.selectorDefault'))] : null,
      h('details', { class: 'advanced', open: Boolean(current.tls && (current.tls.caBundle || current.tls.insecureSkipVerify)) || undefined },
        h('summary', {}, t('dialog.advanced')),
        field('tls.caBundle', t('field.caBundle'), caBundle, t('dialog.caHelp')),
        h('div', { class: 'field' }, caFile),
        h('label', { class: 'check-label' }, skipVerify, ' ', t('field.skipVerify')), skipWarn,
        field('pullSecretName', t('field.pullSecretName'), pullSecret, t('dialog.pullSecretHelp')),
        h('label', { class: 'check-label' }, pin, ' ', t('field.pinDigests')),
        field('browse', t('field.browse'), browseMethod, t('dialog.browseHelp'))),
      h('details', { class: 'advanced', open: (current.mirrorOf || []).length ? true : undefined },
        h('summary', {}, t('dialog.mirrors')), mirrorSet),
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
