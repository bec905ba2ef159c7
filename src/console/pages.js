/* The console's pages, each a function of (main, args) registered with O.page. Everything
 * they show comes from /api/v1 with the operator's token; host data only as text. */
'use strict';

const { el, api, qs } = O;

/* ---- sign-in ---- */
O.page('signin', (main) => {
  const why = sessionStorage.getItem('outpost.why');
  sessionStorage.removeItem('outpost.why');
  const input = el('input', { type: 'password', id: 'token', class: 'wide', autocomplete: 'off', placeholder: 'opo_…' });
  const err = el('div', { id: 'signin-error' });
  const form = el('form', { class: 'panel signin', onsubmit: async (ev) => {
    ev.preventDefault();
    err.replaceChildren();
    sessionStorage.setItem('outpost.token', input.value.trim());
    try {
      const me = await api('GET', '/api/v1/whoami');
      sessionStorage.setItem('outpost.role', me.role);
      sessionStorage.setItem('outpost.caller', me.caller);
      location.hash = '#/overview';
      O.route();
    } catch (e) {
      sessionStorage.removeItem('outpost.token');
      err.append(O.errorBox(e));
    }
  } },
  el('h1', { text: 'Sign in to Outpost' }),
  el('p', { class: 'muted', text: 'An operator token (outpost token create --operator --role viewer|operator|admin; the hub writes an admin token to <state-dir>/admin.token). It is kept in this tab only and sent in a header.' }),
  why ? el('p', { class: 'error', text: why }) : null,
  el('div', { class: 'row' }, input, el('button', { class: 'primary', type: 'submit', id: 'signin', text: 'Sign in' })),
  err);
  main.append(form);
  input.focus();
});

/* ---- overview ---- */
function countTable(title, counts, keyName, max) {
  const rows = Object.entries(counts || {}).sort((a, b) => b[1] - a[1]).slice(0, max);
  return el('div', { class: 'panel' }, el('h2', { text: title }),
    rows.length ? O.table([keyName, 'hosts'], rows.map(([k, n]) =>
      el('tr', {}, el('td', { text: k || '(none)' }), el('td', { class: 'num', text: n })))) :
      el('p', { class: 'muted', text: 'none' }));
}

O.page('overview', (main) => {
  const cards = el('div', { class: 'cards', id: 'state-cards' });
  const tables = el('div', { class: 'grid2' });
  const events = el('div', { class: 'panel' });
  main.append(el('h1', { text: 'Fleet' }), cards, tables, events);
  O.every(5000, async () => {
    const [page, evs] = await Promise.all([
      api('GET', '/api/v1/hosts' + qs({ limit: 1 })),
      api('GET', '/api/v1/events' + qs({ limit: 25 })),
    ]);
    cards.replaceChildren(el('div', { class: 'card' }, el('div', { class: 'n', text: page.total }), 'hosts'),
      ...['up', 'down', 'pending', 'rejected', 'revoked'].map((s) =>
        el('a', { class: 'card', href: '#/hosts/' + encodeURIComponent('state=' + s), 'data-state': s },
          el('div', { class: 'n', text: page.states[s] || 0 }), O.badge(s))));
    tables.replaceChildren(countTable('By agent version', page.versions, 'version', 20),
      countTable('By label' + (page.labels_truncated ? ' (first 200 pairs)' : ''), page.labels, 'label', 20));
    events.replaceChildren(el('h2', { text: 'Recent events' }), eventTable(evs));
  });
});

function eventTable(evs) {
  if (!evs.length) return el('p', { class: 'muted', text: 'no events' });
  /* The hub's own events carry detail; agents' and posted ones a message and a severity. */
  return O.table(['when', 'host', 'event', 'severity', 'what'], evs.map((e) => el('tr', {},
    el('td', { text: O.ago(e.at_ms), title: O.time(e.at_ms) }),
    el('td', {}, e.host_id ? O.hostLink(e.host_id) : ''),
    el('td', { text: e.kind }),
    el('td', { text: e.severity || '' }),
    el('td', { text: e.message || (e.detail == null ? '' : typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail)) }))));
}

