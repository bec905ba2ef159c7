/* The console's core: the token (sessionStorage, sent in the Authorization header, never in a
 * URL or a cookie), API calls in the one envelope, elements built with textContent only (no
 * host data ever goes through innerHTML), the router, polling. Pages live in pages.js. */
'use strict';

const O = {};
const RANK = { viewer: 1, operator: 2, admin: 3 };

O.token = () => sessionStorage.getItem('outpost.token');
O.role = () => sessionStorage.getItem('outpost.role') || 'viewer';
O.can = (role) => (RANK[O.role()] || 0) >= RANK[role];

class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

/* One call to /api/v1: resolves to the result, throws ApiError with the hub's code/message. */
O.api = async function (method, path, body) {
  const headers = { Authorization: 'Bearer ' + O.token() };
  const init = { method, headers, cache: 'no-store', credentials: 'omit' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let env;
  try {
    env = await res.json();
  } catch (e) {
    throw new ApiError('bad_answer', 'the hub answered HTTP ' + res.status + ' without JSON', res.status);
  }
  if (!env.ok) {
    if (res.status === 401 && path !== '/api/v1/whoami') O.signOut('The hub refused the token: sign in again.');
    throw new ApiError(env.error.code, env.error.message, res.status);
  }
  return env.result;
};

/* A query string from an object; undefined, null and '' are left out, arrays repeat. */
O.qs = function (params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    for (const x of Array.isArray(v) ? v : [v]) u.append(k, x);
  }
  const s = u.toString();
  return s ? '?' + s : '';
};

/* An element: attrs (class, text, on<event>, others as attributes), children as nodes or text. */
O.el = function (tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k === 'value') e.value = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
};

O.link = (hash, text) => O.el('a', { href: '#/' + hash, text });
O.hostLink = (id) => O.link('host/' + encodeURIComponent(id), id);
O.badge = (state) => O.el('span', { class: 'state state-' + String(state).replace(/[^a-z]/g, ''), text: state });

O.ago = function (ms) {
  if (!ms) return '—';
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 0) return new Date(ms).toLocaleString();
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.round(s / 60) + ' min ago';
  if (s < 86400) return Math.round(s / 3600) + ' h ago';
  return Math.round(s / 86400) + ' d ago';
};
O.time = (ms) => (ms ? new Date(ms).toLocaleString() : '—');

/* node's children replaced by kids (null, false and undefined left out, unlike replaceChildren,
 * which would show them as text). */
O.fill = (node, ...kids) => node.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));

/* 1234567 -> "1.2M": axis labels that fit. */
O.si = function (v) {
  if (v == null) return '';
  const a = Math.abs(v);
  for (const [n, s] of [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']])
    if (a >= n) return +(v / n).toFixed(1) + s;
  return +v.toFixed(2) + '';
};

O.table = function (heads, rows) {
  return O.el('table', {},
    O.el('thead', {}, O.el('tr', {}, heads.map((h) => O.el('th', { text: h })))),
    O.el('tbody', {}, rows));
};

/* An error for the user, in place; a selector's column gets a caret under the text. */
O.errorBox = function (e, text) {
  const box = O.el('div', { class: 'error', role: 'alert' });
  box.append(document.createTextNode((e.code ? e.code + ': ' : '') + e.message));
  const m = /at column (\d+)/.exec(e.message || '');
  if (m && text !== undefined) {
    const col = Number(m[1]);
    box.append(O.el('pre', { class: 'caret', text: text + '\n' + ' '.repeat(Math.max(0, col - 1)) + '^' }));
  }
  return box;
};

O.debounce = function (fn, ms) {
  let t;
  return (...a) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...a), ms);
  };
};

/* Polling: fn now and every ms while this page is shown and the tab visible (a hidden tab
 * costs the hub nothing). Stopped when the page changes. */
let timers = [];
O.every = function (ms, fn) {
  const main = document.getElementById('main');
  const tick = () => {
    if (!main.isConnected || document.hidden) return;
    Promise.resolve(fn()).catch((e) => console.warn(e));
  };
  tick();
  timers.push(setInterval(tick, ms));
};

/* Caller-chosen ids make every change safe to retry (the hub returns the first result). */
O.newId = () => 'c-' + crypto.randomUUID();

const pages = {};
O.page = (name, fn) => { pages[name] = fn; };

O.signOut = function (why) {
  sessionStorage.removeItem('outpost.token');
  sessionStorage.removeItem('outpost.role');
  sessionStorage.removeItem('outpost.caller');
  if (why) sessionStorage.setItem('outpost.why', why);
  location.hash = '#/signin';
  route();
};

const NAV = [
  ['overview', 'Overview', 'viewer'],
  ['hosts', 'Hosts', 'viewer'],
  ['run', 'Run', 'operator'],
  ['tasks', 'Tasks', 'viewer'],
  ['metrics', 'Metrics', 'viewer'],
  ['access', 'Access', 'admin'],
];

function drawNav(current) {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  const out = document.getElementById('signout');
  if (!O.token()) {
    nav.replaceChildren();
    who.textContent = '';
    out.hidden = true;
    return;
  }
  nav.replaceChildren(...NAV.filter((n) => O.can(n[2])).map((n) =>
    O.el('a', { href: '#/' + n[0], text: n[1], class: n[0] === current ? 'active' : null })));
  who.textContent = (sessionStorage.getItem('outpost.caller') || '') + ' · ' + O.role();
  who.dataset.role = O.role();
  out.hidden = false;
}

const ALIAS = { host: 'hosts', task: 'tasks' };

async function route() {
  timers.forEach(clearInterval);
  timers = [];
  const old = document.getElementById('main');
  const main = O.el('main', { id: 'main' });
  old.replaceWith(main);
  const [name, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  if (!O.token()) {
    drawNav();
    return pages.signin(main);
  }
  const page = pages[name] ? name : 'overview';
  drawNav(ALIAS[page] || page);
  try {
    await pages[page](main, rest.map(decodeURIComponent));
  } catch (e) {
    if (main.isConnected) main.append(O.errorBox(e));
  }
}
O.route = route;

window.addEventListener('hashchange', route);
document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('signout').addEventListener('click', () => O.signOut());
  route();
});
