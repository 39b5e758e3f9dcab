// The entity browser: a query by type, idPattern, q and scopeQ, paged, in the three
// representations; one entity in detail, one attribute edited (PATCH .../attrs/{attr}) or
// the entity deleted, with the broker's own ProblemDetails shown when it refuses.

import { deleteEntity, options, patchAttribute, queryEntities, retrieveEntity } from './api.js';

const $ = (id) => document.getElementById(id);

export function createBrowser() {
  const form = $('query');
  let offset = 0;
  let last = null; // the last query's parameters
  let current = null; // the entity shown, normalized

  async function run() {
    const f = new FormData(form);
    const limit = Number(f.get('limit')) || 20;
    last = {
      type: f.get('type'), idPattern: f.get('idPattern'), q: f.get('q'), scopeQ: f.get('scopeQ'),
      options: options(f.get('format')), limit, offset, count: 'true',
    };
    $('query-error').textContent = '';
    try {
      const { items, total } = await queryEntities(last);
      const list = $('results');
      list.replaceChildren(...items.map((e) => {
        const li = document.createElement('li');
        li.textContent = `${e.id}  (${e.type})`;
        li.dataset.id = e.id;
        li.addEventListener('click', () => show(e.id));
        return li;
      }));
      const to = offset + items.length;
      $('page-info').textContent = total === null ? `${offset + 1}–${to}`
        : `${items.length ? offset + 1 : 0}–${to} of ${total}`;
      $('prev').disabled = offset === 0;
      $('next').disabled = total === null ? items.length < limit : to >= total;
    } catch (e) {
      $('query-error').textContent = e.message;
    }
  }

  async function show(id) {
    $('edit-error').textContent = '';
    $('edit-result').textContent = '';
    for (const li of $('results').children) li.classList.toggle('active', li.dataset.id === id);
    const format = new FormData(form).get('format');
    try {
      current = await retrieveEntity(id);
      const shown = format === 'normalized' ? current : await retrieveEntity(id, { options: options(format) });
      $('detail').hidden = false;
      $('detail-id').textContent = id;
      $('detail-json').textContent = JSON.stringify(shown, null, 2);
      const select = $('edit-attr');
      const keep = select.value;
      const names = Object.keys(current).filter((k) => !['id', 'type', '@context', 'scope'].includes(k));
      select.replaceChildren(...names.map((n) => new Option(n, n)));
      if (names.includes(keep)) select.value = keep;
      fillValue();
    } catch (e) {
      $('detail').hidden = false;
      $('detail-id').textContent = id;
      $('detail-json').textContent = '';
      $('edit-error').textContent = e.message;
    }
  }

  function fillValue() {
    const a = current && current[$('edit-attr').value];
    const v = a && (a.value !== undefined ? a.value : a.object);
    $('edit-value').value = v === undefined ? '' : JSON.stringify(v);
  }

  async function save(ev) {
    ev.preventDefault();
    $('edit-error').textContent = '';
    $('edit-result').textContent = '';
    const attr = $('edit-attr').value;
    const text = $('edit-value').value;
    let value;
    try { value = JSON.parse(text); } catch { value = text; }
    const kind = (current[attr] && current[attr].type) || 'Property';
    const fragment = kind === 'Relationship' ? { type: kind, object: value } : { type: kind, value };
    try {
      await patchAttribute(current.id, attr, fragment);
      $('edit-result').textContent = `${attr} saved`;
      await show(current.id);
      $('edit-result').textContent = `${attr} saved`;
    } catch (e) {
      $('edit-error').textContent = e.message;
    }
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); offset = 0; run(); });
  $('prev').addEventListener('click', () => { offset = Math.max(0, offset - last.limit); run(); });
  $('next').addEventListener('click', () => { offset += last.limit; run(); });
  $('edit-attr').addEventListener('change', fillValue);
  $('edit').addEventListener('submit', save);
  $('delete').addEventListener('click', async () => {
    if (!current || !window.confirm(`Delete ${current.id}?`)) return;
    try {
      await deleteEntity(current.id);
      $('detail').hidden = true;
      run();
    } catch (e) { $('edit-error').textContent = e.message; }
  });

  return {
    /** Opens one entity, as from the map. */
    open(id, type) {
      if (type) form.elements.type.value = type;
      form.elements.idPattern.value = '';
      show(id);
    },
    /** Shows the entity again if it is the one on screen (a live update). */
    refresh(id) { if (current && current.id === id) show(id); },
  };
}