/* ---- hosts list: paged, sorted and filtered by the hub ---- */
const PAGE = 50;
O.page('host', (main, args) => hostPage(main, args[0]));

O.page('hosts', (main, args) => {
  const st = { target: args[0] || '', sort: 'id', offset: 0, n: 0 };
  const filter = el('input', { type: 'text', id: 'filter', class: 'wide', value: st.target, placeholder: 'selector: role=web and dc!=sh, web[01-10], state=down', spellcheck: 'false' });
  const err = el('div', { id: 'filter-error' });
  const info = el('span', { id: 'hosts-info', class: 'muted' });
  const prev = el('button', { type: 'button', text: '‹ prev', id: 'prev' });
  const next = el('button', { type: 'button', text: 'next ›', id: 'next' });
  const body = el('tbody', { id: 'hosts-body' });
  const cols = [['id', 'id'], ['hostname', 'hostname'], ['state', 'state'], ['version', 'version'], [null, 'labels'], ['last_seen_ms', 'last seen']];
  const head = el('tr', {});
  const drawHead = () => head.replaceChildren(...cols.map(([k, t]) => el('th', {
    class: k ? 'sortable' : null, 'data-sort': k,
    text: t + (k && st.sort === k ? ' ▲' : k && st.sort === '-' + k ? ' ▼' : ''),
    onclick: k ? () => { st.sort = st.sort === k ? '-' + k : k; st.offset = 0; load(); } : null })));
  let seq = 0;
  async function load() {
    const mine = ++seq;
    drawHead();
    let page;
    try {
      page = await api('GET', '/api/v1/hosts' + qs({ target: st.target, sort: st.sort, limit: PAGE, offset: st.offset }));
    } catch (e) {
      if (mine !== seq) return;
      err.replaceChildren(O.errorBox(e, st.target));
      main.dataset.rendered = ++st.n;
      return;
    }
    if (mine !== seq) return; /* a newer filter was typed meanwhile */
    err.replaceChildren();
    body.replaceChildren(...page.hosts.map((h) => el('tr', {},
      el('td', {}, O.hostLink(h.id)),
      el('td', { text: h.hostname || '' }),
      el('td', {}, O.badge(h.state)),
      el('td', { text: h.version || '' }),
      el('td', { text: Object.entries(h.labels || {}).map(([k, v]) => k + '=' + v).join(' ') }),
      el('td', { text: O.ago(h.last_seen_ms), title: O.time(h.last_seen_ms) }))));
    info.textContent = page.total ? `${page.offset + 1}–${page.offset + page.hosts.length} of ${page.total}` : 'no host matches';
    info.dataset.total = page.total;
    prev.disabled = page.offset === 0;
    next.disabled = page.offset + page.hosts.length >= page.total;
    main.dataset.rendered = ++st.n;
  }
  prev.addEventListener('click', () => { st.offset = Math.max(0, st.offset - PAGE); load(); });
  next.addEventListener('click', () => { st.offset += PAGE; load(); });
  filter.addEventListener('input', O.debounce(() => { st.target = filter.value.trim(); st.offset = 0; load(); }, 150));
  main.append(el('h1', { text: 'Hosts' }),
    el('div', { class: 'row' }, el('label', { for: 'filter', text: 'Filter' }), filter),
    err, el('div', { class: 'pager' }, prev, next, info),
    el('table', { id: 'hosts' }, el('thead', {}, head), body));
  load();
});

/* ---- one host: facts, labels, charts, events ---- */
const RANGES = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3 };
const HOST_CHARTS = [
  { title: 'CPU %', q: [{ name: 'host_cpu_percent', match: ['mode!=idle'] }] },
  { title: 'Memory (bytes)', q: [{ name: 'host_memory_bytes' }] },
  { title: 'Disk used %', q: [{ name: 'host_filesystem_used_percent' }] },
  { title: 'Network (bytes/s)', q: [{ name: 'host_network_receive_bytes_per_second', tag: 'rx' }, { name: 'host_network_transmit_bytes_per_second', tag: 'tx' }] },
  { title: 'Load', q: [{ name: 'host_load1' }, { name: 'host_load5' }, { name: 'host_load15' }] },
];

