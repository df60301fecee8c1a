// A record's `mirrorOf` entries in the create and edit dialog: one row of
// fields per mirrored registry. What an entry may hold is the server's to
// say (live validation names `mirrorOf[i].…`); nothing is checked here.

import { h, id, mount } from './dom.js';
import { t } from './i18n.js';

/** The editor for `initial` entries: its element and the entries as the API takes them. */
export function mirrorEditor(initial, onchange) {
  const rows = [];
  const list = h('div', { class: 'mirror-list' });
  const labelled = (label, control) => {
    control.id = control.id || id('m');
    return h('div', { class: 'mirror-field' }, h('label', { for: control.id, class: 'label small' }, label), control);
  };
  const select = (name, options, value) => h('select', { class: 'input', name },
    options.map((option) => h('option', { value: option, selected: value === option }, t(`${name}.${option}`))));
  const render = () => {
    mount(list, rows.map((row, index) => h('fieldset', { class: 'mirror-entry' },
      h('legend', { class: 'label' }, t('dialog.mirrorEntry', { n: index + 1 })),
      h('div', { class: 'grid-2' },
        labelled(t('field.upstream'), row.upstream),
        labelled(t('field.mirrorPathPrefix'), row.pathPrefix)),
      labelled(t('field.excludes'), row.excludes),
      h('div', { class: 'grid-2' },
        labelled(t('field.fallback'), row.fallback),
        labelled(t('field.mirrorMode'), row.mode)),
      h('div', { class: 'mirror-actions' },
        h('label', { class: 'check-label' }, row.check, ' ', t('field.checkUpstream')),
        h('button', { type: 'button', class: 'btn btn-ghost btn-small', onclick: () => {
          rows.splice(index, 1);
          render();
          onchange();
          add.focus();
        } }, t('dialog.removeMirror', { upstream: row.upstream.value.trim() || index + 1 }))))));
  };
  const addRow = (entry) => {
    rows.push({
      upstream: h('input', { class: 'input mono', value: entry.upstream || '', placeholder: 'docker.io', spellcheck: 'false', autocomplete: 'off' }),
      pathPrefix: h('input', { class: 'input mono', value: entry.pathPrefix || '', placeholder: 'dockerhub-proxy', spellcheck: 'false', autocomplete: 'off' }),
      excludes: h('input', { class: 'input mono', value: (entry.excludes || []).join(', '), placeholder: 'library/busybox, internal/*', spellcheck: 'false', autocomplete: 'off' }),
      fallback: select('fallback', ['upstream', 'deny'], entry.fallback || 'upstream'),
      mode: select('mirrorMode', ['rewrite', 'node'], entry.mode || 'rewrite'),
      check: h('input', { type: 'checkbox', checked: Boolean(entry.checkUpstream) }),
    });
  };
  for (const entry of initial || []) addRow(entry);
  const add = h('button', { type: 'button', class: 'btn btn-small', onclick: () => {
    addRow({});
    render();
    rows[rows.length - 1].upstream.focus();
  } }, t('dialog.addMirror'));
  render();
  return {
    element: h('div', {}, list, add),
    /** The entries with an upstream, as the API takes them. */
    values: () => rows.filter((row) => row.upstream.value.trim()).map((row) => {
      const entry = { upstream: row.upstream.value.trim(), fallback: row.fallback.value, mode: row.mode.value };
      if (row.pathPrefix.value.trim()) entry.pathPrefix = row.pathPrefix.value.trim();
      const excludes = row.excludes.value.split(',').map((e) => e.trim()).filter(Boolean);
      if (excludes.length) entry.excludes = excludes;
      if (row.check.checked) entry.checkUpstream = true;
      return entry;
    }),
  };
}