function hostPage(main, id) {
  const sel = '"' + id.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
  const head = el('div', {});
  const facts = el('div', { class: 'panel', id: 'facts' });
  const labels = el('div', { class: 'panel', id: 'labels' });
  const charts = el('div', { class: 'charts', id: 'charts' });
  const events = el('div', { class: 'panel', id: 'host-events' });
  const ranges = el('div', { class: 'row' }, 'Range:', Object.keys(RANGES).map((r) =>
    el('button', { type: 'button', text: r, 'data-range': r, onclick: () => drawCharts(r) })));
  main.append(head, el('div', { class: 'grid2' }, facts, labels), el('h2', { text: 'Charts' }), ranges, charts, events);

  async function drawHost() {
    const h = await api('GET', '/api/v1/hosts/' + encodeURIComponent(id));
    O.fill(head, el('h1', {}, h.id + ' ', O.badge(h.state)),
      el('p', { class: 'muted', text: `${h.hostname || ''} · agent ${h.version || '?'} · last seen ${O.ago(h.last_seen_ms)} · first seen ${O.time(h.first_seen_ms)}` }),
      O.can('admin') && (h.state === 'up' || h.state === 'down') ?
        el('button', { class: 'danger', type: 'button', text: 'Revoke', onclick: async () => {
          if (!confirm('Revoke ' + id + '? Its agent is cut off at once.')) return;
          await api('POST', '/api/v1/hosts/' + encodeURIComponent(id) + '/revoke', {});
          drawHost();
        } }) : null);
    const dl = el('dl', { class: 'facts' });
    for (const [k, v] of Object.entries(h.facts || {}))
      dl.append(el('dt', { text: k }), el('dd', { text: typeof v === 'object' ? JSON.stringify(v) : String(v) }));
    facts.replaceChildren(el('h2', { text: 'Facts' }), dl);
    drawLabels(h);
  }

  function drawLabels(h) {
    const rows = Object.entries(h.labels || {}).map(([k, v]) => el('tr', {},
      el('td', { text: k }), el('td', { text: v }),
      O.can('admin') ? el('td', {}, el('button', { type: 'button', text: 'remove', onclick: () => change({ remove: [k] }) })) : null));
    const err = el('div', {});
    async function change(body) {
      try {
        drawLabels(await api('POST', '/api/v1/hosts/' + encodeURIComponent(id) + '/labels', body));
      } catch (e) { err.replaceChildren(O.errorBox(e)); }
    }
    labels.replaceChildren(el('h2', { text: 'Labels' }),
      rows.length ? O.table(['key', 'value'], rows) : el('p', { class: 'muted', text: 'no labels' }));
    if (O.can('admin')) {
      const k = el('input', { type: 'text', id: 'label-key', placeholder: 'key' });
      const v = el('input', { type: 'text', id: 'label-value', placeholder: 'value' });
      labels.append(el('form', { class: 'row', onsubmit: (ev) => { ev.preventDefault(); change({ set: { [k.value.trim()]: v.value } }); } },
        k, v, el('button', { type: 'submit', text: 'Set label' })), err);
    }
  }

  async function drawCharts(range) {
    for (const b of ranges.querySelectorAll('button')) b.classList.toggle('primary', b.dataset.range === range);
    charts.replaceChildren(...HOST_CHARTS.map((c) => {
      const box = el('div', { class: 'panel chart', 'data-chart': c.title }, el('h3', { text: c.title }));
      Promise.all(c.q.map((q) => api('GET', '/api/v1/metrics/query' + qs({ name: q.name, match: q.match, hosts: sel, from: '-' + range }))
        .then((r) => ({ q, r }))))
        .then((parts) => plot(box, parts, 560))
        .catch((e) => box.append(O.errorBox(e)));
      return box;
    }));
  }

  drawHost().then(() => drawCharts('1h'));
  api('GET', '/api/v1/events' + qs({ host: id, limit: 20 })).then((evs) =>
    events.replaceChildren(el('h2', { text: 'Recent events' }), eventTable(evs)));
}

/* Series of one or more query answers as one uPlot chart (times aligned, gaps as null). */
function plot(box, parts, width) {
  const series = [];
  for (const { q, r } of parts) {
    for (const s of r.series) {
      const lab = Object.entries(s.labels || {}).map(([k, v]) => k + '=' + v).join(',');
      const name = [q.tag || (parts.length > 1 ? q.name.replace(/^host_/, '') : ''), s.host && parts.length === 1 && r.series.length > 1 && !lab ? s.host : '', lab].filter(Boolean).join(' ') || q.name;
      series.push({ name, points: s.points });
    }
  }
  box.dataset.series = series.length;
  if (!series.length) {
    box.append(el('p', { class: 'muted', text: 'no data in this range' }));
    return;
  }
  const ts = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const at = new Map(ts.map((t, i) => [t, i]));
  const data = [ts.map((t) => t / 1000)];
  for (const s of series) {
    const col = new Array(ts.length).fill(null);
    for (const [t, v] of s.points) col[at.get(t)] = typeof v === 'number' ? v : null;
    data.push(col);
  }
  const colors = ['#1f5fa8', '#c0392b', '#1e8a4c', '#b7791f', '#7b3fa0', '#0f8b8d', '#6b7280', '#d35400'];
  const opts = {
    width, height: 220,
    series: [{}].concat(series.map((s, i) => ({ label: s.name, stroke: colors[i % colors.length], width: 1.5, spanGaps: false }))),
    axes: [{}, { size: 60, values: (u, vals) => vals.map(O.si) }],
    legend: { live: true },
  };
  new uPlot(opts, data, box);
}

/* ---- run ---- */
function splitArgs(line) {
  const out = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  let m;
  while ((m = re.exec(line))) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2] !== undefined ? m[2] : m[3]);
  return out;
}

O.page('run', (main) => {
  if (!O.can('operator')) { main.append(el('p', { class: 'error', text: 'Running needs the operator role.' })); return; }
  const target = el('input', { type: 'text', id: 'target', class: 'wide', placeholder: 'selector: role=web, web[01-10], *', spellcheck: 'false' });
  const preview = el('div', { id: 'preview', class: 'muted' });
  const kind = el('select', { id: 'kind' }, el('option', { value: 'command', text: 'command' }), el('option', { value: 'script', text: 'script (/bin/sh)' }), el('option', { value: 'file', text: 'file copy' }), el('option', { value: 'op', text: 'plugin op' }));
  const upload = el('input', { type: 'file', id: 'upload' });
  const dest = el('input', { type: 'text', id: 'dest', class: 'wide', placeholder: '/etc/motd (under the agents\' file roots)' });
  const mode = el('input', { type: 'text', id: 'mode', placeholder: '0644', size: '6' });
  const command = el('input', { type: 'text', id: 'command', class: 'wide', placeholder: 'uptime' });
  const script = el('textarea', { id: 'script', placeholder: '#!/bin/sh\n…' });
  const plugin = el('input', { type: 'text', id: 'plugin', placeholder: 'sys' });
  const op = el('input', { type: 'text', id: 'op', placeholder: 'facts' });
  const opArgs = el('textarea', { id: 'op-args', placeholder: '{"path": "/etc/hostname"}' });
  const timeout = el('input', { type: 'number', id: 'timeout', value: '60', min: '1' });
  const batch = el('input', { type: 'text', id: 'batch', placeholder: 'all, 10 or 10%', size: '10' });
  const maxf = el('input', { type: 'number', id: 'max-failures', placeholder: 'no limit', min: '0' });
  const err = el('div', { id: 'run-error' });
  const runBtn = el('button', { class: 'primary', type: 'submit', id: 'run', text: 'Run' });
  const what = {
    command: el('div', { class: 'row' }, el('label', { text: 'Command' }), command),
    script: el('div', {}, script),
    file: el('div', { class: 'row' }, upload, 'to', dest, 'mode', mode),
    op: el('div', {}, el('div', { class: 'row' }, 'Plugin', plugin, 'op', op), opArgs),
  };
  const showKind = () => { for (const [k, d] of Object.entries(what)) d.hidden = k !== kind.value; };
  kind.addEventListener('change', showKind);
  showKind();

  let pseq = 0;
  const doPreview = O.debounce(async () => {
    const mine = ++pseq;
    const t = target.value.trim();
    if (!t) { preview.replaceChildren('Type a selector to see the hosts it matches.'); return; }
    try {
      const page = await api('GET', '/api/v1/hosts' + qs({ target: t, limit: 20 }));
      if (mine !== pseq) return;
      const reach = (page.states.up || 0) + (page.states.down || 0);
      preview.replaceChildren(el('div', { id: 'preview-count', 'data-count': reach },
        `${reach} host${reach === 1 ? '' : 's'} will get the task` + (page.total > reach ? ` (${page.total - reach} more match but are not accepted)` : '') +
        ((page.states.down || 0) ? `; ${page.states.down} down now (queued until they return)` : '')),
        el('div', { id: 'preview-hosts' }, page.hosts.filter((h) => h.state === 'up' || h.state === 'down').map((h) => el('span', {}, O.hostLink(h.id), ' ')),
          page.total > page.hosts.length ? '…' : ''));
    } catch (e) {
      if (mine === pseq) preview.replaceChildren(O.errorBox(e, t));
    }
  }, 200);
  target.addEventListener('input', doPreview);
  doPreview();

  const form = el('form', { class: 'panel', onsubmit: async (ev) => {
    ev.preventDefault();
    err.replaceChildren();
    const body = { id: O.newId(), target: target.value.trim(), timeout_ms: Number(timeout.value || 60) * 1000 };
    try {
      if (kind.value === 'command') Object.assign(body, { plugin: 'exec', op: 'run', args: { argv: splitArgs(command.value) } });
      else if (kind.value === 'script') Object.assign(body, { plugin: 'exec', op: 'run', args: { script: script.value } });
      else if (kind.value === 'file') {
        if (!upload.files.length) throw new Error('choose a file to copy');
        const bytes = new Uint8Array(await upload.files[0].arrayBuffer());
        let bin = '';
        for (let i = 0; i < bytes.length; i += 32768) bin += String.fromCharCode(...bytes.subarray(i, i + 32768));
        Object.assign(body, { plugin: 'file', op: 'put', args: { path: dest.value.trim(), content: btoa(bin), encoding: 'base64' } });
        if (mode.value.trim()) body.args.mode = mode.value.trim();
      }
      else Object.assign(body, { plugin: plugin.value.trim(), op: op.value.trim(), args: opArgs.value.trim() ? JSON.parse(opArgs.value) : {} });
    } catch (e) { err.replaceChildren(O.errorBox({ code: 'bad_args', message: e.message })); return; }
    if (body.plugin === 'exec' && body.op === 'run') body.args.timeout_ms = body.timeout_ms;
    const b = batch.value.trim();
    if (b) body.batch = /%$/.test(b) ? b : Number(b);
    if (maxf.value !== '') body.max_failures = Number(maxf.value);
    runBtn.disabled = true;
    try {
      const t = await api('POST', '/api/v1/tasks', body);
      location.hash = '#/tasks/' + encodeURIComponent(t.id);
    } catch (e) { err.replaceChildren(O.errorBox(e, body.target)); runBtn.disabled = false; }
  } },
  el('div', { class: 'row' }, el('label', { for: 'target', text: 'Hosts' }), target), preview,
  el('div', { class: 'row' }, el('label', { text: 'Run a' }), kind), what.command, what.script, what.file, what.op,
  el('div', { class: 'row' }, 'Timeout (s)', timeout, 'Batch', batch, 'Max failures', maxf),
  el('div', { class: 'row' }, runBtn), err);
  main.append(el('h1', { text: 'Run' }), form);
});

/* ---- tasks: history and one task's results, grouped like clush -b ---- */
O.page('tasks', async (main, args) => {
  if (args[0]) return taskPage(main, args[0]);
  main.append(el('h1', { text: 'Tasks' }));
  const box = el('div', {});
  main.append(box);
  O.every(5000, async () => {
    const ts = await api('GET', '/api/v1/tasks' + qs({ limit: 100 }));
    box.replaceChildren(O.table(['task', 'created', 'target', 'op', 'state', 'ok', 'failed', 'hosts'], ts.map((t) => el('tr', {},
      el('td', {}, O.link('tasks/' + encodeURIComponent(t.id), t.id)),
      el('td', { text: O.ago(t.created_ms), title: O.time(t.created_ms) }),
      el('td', { text: t.target }),
      el('td', { text: t.plugin + '.' + t.op }),
      el('td', {}, O.badge(t.state)),
      el('td', { class: 'num', text: (t.counts || {}).ok || 0 }),
      el('td', { class: 'num', text: ((t.counts || {}).failed || 0) + ((t.counts || {}).timeout || 0) }),
      el('td', { class: 'num', text: t.total })))));
  });
});

/* What a host answered, as the text shown for it: exec's streams and exit, else the result. */
function resultText(h) {
  const r = h.response;
  if (!r) return { key: h.state, text: '' };
  if (!r.ok) return { key: h.state + ' ' + r.error.code, text: r.error.code + ': ' + r.error.message };
  const x = r.result || {};
  if ('exit_code' in x || 'stdout' in x) {
    const text = (x.stdout || '') + (x.stderr ? (x.stdout ? '\n' : '') + x.stderr : '');
    const how = x.timed_out ? 'timed out' : x.signal ? 'signal ' + x.signal : 'exit ' + x.exit_code;
    return { key: h.state + ' ' + how, text };
  }
  return { key: h.state, text: JSON.stringify(x, null, 2) };
}

function taskPage(main, id) {
  const head = el('div', {});
  const groups = el('div', { id: 'groups' });
  const perHost = el('div', { id: 'per-host' });
  main.append(head, el('h2', { text: 'Results, hosts with the same output together' }), groups, el('h2', { text: 'Each host' }), perHost);
  let seq = -1;
  const rows = new Map(); /* host id -> row: an answer after since=SEQ holds the changed rows only */
  function draw(t) {
    for (const h of t.hosts || []) rows.set(h.host_id, h);
    t.hosts = [...rows.values()].sort((a, b) => a.host_id.localeCompare(b.host_id));
    const c = t.counts || {};
    O.fill(head, el('h1', {}, 'Task ' + t.id + ' ', O.badge(t.state)),
      el('p', { class: 'muted', text: `${t.plugin}.${t.op} on “${t.target}” · ${t.total} hosts · ` +
        Object.entries(c).filter(([, n]) => n).map(([k, n]) => k + ' ' + n).join(', ') }),
      el('pre', { class: 'out', text: JSON.stringify(t.args, null, 2) }),
      t.state === 'running' && O.can('operator') ? el('button', { class: 'danger', type: 'button', id: 'cancel', text: 'Cancel', onclick: async () => {
        await api('POST', '/api/v1/tasks/' + encodeURIComponent(id) + '/cancel', {});
      } }) : null);
    const byOut = new Map();
    for (const h of t.hosts || []) {
      const r = resultText(h);
      const k = r.key + '\0' + r.text;
      if (!byOut.has(k)) byOut.set(k, { ...r, hosts: [] });
      byOut.get(k).hosts.push(h.host_id);
    }
    groups.replaceChildren(...[...byOut.values()].sort((a, b) => b.hosts.length - a.hosts.length).map((g) =>
      el('div', { class: 'group panel' },
        el('div', {}, el('span', { class: 'hosts', text: g.hosts.sort().join(',') }), ` (${g.hosts.length}) `, el('span', { class: 'muted', text: g.key })),
        g.text ? el('pre', { class: 'out', text: g.text }) : null)));
    perHost.replaceChildren(O.table(['host', 'state', 'result', 'started', 'finished'], (t.hosts || []).map((h) => el('tr', { 'data-host': h.host_id },
      el('td', {}, O.hostLink(h.host_id)), el('td', {}, O.badge(h.state)), el('td', { text: resultText(h).key }),
      el('td', { text: O.time(h.started_ms) }), el('td', { text: O.time(h.finished_ms) })))));
    main.dataset.state = t.state;
  }
  (async () => {
    while (main.isConnected) {
      const t = await api('GET', '/api/v1/tasks/' + encodeURIComponent(id) + qs(seq < 0 ? {} : { wait: 25, since: seq }));
      if (!main.isConnected) return;
      if (t.seq !== seq) draw(t);
      seq = t.seq;
      if (t.state !== 'running') return;
    }
  })().catch((e) => main.append(O.errorBox(e)));
}

/* ---- metrics explorer ---- */
function shq(s) { return /^[A-Za-z0-9_.,:=\/@+-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'"; }

O.page('metrics', async (main) => {
  const name = el('input', { type: 'text', id: 'metric', list: 'metric-names', placeholder: 'host_load1', value: 'host_load1' });
  const names = el('datalist', { id: 'metric-names' });
  const match = el('input', { type: 'text', id: 'match', class: 'wide', placeholder: 'mode=user device!=lo (space separated)' });
  const hosts = el('input', { type: 'text', id: 'mhosts', placeholder: 'selector (all hosts)' });
  const agg = el('select', { id: 'agg' }, ['', 'avg', 'min', 'max', 'sum', 'count', 'p50', 'p90', 'p99'].map((a) => el('option', { value: a, text: a || 'per host' })));
  const range = el('select', { id: 'range' }, ['-1h', '-6h', '-24h', '-7d'].map((r) => el('option', { value: r, text: r.slice(1) })));
  const step = el('input', { type: 'text', id: 'step', placeholder: 'auto', size: '6' });
  const out = el('div', { id: 'metric-chart', class: 'panel' });
  const cli = el('code', { class: 'cli', id: 'cli-line' });
  async function run(ev) {
    if (ev) ev.preventDefault();
    const m = match.value.trim() ? match.value.trim().split(/\s+/) : [];
    const p = { name: name.value.trim(), match: m, hosts: hosts.value.trim(), from: range.value, step: step.value.trim(), agg: agg.value };
    cli.textContent = ['outpost metrics query', shq(p.name)].concat(p.hosts ? [shq(p.hosts)] : [], m.map((x) => '--match ' + shq(x)),
      ['--from ' + p.from], p.step ? ['--step ' + shq(p.step)] : [], p.agg ? ['--agg ' + p.agg] : []).join(' ');
    out.replaceChildren();
    try {
      const r = await api('GET', '/api/v1/metrics/query' + qs(p));
      out.append(el('p', { class: 'muted', text: `${r.series.length} series · step ${r.step_ms / 1000} s · ${r.resolution}` }));
      plot(out, [{ q: { name: p.name }, r }], Math.min(1200, main.clientWidth - 40));
    } catch (e) { out.append(O.errorBox(e, p.hosts)); }
  }
  main.append(el('h1', { text: 'Metrics' }), names,
    el('form', { class: 'panel', onsubmit: run },
      el('div', { class: 'row' }, 'Metric', name, 'Hosts', hosts),
      el('div', { class: 'row' }, 'Matchers', match),
      el('div', { class: 'row' }, 'Aggregate', agg, 'Range', range, 'Step', step, el('button', { class: 'primary', type: 'submit', id: 'chart', text: 'Chart' }))),
    out, el('h2', { text: 'The same from the CLI' }), cli);
  api('GET', '/api/v1/metrics/series' + qs({ limit: 2000 })).then((r) =>
    names.replaceChildren(...[...new Set(r.series.map((s) => s.name))].sort().map((n) => el('option', { value: n })))).catch(() => {});
  run();
});

/* ---- enrollment and access (admin) ---- */
O.page('access', (main) => {
  if (!O.can('admin')) { main.append(el('p', { class: 'error', text: 'Enrollment and access need the admin role.' })); return; }
  const pending = el('div', { id: 'pending' });
  const tokens = el('div', { id: 'tokens' });
  const audit = el('div', { id: 'audit' });
  const created = el('div', { id: 'created' });
  const err = el('div', {});
  async function drawPending() {
    const page = await api('GET', '/api/v1/hosts' + qs({ target: 'state=pending or state=rejected', limit: 200, sort: '-first_seen_ms' }));
    const act = (h, verb) => el('button', { type: 'button', text: verb, 'data-verb': verb, class: verb === 'reject' ? 'danger' : 'primary', onclick: async () => {
      try { await api('POST', '/api/v1/hosts/' + encodeURIComponent(h.id) + '/' + verb, {}); } catch (e) { err.replaceChildren(O.errorBox(e)); }
      drawPending();
    } });
    pending.replaceChildren(page.hosts.length ? O.table(['host', 'state', 'hostname', 'asked', ''], page.hosts.map((h) => el('tr', { 'data-host': h.id },
      el('td', {}, O.hostLink(h.id)), el('td', {}, O.badge(h.state)), el('td', { text: h.hostname || '' }), el('td', { text: O.ago(h.first_seen_ms) }),
      el('td', {}, act(h, 'accept'), ' ', h.state === 'pending' ? act(h, 'reject') : null)))) :
      el('p', { class: 'muted', text: 'No host is waiting.' }));
  }
  async function drawTokens() {
    const ts = await api('GET', '/api/v1/tokens');
    tokens.replaceChildren(O.table(['id', 'kind', 'role', 'created', 'by', 'expires', 'uses', ''], ts.map((t) => el('tr', { 'data-token': t.id },
      el('td', { text: t.id }), el('td', { text: t.kind }), el('td', { text: t.role || '' }), el('td', { text: O.time(t.created_ms) }),
      el('td', { text: t.created_by || '' }), el('td', { text: t.expires_ms ? O.time(t.expires_ms) : 'never' }),
      el('td', { text: (t.uses || 0) + (t.max_uses ? ' / ' + t.max_uses : '') }),
      el('td', {}, t.revoked ? el('span', { class: 'muted', text: 'revoked' }) : el('button', { type: 'button', class: 'danger', text: 'revoke', onclick: async () => {
        try { await api('POST', '/api/v1/tokens/' + encodeURIComponent(t.id) + '/revoke', {}); } catch (e) { err.replaceChildren(O.errorBox(e)); }
        drawTokens();
      } }))))));
  }
  async function drawAudit() {
    const es = await api('GET', '/api/v1/audit' + qs({ limit: 100 }));
    audit.replaceChildren(O.table(['when', 'who', 'action', 'target', 'detail'], es.map((a) => el('tr', {},
      el('td', { text: O.time(a.at_ms) }), el('td', { text: a.actor || '' }), el('td', { text: a.action }),
      el('td', { text: a.target || '' }), el('td', { class: 'detail', text: a.detail == null ? '' : JSON.stringify(a.detail) })))));
  }
  const kind = el('select', { id: 'token-kind' }, el('option', { value: 'operator', text: 'operator token' }), el('option', { value: 'enroll', text: 'enrollment token' }));
  const role = el('select', { id: 'token-role' }, ['viewer', 'operator', 'admin'].map((r) => el('option', { value: r, text: r })));
  const days = el('input', { type: 'number', id: 'token-days', placeholder: 'days (default)', min: '0' });
  const uses = el('input', { type: 'number', id: 'token-uses', placeholder: 'hosts (any)', min: '0' });
  kind.addEventListener('change', () => { role.disabled = kind.value !== 'operator'; uses.disabled = kind.value !== 'enroll'; });
  uses.disabled = true;
  const form = el('form', { class: 'row', onsubmit: async (ev) => {
    ev.preventDefault();
    const body = { kind: kind.value };
    if (kind.value === 'operator') body.role = role.value;
    if (days.value !== '') body.ttl_s = Number(days.value) * 86400;
    if (kind.value === 'enroll' && uses.value !== '') body.uses = Number(uses.value);
    try {
      const t = await api('POST', '/api/v1/tokens', body);
      created.replaceChildren(el('p', {}, `Token ${t.id} (${t.kind}${t.role ? ', ' + t.role : ''}). Copy it now: it is shown once, the hub keeps only its hash.`),
        el('div', { class: 'secret', id: 'secret', text: t.token }));
      drawTokens();
    } catch (e) { created.replaceChildren(O.errorBox(e)); }
  } }, kind, role, days, uses, el('button', { type: 'submit', class: 'primary', id: 'token-create', text: 'Create token' }));
  main.append(el('h1', { text: 'Enrollment and access' }), err,
    el('h2', { text: 'Hosts waiting to be accepted' }), pending,
    el('h2', { text: 'Tokens' }), el('div', { class: 'panel' }, form, created), tokens,
    el('h2', { text: 'Audit log' }), audit);
  O.every(5000, drawPending);
  drawTokens();
  drawAudit();
});
