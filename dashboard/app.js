// The credits dashboard: one script, no framework, no outside asset (it works offline).
//
// Sign-in trades an API key for an HttpOnly SameSite=Strict session cookie (`POST /session`); the
// key is never kept in the page or in browser storage. Every `/v2` call then goes with the cookie
// alone, and every unsafe call carries the session's CSRF token in `X-CSRF-Token`. What a person
// sees follows the session key's scopes: pages and write controls they may not use are not drawn.
// Routes live in the URL hash (`#/overview`, `#/credits/credit_…`), so `/` serves every page.
// The DOM is built with `h()` and text nodes only (never innerHTML), and charts are inline SVG.
'use strict';

(() => {
  // ---------------------------------------------------------------------------------------------
  // State

  const session = {
    principal: null, // {keyId, accountId, memberId, scopes}
    csrf: null,
    account: null, // The account the pages show: the key's own, or the operator's pick.
    accounts: [], // Operators: the accounts for the picker.
    services: [], // The service catalog, for names and filters.
  };

  const ACCOUNT_STORAGE = 'credits.operatorAccount'; // An account id (not a secret).
  const ACCOUNT_SCOPES = [
    'credits:read', 'usage:read', 'usage:write', 'team:manage', 'budgets:manage',
    'webhooks:manage',
  ];
  const EVENT_TYPES = [
    'credit.created', 'credit.voided', 'credit.depleted', 'credit.expired',
    'credit.expiring_soon', 'balance.low', 'budget.threshold_reached', 'budget.exceeded',
    'reservation.expired', 'usage.recorded', 'topup.requested',
  ];
  const PALETTE = [
    '#4f46e5', '#0ea5e9', '#10b981', '#f59e0b', '#ef4444', '#8b5cf6', '#14b8a6', '#ec4899',
    '#84cc16', '#f97316', '#64748b', '#06b6d4',
  ];

  const can = (scope) => {
    const scopes = session.principal ? session.principal.scopes : [];
    return scopes.includes('*') || scopes.includes(scope);
  };
  const isOperator = () => Boolean(session.principal) && session.principal.accountId == null;
  const accountId = () => (session.account ? session.account.id : null);

  // ---------------------------------------------------------------------------------------------
  // Formatting (the reader's locale; timestamps shown in their time zone, days in UTC)

  const NUMBER = new Intl.NumberFormat(undefined);
  const COMPACT = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });
  const PERCENT = new Intl.NumberFormat(undefined, { style: 'percent', maximumFractionDigits: 0 });
  const DATE = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
  const DATE_TIME = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  const DAY = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });
  const DAY_LONG = new Intl.DateTimeFormat(undefined, {
    weekday: 'short', month: 'short', day: 'numeric', year: 'numeric', timeZone: 'UTC',
  });
  const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

  const num = (n) => (n == null ? '—' : NUMBER.format(n));
  const compact = (n) => COMPACT.format(n);
  const percent = (ratio) => PERCENT.format(ratio);
  const date = (iso) => (iso ? DATE.format(new Date(iso)) : '—');
  const dateTime = (iso) => (iso ? DATE_TIME.format(new Date(iso)) : '—');
  const dayLabel = (day) => DAY.format(new Date(`${day}T00:00:00Z`));
  const dayLong = (day) => DAY_LONG.format(new Date(`${day}T00:00:00Z`));

  function relative(iso) {
    if (!iso) return '';
    const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
    const units = [
      ['year', 31536000], ['month', 2592000], ['week', 604800], ['day', 86400],
      ['hour', 3600], ['minute', 60],
    ];
    for (const [unit, size] of units) {
      if (Math.abs(seconds) >= size) return RELATIVE.format(Math.round(seconds / size), unit);
    }
    return RELATIVE.format(Math.round(seconds), 'second');
  }

  /** RFC 3339 without fractional seconds, as the API writes them. */
  const rfc3339 = (d) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const utcDay = (d) => d.toISOString().slice(0, 10);
  function addDays(day, n) {
    const d = new Date(`${day}T00:00:00Z`);
    d.setUTCDate(d.getUTCDate() + n);
    return utcDay(d);
  }
  function daysBetween(fromDay, toDay) {
    const days = [];
    for (let day = fromDay; day <= toDay && days.length < 400; day = addDays(day, 1)) days.push(day);
    return days;
  }

  function serviceName(id) {
    if (id === 'any') return 'Any service';
    const service = session.services.find((s) => s.id === id);
    return service ? service.name : id;
  }
  const serviceColors = new Map();
  function serviceColor(id) {
    if (!serviceColors.has(id)) {
      const index = session.services.findIndex((s) => s.id === id);
      const taken = serviceColors.size;
      serviceColors.set(id, id === 'any' ? '#94a3b8' : PALETTE[(index >= 0 ? index : taken) % PALETTE.length]);
    }
    return serviceColors.get(id);
  }

  function newIdempotencyKey() {
    if (window.crypto && crypto.randomUUID) return `dash-${crypto.randomUUID()}`;
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return `dash-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
  }

  // ---------------------------------------------------------------------------------------------
  // DOM helpers

  function append(parent, kids) {
    for (const kid of kids) {
      if (kid == null || kid === false) continue;
      if (Array.isArray(kid)) append(parent, kid);
      else parent.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
  }

  /** An element with properties and children; text is always text, never markup. */
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    let value;
    for (const [key, v] of Object.entries(props || {})) {
      if (v == null || v === false) continue;
      if (key === 'class') el.className = v;
      else if (key === 'text') el.textContent = v;
      else if (key === 'value') value = v;
      else if (key.startsWith('on') && typeof v === 'function') el.addEventListener(key.slice(2).toLowerCase(), v);
      else if (key === 'checked' || key === 'selected' || key === 'disabled' || key === 'required') el[key] = true;
      else el.setAttribute(key, v === true ? '' : String(v));
    }
    append(el, kids);
    if (value !== undefined) el.value = value;
    return el;
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [key, v] of Object.entries(attrs || {})) if (v != null) el.setAttribute(key, String(v));
    append(el, kids);
    return el;
  }

  /** Marks a control that changes something, so that read-only sessions can be checked for none. */
  const writeControl = (el) => {
    el.setAttribute('data-write', '');
    return el;
  };

  function option(value, label, selected) {
    return h('option', { value, selected: selected || null }, label);
  }

  function field(label, control, hint) {
    return h('label', { class: 'field' }, h('span', null, label), control, hint ? h('small', null, hint) : null);
  }

  function badge(text, tone, plain) {
    return h('span', { class: `badge ${tone || ''} ${plain ? 'plain' : ''}`.trim() }, text);
  }

  function empty(title, text, action) {
    return h('div', { class: 'empty' }, h('strong', null, title), h('p', null, text), action ? h('p', null, action) : null);
  }

  function card(title, sub, body, headExtra) {
    return h('section', { class: 'card' },
      h('div', { class: 'card-head' },
        h('div', null, h('h2', null, title), sub ? h('div', { class: 'sub' }, sub) : null),
        headExtra || null),
      body);
  }

  function banner(tone, title, text, extra) {
    const icon = { warn: '!', danger: '!', info: 'i', ok: '✓' }[tone] || 'i';
    return h('div', { class: `banner ${tone}`, role: tone === 'warn' || tone === 'danger' ? 'alert' : 'status' },
      h('div', { class: 'banner-icon', 'aria-hidden': 'true' }, h('span', null, icon)),
      h('div', null, h('strong', null, title), text ? h('div', null, text) : null, extra || null));
  }

  function progress(ratio, tone, color) {
    const fill = h('div', { class: 'fill' });
    fill.style.width = `${Math.max(0, Math.min(1, ratio)) * 100}%`; // CSSOM: allowed under the CSP.
    if (color) fill.style.background = color;
    return h('div', { class: `progress ${tone || ''}`, role: 'progressbar', 'aria-valuemin': 0,
      'aria-valuemax': 100, 'aria-valuenow': Math.round(Math.min(1, ratio) * 100) }, fill);
  }

  function swatch(color) {
    const el = h('span', { class: 'swatch', 'aria-hidden': 'true' });
    el.style.background = color;
    return el;
  }

  function table(columns, rows, options = {}) {
    const head = h('tr', null, columns.map((c) => h('th', { class: c.class || null, scope: 'col' }, c.label)));
    const body = h('tbody', null, rows);
    return h('div', { class: 'table-wrap' }, h('table', { 'data-test': options.test || null }, h('thead', null, head), body));
  }

  function td(content, cls) {
    return h('td', { class: cls || null }, content);
  }

  function shortId(id) {
    if (!id) return '—';
    const cut = id.indexOf('_');
    return id.length > cut + 9 ? `${id.slice(0, cut + 1)}…${id.slice(-6)}` : id;
  }

  let toastBox = null;
  function toast(message, tone) {
    if (!toastBox || !toastBox.isConnected) {
      toastBox = h('div', { class: 'toasts', role: 'status' });
      document.body.append(toastBox);
    }
    const el = h('div', { class: `toast ${tone || ''}` }, message);
    toastBox.append(el);
    setTimeout(() => el.remove(), tone === 'error' ? 7000 : 4000);
  }

  function errorText(error) {
    if (error instanceof ApiError) {
      if (error.status === 403) return `Your key may not do this (${error.detail}).`;
      return error.detail || error.title || `The request failed (HTTP ${error.status}).`;
    }
    return String(error && error.message ? error.message : error);
  }

  function errorBox(error) {
    return h('div', { class: 'error-box', role: 'alert' }, errorText(error));
  }

  /** A modal dialog; resolves when closed. */
  function openDialog(title, body) {
    const dialog = h('dialog', { 'aria-label': title },
      h('div', { class: 'dialog-head' }, h('h2', null, title)),
      h('div', { class: 'dialog-body' }, body));
    document.body.append(dialog);
    dialog.addEventListener('close', () => dialog.remove());
    dialog.showModal();
    return dialog;
  }

  function confirmDialog(title, text, confirmLabel, danger) {
    return new Promise((resolve) => {
      let answer = false;
      const yes = h('button', { class: danger ? 'danger solid' : 'primary', type: 'button' }, confirmLabel);
      const no = h('button', { type: 'button' }, 'Cancel');
      const dialog = openDialog(title, h('div', null, h('p', null, text),
        h('div', { class: 'form' }, h('div', { class: 'buttons' }, no, yes))));
      yes.addEventListener('click', () => { answer = true; dialog.close(); });
      no.addEventListener('click', () => dialog.close());
      dialog.addEventListener('close', () => resolve(answer));
      yes.focus();
    });
  }

  /** A form whose submit runs `action` once at a time and shows its error inside the form. */
  function formOf(children, submitLabel, action, options = {}) {
    const error = h('div');
    const submit = h('button', { class: 'primary', type: 'submit' }, submitLabel);
    const buttons = h('div', { class: 'buttons' }, options.cancel || null, submit);
    const form = h('form', { class: 'form', novalidate: options.novalidate || null, 'data-test': options.test || null },
      children, error, buttons);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (submit.disabled) return;
      submit.disabled = true;
      error.replaceChildren();
      try {
        await action(new FormData(form), form);
      } catch (e) {
        error.replaceChildren(errorBox(e));
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  }

  function dialogForm(title, children, submitLabel, action, test) {
    let dialog = null;
    const cancel = h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel');
    const form = formOf(children, submitLabel, async (data, f) => {
      await action(data, f);
      dialog.close();
    }, { cancel, test });
    dialog = openDialog(title, form);
    const first = form.querySelector('input, select');
    if (first) first.focus();
    return dialog;
  }

  function download(filename, text, type) {
    const url = URL.createObjectURL(new Blob([text], { type }));
    const link = h('a', { href: url, download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  function csvCell(value) {
    const text = value == null ? '' : String(value);
    return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  }

  async function copyText(text, button) {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = 'Copied';
    } catch (_) {
      button.textContent = 'Select and copy it';
    }
    setTimeout(() => { button.textContent = 'Copy'; }, 2000);
  }

  /** A secret shown once: it lives only in this element, which goes away with the page. */
  function secretBanner(title, text, secret, onDone) {
    const code = h('code', { 'data-test': 'secret' }, secret);
    const copy = h('button', { type: 'button', class: 'small' }, 'Copy');
    copy.addEventListener('click', () => copyText(secret, copy));
    const done = h('button', { type: 'button', class: 'small' }, 'Done');
    const el = banner('ok', title, text, h('div', { class: 'secret' }, code, copy, done));
    el.setAttribute('data-test', 'new-secret');
    done.addEventListener('click', () => { el.remove(); if (onDone) onDone(); });
    return el;
  }

  // ---------------------------------------------------------------------------------------------
  // The API

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && problem.detail) || `HTTP ${status}`);
      this.status = status;
      this.code = problem && problem.code;
      this.title = problem && problem.title;
      this.detail = problem && problem.detail;
    }
  }

  async function api(method, path, options = {}) {
    const url = new URL(path, window.location.origin);
    for (const [key, value] of Object.entries(options.query || {})) {
      if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, value);
    }
    const headers = { Accept: options.accept || 'application/json' };
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }
    if (method !== 'GET' && method !== 'HEAD' && session.csrf) headers['X-CSRF-Token'] = session.csrf;
    if (options.idempotencyKey) headers['Idempotency-Key'] = options.idempotencyKey;
    let response;
    try {
      response = await fetch(url, init);
    } catch (_) {
      throw new ApiError(0, { detail: 'The service cannot be reached. Check the connection and try again.' });
    }
    if (response.status === 401 && !options.allowUnauthorized && session.principal) {
      sessionEnded('Your session ended. Sign in again to go on.');
      throw new ApiError(401, { detail: 'Signed out' });
    }
    if (!response.ok) {
      let problem = null;
      try { problem = await response.json(); } catch (_) { problem = null; }
      throw new ApiError(response.status, problem);
    }
    if (response.status === 204) return null;
    if (options.accept === 'text/csv') return response.text();
    return response.json();
  }

  const get = (path, query) => api('GET', path, { query });
  const post = (path, body, extra) => api('POST', path, Object.assign({ body }, extra || {}));
  const patch = (path, body) => api('PATCH', path, { body });
  const del = (path) => api('DELETE', path);

  /** Every page of a list, up to `max` items. */
  async function listAll(path, query, max = 500) {
    const items = [];
    let cursor = null;
    do {
      const page = await get(path, Object.assign({}, query, { limit: 100, cursor }));
      items.push(...page.data);
      cursor = page.hasMore ? page.nextCursor : null;
    } while (cursor && items.length < max);
    return items;
  }

  /** Query and body fields naming the account: operators must, account keys need not. */
  const scoped = (extra) => Object.assign(isOperator() ? { accountId: accountId() } : {}, extra || {});

  /** Runs the given loaders at once; each answers {value} or {error}, so one failure is local. */
  async function settle(loaders) {
    const entries = Object.entries(loaders);
    const results = await Promise.all(entries.map(([, load]) =>
      (load ? load().then((value) => ({ value }), (error) => ({ error })) : Promise.resolve({ skipped: true }))));
    return Object.fromEntries(entries.map(([key], i) => [key, results[i]]));
  }

  /** Maps over `items` with at most `limit` calls in flight. */
  async function pool(items, limit, fn) {
    const results = new Array(items.length);
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]).catch(() => null);
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
    return results;
  }

  // ---------------------------------------------------------------------------------------------
  // Charts: stacked bars of credits per day, as inline SVG

  function niceStep(max, count) {
    const raw = max / count;
    const magnitude = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((m) => raw <= m);
    return Math.max(1, step || magnitude * 10);
  }

  /**
   * `days`: YYYY-MM-DD in order; `series`: [{key, label, color, values: Map(day -> credits)}].
   * Redraws at its container's width, so it stays crisp on a phone and a laptop.
   */
  function barChart(days, series, options = {}) {
    const height = options.height || 240;
    const wrap = h('div', { class: 'chart', 'data-test': options.test || null });
    const totals = days.map((day) => series.reduce((sum, x) => sum + (x.values.get(day) || 0), 0));
    const max = Math.max(0, ...totals);
    let lastWidth = 0;
    const draw = () => {
      const width = Math.max(280, Math.floor(wrap.clientWidth || 640));
      if (width === lastWidth) return;
      lastWidth = width;
      const pad = { left: 52, right: 8, top: 10, bottom: 28 };
      const plotWidth = width - pad.left - pad.right;
      const plotHeight = height - pad.top - pad.bottom;
      const step = niceStep(max || 4, 4);
      const top = Math.max(step, Math.ceil((max || 1) / step) * step);
      const y = (v) => pad.top + plotHeight - (v / top) * plotHeight;
      const slot = plotWidth / Math.max(1, days.length);
      const barWidth = Math.max(2, Math.min(34, slot * 0.7));
      const label = options.label || 'Credits used per day';
      const root = s('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': label });
      const axis = s('g', { class: 'axis' });
      for (let v = 0; v <= top + 1e-9; v += step) {
        root.append(s('line', { class: 'grid-line', x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }));
        axis.append(s('text', { x: pad.left - 8, y: y(v) + 4, 'text-anchor': 'end' }, compact(v)));
      }
      const bars = s('g');
      days.forEach((day, i) => {
        const x = pad.left + i * slot + (slot - barWidth) / 2;
        let stacked = 0;
        for (const line of series) {
          const v = line.values.get(day) || 0;
          if (!v) continue;
          const y0 = y(stacked);
          const y1 = y(stacked + v);
          bars.append(s('rect', {
            class: 'bar', x: x.toFixed(1), y: y1.toFixed(1), width: barWidth.toFixed(1),
            height: Math.max(1, y0 - y1).toFixed(1), fill: line.color, rx: barWidth > 8 ? 2 : 0,
          }, s('title', null, `${dayLong(day)} · ${line.label}: ${num(v)} credits`)));
          stacked += v;
        }
      });
      root.append(bars);
      const every = Math.max(1, Math.ceil(days.length / Math.max(2, Math.floor(plotWidth / 64))));
      days.forEach((day, i) => {
        if ((days.length - 1 - i) % every !== 0) return;
        axis.append(s('text', { x: pad.left + i * slot + slot / 2, y: height - 8, 'text-anchor': 'middle' }, dayLabel(day)));
      });
      root.append(s('line', { class: 'base-line', x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0) }));
      root.append(axis);
      wrap.replaceChildren(root);
    };
    new ResizeObserver(() => draw()).observe(wrap);
    return wrap;
  }

  function legend(series) {
    return h('div', { class: 'legend' }, series.map((line) =>
      h('span', { class: 'item' }, swatch(line.color), h('strong', null, line.label), num(line.total))));
  }

  /** Summary rows grouped by day and `key` into chart series, largest first. */
  function seriesOf(rows, key, labelOf, colorOf) {
    const byKey = new Map();
    for (const row of rows) {
      const id = row[key] == null ? '' : row[key];
      if (!byKey.has(id)) byKey.set(id, { key: id, values: new Map(), total: 0, count: 0 });
      const line = byKey.get(id);
      if (row.day) line.values.set(row.day, (line.values.get(row.day) || 0) + row.credits);
      line.total += row.credits;
      line.count += row.count;
    }
    const series = [...byKey.values()].sort((a, b) => b.total - a.total);
    series.forEach((line, i) => {
      line.label = labelOf(line.key);
      line.color = colorOf ? colorOf(line.key, i) : PALETTE[i % PALETTE.length];
    });
    return series;
  }

  // ---------------------------------------------------------------------------------------------
  // Session: sign in, sign out, boot

  const app = () => document.getElementById('app');

  function renderSignIn(message) {
    const key = h('input', {
      type: 'password', name: 'key', autocomplete: 'off', spellcheck: 'false', required: true,
      placeholder: 'ck_live_… or ck_op_…', 'aria-label': 'API key',
    });
    const form = formOf([
      field('API key', key),
    ], 'Sign in', async () => {
      const secret = key.value.trim();
      if (!secret) throw new Error('Paste an API key to sign in.');
      let answer;
      try {
        answer = await api('POST', '/session', { body: { key: secret }, allowUnauthorized: true });
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) throw new Error('That key was not recognised, or it was revoked. Check it and try again.');
        throw e;
      }
      key.value = '';
      await startSession(answer);
    }, { test: 'signin' });
    app().replaceChildren(h('div', { class: 'signin' },
      h('div', { class: 'card' },
        h('div', { class: 'brand' }, h('img', { src: '/assets/icon.svg', alt: '' }), 'Credits'),
        h('h1', null, 'Sign in'),
        h('p', null, 'Use an API key of your account, or the operator key. Each person sees what their key’s scopes allow.'),
        message ? banner('info', message) : null,
        form,
        h('div', { class: 'fineprint' },
          'The key is exchanged for a session cookie that scripts cannot read; it is never stored in this browser.'))));
    key.focus();
  }

  function sessionEnded(message) {
    session.principal = null;
    session.csrf = null;
    session.account = null;
    renderSignIn(message);
  }

  async function signOut() {
    try {
      await api('DELETE', '/session', { allowUnauthorized: true });
    } catch (_) {
      // Signed out either way: the page forgets the session.
    }
    sessionEnded('You are signed out.');
    if (window.location.hash) history.replaceState(null, '', window.location.pathname);
  }

  async function startSession(answer) {
    session.principal = answer.principal;
    session.csrf = answer.csrfToken;
    session.account = null;
    session.accounts = [];
    const loaded = await settle({
      services: () => listAll('/v2/services', {}, 200),
      account: isOperator() ? null : () => get(`/v2/accounts/${encodeURIComponent(session.principal.accountId)}`),
      accounts: isOperator() && can('accounts:manage') ? () => listAll('/v2/accounts', {}, 200) : null,
    });
    session.services = loaded.services.value || [];
    if (isOperator()) {
      session.accounts = loaded.accounts.value || [];
      const saved = sessionStorage.getItem(ACCOUNT_STORAGE);
      session.account = session.accounts.find((a) => a.id === saved) || null;
    } else {
      session.account = loaded.account.value || { id: session.principal.accountId, name: null };
    }
    renderShell();
    route();
  }

  async function boot() {
    try {
      const answer = await api('GET', '/session', { allowUnauthorized: true });
      await startSession(answer);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) renderSignIn();
      else renderSignIn(errorText(e));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Shell and routing

  const PAGES = [
    { id: 'overview', label: 'Overview', visible: () => can('credits:read'), account: true, render: pageOverview },
    { id: 'credits', label: 'Credits', visible: () => can('credits:read'), account: true, render: pageCredits },
    { id: 'usage', label: 'Usage', visible: () => can('usage:read'), account: true, render: pageUsage },
    { id: 'team', label: 'Team', visible: () => can('team:manage'), account: true, render: pageTeam },
    { id: 'budgets', label: 'Budgets', visible: () => can('budgets:manage'), account: true, render: pageBudgets },
    { id: 'webhooks', label: 'Webhooks', visible: () => can('webhooks:manage'), account: false, render: pageWebhooks },
    { id: 'operator', label: 'Operator', section: 'Operator', visible: () => isOperator() && can('accounts:manage'), account: false, render: pageOperator },
  ];

  function roleLabel() {
    if (isOperator()) return ['Operator', 'accent'];
    if (['team:manage', 'budgets:manage', 'webhooks:manage'].every(can)) return ['Full access', 'ok'];
    if (can('usage:write') || can('team:manage') || can('budgets:manage') || can('webhooks:manage')) return ['Member', 'info'];
    return ['Read-only', ''];
  }

  let nav = null;
  let mainEl = null;

  function accountPicker() {
    const select = h('select', { 'aria-label': 'Account', 'data-test': 'account-picker' },
      option('', 'All accounts (pick one)'),
      session.accounts.map((a) => option(a.id, a.name || a.externalId || a.id, a.id === accountId())));
    select.addEventListener('change', () => selectAccount(select.value || null));
    return h('label', { class: 'account-picker' }, h('span', { class: 'muted' }, 'Account'), select);
  }

  function selectAccount(id) {
    session.account = session.accounts.find((a) => a.id === id) || null;
    if (session.account) sessionStorage.setItem(ACCOUNT_STORAGE, session.account.id);
    else sessionStorage.removeItem(ACCOUNT_STORAGE);
    renderShell();
    route();
  }

  function renderShell() {
    const [role, tone] = roleLabel();
    const p = session.principal;
    const who = isOperator() ? 'Operator' : (session.account && session.account.name) || p.accountId;
    const signOutButton = h('button', { type: 'button', class: 'small', 'data-test': 'sign-out' }, 'Sign out');
    signOutButton.addEventListener('click', signOut);
    const top = h('header', { class: 'topbar' },
      h('a', { class: 'brand', href: '#/' }, h('img', { src: '/assets/icon.svg', alt: '' }), h('span', null, 'Credits')),
      isOperator() && session.accounts.length ? accountPicker() : null,
      h('div', { class: 'spacer' }),
      h('div', { class: 'identity' },
        h('div', { class: 'who' }, h('strong', null, who), h('span', { class: 'mono' }, p.keyId)),
        badge(role, tone, true),
        signOutButton));
    nav = h('nav', { class: 'sidenav', 'aria-label': 'Pages' });
    let section = null;
    for (const page of PAGES) {
      if (!page.visible()) continue;
      if (page.section && page.section !== section) {
        section = page.section;
        nav.append(h('div', { class: 'nav-section' }, section));
      }
      nav.append(h('a', { href: `#/${page.id}`, 'data-page': page.id },
        h('span', { class: 'nav-icon', 'aria-hidden': 'true' }), page.label));
    }
    mainEl = h('main', { id: 'main' });
    app().replaceChildren(top, h('div', { class: 'layout' }, nav, mainEl));
  }

  function parseHash() {
    const raw = window.location.hash.replace(/^#\/?/, '');
    const [path, search] = raw.split('?');
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    return { page: parts[0] || '', arg: parts[1] || null, query: new URLSearchParams(search || '') };
  }

  function hashFor(page, arg, query) {
    let hash = `#/${page}`;
    if (arg) hash += `/${encodeURIComponent(arg)}`;
    const search = query ? new URLSearchParams(Object.entries(query).filter(([, v]) => v)).toString() : '';
    return search ? `${hash}?${search}` : hash;
  }

  /** Draws the page the hash names; resolves when it is drawn. */
  function route() {
    if (!session.principal || !mainEl) return Promise.resolve();
    const { page: id, arg, query } = parseHash();
    const visible = PAGES.filter((p) => p.visible());
    let page = visible.find((p) => p.id === id);
    if (!page) {
      const home = isOperator() && !accountId() ? visible.find((p) => p.id === 'operator') : visible[0];
      if (!home) {
        mainEl.replaceChildren(empty('Nothing to show', 'This key has no scope the dashboard can use. Ask an owner for a key with credits:read.'));
        return Promise.resolve();
      }
      history.replaceState(null, '', hashFor(home.id));
      page = home;
    }
    for (const link of nav.querySelectorAll('a')) link.classList.toggle('active', link.dataset.page === page.id);
    const view = h('div', { class: 'view', 'data-view': page.id });
    mainEl.replaceChildren(view);
    window.scrollTo(0, 0);
    if (page.account && !accountId()) {
      view.append(pageHead(page.label, 'Operators look at one account at a time.'),
        h('div', { class: 'card' }, empty('Pick an account',
          'Choose an account in the picker at the top, or open one from the Operator page.',
          h('a', { class: 'button', href: '#/operator' }, 'Go to accounts'))));
      return Promise.resolve();
    }
    view.append(h('div', { class: 'loading' }, 'Loading…'));
    return page.render(view, arg, query).catch((e) => {
      if (e instanceof ApiError && e.status === 401) return;
      view.replaceChildren(pageHead(page.label), errorBox(e));
    });
  }

  /** Goes to `hash`, or redraws when already there (setting the same hash fires no event). */
  function navigate(hash) {
    if (window.location.hash === hash) return route();
    window.location.hash = hash;
    return Promise.resolve();
  }

  function pageHead(title, sub, actions) {
    return h('div', { class: 'page-head' },
      h('div', null, h('h1', null, title), sub ? h('p', null, sub) : null),
      actions && actions.length ? h('div', { class: 'actions' }, actions) : null);
  }

  function accountLabel() {
    const a = session.account;
    return a ? (a.name || a.externalId || a.id) : '';
  }

  // ---------------------------------------------------------------------------------------------
  // Shared pieces: credit status, add-credits form

  function creditStatusBadge(record, soonDays) {
    const tones = { active: 'ok', depleted: '', expired: 'warn', voided: 'danger' };
    const main = badge(record.status, tones[record.status]);
    if (record.status === 'active' && record.expiresAt) {
      const days = (new Date(record.expiresAt).getTime() - Date.now()) / 86400000;
      if (days <= (soonDays || 7)) return h('span', { class: 'chips' }, main, badge('expires soon', 'warn'));
    }
    return main;
  }

  function serviceSelect(name, selected, options = {}) {
    return h('select', { name, 'aria-label': options.label || 'Service' },
      options.all ? option('', options.all, !selected) : null,
      option('any', 'Any service', selected === 'any'),
      session.services.map((svc) => option(svc.id, svc.name || svc.id, svc.id === selected)));
  }

  /** The operator's form to record a purchase or give a grant to `account`. */
  function addCreditsForm(account, onDone) {
    const idempotencyKey = newIdempotencyKey(); // One per form: a double submit pays once.
    const amount = h('input', { name: 'amount', type: 'number', min: 1, step: 1, required: true, placeholder: '1000', inputmode: 'numeric' });
    const kind = h('select', { name: 'kind' }, option('purchase', 'Purchase (paid)'), option('grant', 'Grant (free)'));
    const expires = h('input', { name: 'expiresAt', type: 'date', value: addDays(utcDay(new Date()), 365) });
    const reference = h('input', { name: 'reference', placeholder: 'pay_0001', autocomplete: 'off' });
    const description = h('input', { name: 'description', placeholder: 'SmartCheck annual pack' });
    const priority = h('input', { name: 'priority', type: 'number', step: 1, value: 0 });
    return formOf([
      h('div', { class: 'row' }, field('Amount (credits)', amount), field('Kind', kind)),
      h('div', { class: 'row' }, field('Service', serviceSelect('service', 'any')),
        field('Expires', expires, 'UTC end of day. Clear it for credits that never expire.')),
      h('div', { class: 'row' }, field('Payment reference', reference, 'Your billing system’s id; a second record with it is refused.'),
        field('Priority', priority, 'Higher is spent first.')),
      field('Description', description),
    ], 'Add credits', async (data) => {
      const value = Number(data.get('amount'));
      if (!Number.isSafeInteger(value) || value < 1) throw new Error('Amount must be a whole number of credits, at least 1.');
      const body = {
        accountId: account.id,
        amount: value,
        service: data.get('service') || 'any',
        kind: data.get('kind'),
        priority: Number(data.get('priority') || 0),
      };
      if (data.get('expiresAt')) body.expiresAt = `${data.get('expiresAt')}T23:59:59Z`;
      if (data.get('reference')) body.reference = data.get('reference');
      if (data.get('description')) body.description = data.get('description');
      const created = await post('/v2/credits', body, { idempotencyKey });
      toast(`${num(created.amount)} credits added to ${account.name || account.id}.`);
      if (onDone) onDone(created);
    }, { test: 'add-credits' });
  }

  function openAddCredits(account, onDone) {
    let dialog = null;
    const form = addCreditsForm(account, (created) => { dialog.close(); if (onDone) onDone(created); });
    const cancel = h('button', { type: 'button' }, 'Cancel');
    cancel.addEventListener('click', () => dialog.close());
    form.querySelector('.buttons').prepend(cancel);
    dialog = openDialog(`Add credits to ${account.name || account.id}`, form);
  }

  // ---------------------------------------------------------------------------------------------
  // Overview

  async function pageOverview(view) {
    const to = new Date();
    const fromDay = addDays(utcDay(to), -29);
    const loaded = await settle({
      account: () => get(`/v2/accounts/${encodeURIComponent(accountId())}`),
      balance: () => get('/v2/balance', scoped()),
      summary: can('usage:read') ? () => get('/v2/usage/summary', scoped({
        from: `${fromDay}T00:00:00Z`, to: rfc3339(to), groupBy: 'day,service',
      })) : null,
      budgets: can('budgets:manage') ? () => listAll('/v2/budgets', scoped(), 100) : null,
    });
    if (loaded.balance.error) throw loaded.balance.error;
    const account = loaded.account.value || session.account;
    const balance = loaded.balance.value;
    const parts = [pageHead('Overview', accountLabel() ? `${accountLabel()} · balance as of ${dateTime(balance.asOf)}` : null,
      can('credits:write') ? [writeControl(h('button', { class: 'primary', type: 'button', onclick: () => openAddCredits(account, () => route()) }, 'Add credits'))] : [])];

    const threshold = account && account.lowBalanceThreshold;
    if (threshold != null && balance.available <= threshold) {
      const low = banner('warn', 'Low balance',
        `${num(balance.available)} credits available, at or below the alert threshold of ${num(threshold)}. ` +
        (isOperator() ? 'Add credits to keep this account’s requests flowing.' : 'Buy more credits before requests start failing with 402.'));
      low.setAttribute('data-test', 'low-balance');
      parts.push(low);
    }

    const summaryRows = loaded.summary.value ? loaded.summary.value.data : [];
    const used = summaryRows.reduce((sum, row) => sum + row.credits, 0);
    const requests = summaryRows.reduce((sum, row) => sum + row.count, 0);
    const services = Object.entries(balance.byService || {});
    const next = balance.nextExpiry;
    parts.push(h('div', { class: 'grid kpis' },
      kpi('Available', num(balance.available), services.length ? `across ${services.length} service${services.length === 1 ? '' : 's'}` : 'no credits yet', 'available'),
      kpi('Reserved', num(balance.reserved), 'held by open reservations', 'reserved'),
      next ? kpi('Next expiry', date(next.expiresAt), `${num(next.remaining)} credits ${relative(next.expiresAt)}`, 'next-expiry', true)
        : kpi('Next expiry', 'None', 'no credits are due to expire', 'next-expiry', true),
      loaded.summary.value ? kpi('Used, last 30 days', num(used), `${num(requests)} requests`, 'used')
        : kpi('Used, last 30 days', '—', loaded.summary.error ? 'usage is unavailable' : 'needs usage:read', 'used')));

    const byService = services.sort((a, b) => b[1].available - a[1].available);
    const maxAvailable = Math.max(1, ...byService.map(([, b]) => b.available));
    const serviceCard = card('Available by service', '“Any service” credits are spent after a service’s own.',
      h('div', { class: 'card-body' }, byService.length
        ? byService.map(([id, b]) => h('div', { class: 'service-row', 'data-test': 'service-balance' },
          h('div', { class: 'name' }, swatch(serviceColor(id)), serviceName(id)),
          progress(b.available / maxAvailable, null, serviceColor(id)),
          h('div', { class: 'figures' }, num(b.available), h('span', { class: 'sub' }, b.reserved ? `${num(b.reserved)} reserved` : ''))))
        : empty('No credits yet', isOperator() ? 'Add credits to this account to get started.' : 'Credits appear here once your provider records a purchase or a grant.')));

    let usageCard = null;
    if (can('usage:read')) {
      let body;
      if (loaded.summary.error) body = errorBox(loaded.summary.error);
      else if (!summaryRows.length) {
        body = empty('No usage in the last 30 days', 'Usage shows here, by service and day, as soon as your systems call POST /v2/usage.');
      } else {
        const series = seriesOf(summaryRows, 'service', serviceName, (id) => serviceColor(id));
        body = h('div', null, barChart(daysBetween(fromDay, utcDay(to)), series, { test: 'usage-chart' }), legend(series));
      }
      usageCard = card('Usage, last 30 days', 'Credits per day by service (UTC days)', h('div', { class: 'card-body' }, body),
        h('a', { href: '#/usage' }, 'Open usage →'));
    }

    let budgetCard = null;
    if (can('budgets:manage')) {
      const budgets = loaded.budgets.value || [];
      budgetCard = card('Budgets', 'Spent this period against each limit', h('div', { class: 'card-body' },
        loaded.budgets.error ? errorBox(loaded.budgets.error)
          : budgets.length ? budgets.map(budgetProgress)
            : empty('No budgets yet', 'Budgets cap what a member, a key, a service or the whole account may spend per day, week or month.',
              h('a', { href: '#/budgets' }, 'Create a budget'))),
      h('a', { href: '#/budgets' }, 'Manage →'));
    }

    parts.push(h('div', { class: 'stack' }, usageCard,
      h('div', { class: budgetCard ? 'grid two' : 'stack' }, serviceCard, budgetCard)));
    view.replaceChildren(...parts);
  }

  function kpi(label, value, hint, test, small) {
    return h('div', { class: 'card kpi', 'data-test': `kpi-${test}` },
      h('div', { class: 'label' }, label),
      h('div', { class: `value ${small ? 'small' : ''}` }, value),
      hint ? h('div', { class: 'hint' }, hint) : null);
  }

  function budgetTone(ratio) {
    if (ratio >= 1) return 'danger';
    if (ratio >= 0.8) return 'warn';
    return '';
  }

  function budgetProgress(budget) {
    const ratio = budget.limit ? budget.spent / budget.limit : 0;
    return h('div', { class: 'budget-row', 'data-test': 'budget' },
      h('div', { class: 'line' },
        h('div', null, h('strong', null, budget.name), ' ', h('span', { class: 'muted' }, `${periodLabel(budget.period)} · ${budget.enforcement}`)),
        h('div', { class: 'figures' }, `${num(budget.spent)} / ${num(budget.limit)}`, ' ', h('span', { class: 'muted' }, percent(ratio)))),
      progress(ratio, budgetTone(ratio)));
  }

  const periodLabel = (period) => ({ day: 'Daily', week: 'Weekly', month: 'Monthly', lifetime: 'Lifetime' }[period] || period);

  // ---------------------------------------------------------------------------------------------
  // Credits

  async function pageCredits(view, creditId, query) {
    const filters = { service: query.get('service') || '', status: query.get('status') || '' };
    const head = pageHead('Credits', 'Every purchase and grant: what is left, what was used, and when it expires.',
      can('credits:write') ? [writeControl(h('button', { class: 'primary', type: 'button', onclick: () => openAddCredits(session.account, () => route()) }, 'Add credits'))] : []);

    const setFilter = (key, value) => {
      const next = Object.assign({}, filters, { [key]: value });
      window.location.hash = hashFor('credits', null, next);
    };
    const service = serviceSelect('service', filters.service, { all: 'All services' });
    service.addEventListener('change', () => setFilter('service', service.value));
    const status = h('select', { name: 'status', 'aria-label': 'Status' },
      option('', 'Any status', !filters.status),
      ['active', 'depleted', 'expired', 'voided'].map((st) => option(st, st[0].toUpperCase() + st.slice(1), st === filters.status)));
    status.addEventListener('change', () => setFilter('status', status.value));
    const filterBar = h('div', { class: 'filters' }, field('Service', service), field('Status', status));

    const rows = h('tbody');
    const more = h('button', { type: 'button', class: 'small', hidden: true }, 'Load more');
    const listBody = h('div');
    const soonDays = session.account && session.account.expiringSoonDays;
    let cursor = null;
    let count = 0;
    const loadPage = async () => {
      more.disabled = true;
      const page = await get('/v2/credits', scoped({ service: filters.service, status: filters.status, limit: 50, cursor }));
      for (const record of page.data) {
        const usedRatio = record.amount ? (record.amount - record.remaining - record.reserved) / record.amount : 0;
        const row = h('tr', { class: `clickable ${record.id === creditId ? 'selected' : ''}`, 'data-test': 'credit-row', tabindex: 0 },
          td([h('div', { class: 'primary' }, record.description || (record.kind === 'grant' ? 'Granted credits' : 'Purchased credits')),
            h('div', { class: 'sub mono' }, record.id)]),
          td([swatch(serviceColor(record.service)), serviceName(record.service)]),
          td(badge(record.kind, record.kind === 'grant' ? 'info' : 'accent', true), 'hide-sm'),
          td([h('div', null, `${num(record.remaining)} / ${num(record.amount)}`), progress(1 - usedRatio, 'ok')], 'num'),
          td(creditStatusBadge(record, soonDays)),
          td(record.expiresAt ? [h('div', null, date(record.expiresAt)), h('div', { class: 'sub' }, relative(record.expiresAt))] : h('span', { class: 'muted' }, 'Never')),
          td(date(record.createdAt), 'hide-sm'));
        const open = () => { window.location.hash = hashFor('credits', record.id, filters); };
        row.addEventListener('click', open);
        row.addEventListener('keydown', (e) => { if (e.key === 'Enter') open(); });
        rows.append(row);
      }
      count += page.data.length;
      cursor = page.hasMore ? page.nextCursor : null;
      more.hidden = !cursor;
      more.disabled = false;
      if (!count) {
        listBody.replaceChildren(filters.service || filters.status
          ? empty('No credit records match', 'Clear the filters to see every record.', h('a', { href: '#/credits' }, 'Clear filters'))
          : empty('No credits yet', can('credits:write') ? 'Use “Add credits” to record a purchase or give a grant.'
            : 'Credits appear here once your provider records a purchase or a grant.'));
      }
    };
    more.addEventListener('click', () => loadPage().catch((e) => toast(errorText(e), 'error')));
    listBody.append(h('div', { class: 'table-wrap' }, h('table', { 'data-test': 'credits-table' },
      h('thead', null, h('tr', null, ['Credit', 'Service', 'Kind', 'Remaining / amount', 'Status', 'Expires', 'Created'].map((label, i) =>
        h('th', { class: [null, null, 'hide-sm', 'num', null, null, 'hide-sm'][i] }, label)))),
      rows)));
    await loadPage();

    const detail = creditId ? await creditDetail(creditId, filters) : null;
    view.replaceChildren(head, detail, card('Credit records', accountLabel(),
      h('div', { class: 'card-body flush' }, listBody, h('div', { class: 'card-body' }, more)), filterBar));
  }

  async function creditDetail(creditId, filters) {
    const loaded = await settle({
      record: () => get(`/v2/credits/${encodeURIComponent(creditId)}`),
      ledger: () => get('/v2/ledger', { creditId, limit: 100 }),
    });
    const close = h('a', { href: hashFor('credits', null, filters) }, 'Close');
    if (loaded.record.error) return h('div', { class: 'stack' }, card('Credit record', creditId, h('div', { class: 'card-body' }, errorBox(loaded.record.error)), close));
    const record = loaded.record.value;
    const actions = [];
    if (can('credits:write') && record.remaining > 0 && record.status === 'active') {
      actions.push(writeControl(h('button', {
        class: 'danger small', type: 'button',
        onclick: async () => {
          const ok = await confirmDialog('Void this credit record?',
            `The ${num(record.remaining)} credits left on it can no longer be spent. This cannot be undone.`, 'Void remaining', true);
          if (!ok) return;
          try {
            await post(`/v2/credits/${encodeURIComponent(record.id)}/void`, {});
            toast('Credit record voided.');
            route();
          } catch (e) { toast(errorText(e), 'error'); }
        },
      }, 'Void remaining')));
    }
    const facts = h('dl', { class: 'details' },
      h('dt', null, 'Status'), h('dd', null, creditStatusBadge(record)),
      h('dt', null, 'Service'), h('dd', null, serviceName(record.service)),
      h('dt', null, 'Kind'), h('dd', null, record.kind),
      h('dt', null, 'Amount'), h('dd', null, num(record.amount)),
      h('dt', null, 'Used'), h('dd', null, num(record.used)),
      h('dt', null, 'Reserved'), h('dd', null, num(record.reserved)),
      h('dt', null, 'Remaining'), h('dd', null, h('strong', null, num(record.remaining))),
      record.expiredAmount ? [h('dt', null, 'Expired'), h('dd', null, num(record.expiredAmount))] : null,
      record.voidedAmount ? [h('dt', null, 'Voided'), h('dd', null, num(record.voidedAmount))] : null,
      h('dt', null, 'Expires'), h('dd', null, record.expiresAt ? `${dateTime(record.expiresAt)} (${relative(record.expiresAt)})` : 'Never'),
      h('dt', null, 'Priority'), h('dd', null, String(record.priority)),
      record.reference ? [h('dt', null, 'Reference'), h('dd', { class: 'mono' }, record.reference)] : null,
      h('dt', null, 'Created'), h('dd', null, dateTime(record.createdAt)),
      h('dt', null, 'Id'), h('dd', { class: 'mono' }, record.id));
    const adds = new Set(['purchase', 'grant', 'release']);
    const takes = new Set(['usage', 'hold', 'expiry', 'void']);
    const entryTone = { purchase: 'ok', grant: 'info', usage: 'accent', hold: 'warn', capture: 'accent', release: '', expiry: 'warn', void: 'danger' };
    let ledger;
    if (loaded.ledger.error) ledger = errorBox(loaded.ledger.error);
    else if (!loaded.ledger.value.data.length) ledger = empty('No ledger entries', 'Entries appear as credits are used, held or expire.');
    else {
      ledger = table([{ label: 'When' }, { label: 'Type' }, { label: 'Credits', class: 'num' }, { label: 'Remaining after', class: 'num' }, { label: 'By' }],
        loaded.ledger.value.data.map((entry) => h('tr', { 'data-test': 'ledger-row' },
          td(dateTime(entry.createdAt)),
          td(badge(entry.type, entryTone[entry.type], true)),
          td(`${adds.has(entry.type) ? '+' : takes.has(entry.type) ? '−' : ''}${num(entry.credits)}`, 'num'),
          td(num(entry.remainingAfter), 'num'),
          td(h('span', { class: 'mono sub' }, entry.actor.memberId ? shortId(entry.actor.memberId) : shortId(entry.actor.apiKeyId))))),
        { test: 'ledger' });
      if (loaded.ledger.value.hasMore) ledger = h('div', null, ledger, h('div', { class: 'card-body muted' }, 'Showing the latest 100 entries. Export the whole ledger from the Usage page.'));
    }
    return h('div', { class: 'grid main-side', 'data-test': 'credit-detail' },
      card('Ledger', 'Every change to this record, newest first', h('div', { class: 'card-body flush' }, ledger)),
      card(record.description || 'Credit record', shortId(record.id), h('div', { class: 'card-body' }, facts,
        actions.length ? h('div', { class: 'form' }, h('div', { class: 'buttons' }, actions)) : null), close));
  }

  // ---------------------------------------------------------------------------------------------
  // Usage

  const GROUPS = {
    service: { label: 'Service', field: 'service' },
    member: { label: 'Member', field: 'memberId' },
    apiKey: { label: 'API key', field: 'apiKeyId' },
  };

  async function pageUsage(view, _arg, query) {
    const today = utcDay(new Date());
    const state = {
      from: /^\d{4}-\d{2}-\d{2}$/.test(query.get('from') || '') ? query.get('from') : addDays(today, -29),
      to: /^\d{4}-\d{2}-\d{2}$/.test(query.get('to') || '') ? query.get('to') : today,
      by: GROUPS[query.get('by')] ? query.get('by') : 'service',
    };
    if (state.from > state.to) [state.from, state.to] = [state.to, state.from];
    const go = (change) => { window.location.hash = hashFor('usage', null, Object.assign({}, state, change)); };

    const range = { from: `${state.from}T00:00:00Z`, to: `${addDays(state.to, 1)}T00:00:00Z` };
    const group = GROUPS[state.by];
    const loaded = await settle({
      summary: () => get('/v2/usage/summary', scoped(Object.assign({ groupBy: `day,${state.by}` }, range))),
      members: can('team:manage') && state.by !== 'service' ? () => listAll('/v2/members', scoped(), 300) : null,
      keys: can('team:manage') && state.by !== 'service' ? () => listAll('/v2/api-keys', scoped(), 300) : null,
    });
    if (loaded.summary.error) throw loaded.summary.error;
    const rows = loaded.summary.value.data;
    const members = new Map((loaded.members.value || []).map((m) => [m.id, m]));
    const keys = new Map((loaded.keys.value || []).map((k) => [k.id, k]));
    const labelOf = (id) => {
      if (state.by === 'service') return serviceName(id);
      if (state.by === 'member') {
        if (!id) return 'No member (account or operator keys)';
        const m = members.get(id);
        return m ? (m.name || m.email) : id;
      }
      if (!id) return 'No key';
      const k = keys.get(id);
      return k ? k.name : id;
    };
    const series = seriesOf(rows, group.field, labelOf, state.by === 'service' ? (id) => serviceColor(id) : null);
    const total = series.reduce((sum, line) => sum + line.total, 0);
    const totalCount = series.reduce((sum, line) => sum + line.count, 0);

    // Controls: presets, dates, grouping.
    const presets = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Range' },
      [7, 30, 90].map((n) => {
        const on = state.to === today && state.from === addDays(today, -(n - 1));
        return h('button', { type: 'button', class: on ? 'on' : null, onclick: () => go({ from: addDays(today, -(n - 1)), to: today }) }, `${n} days`);
      }));
    const from = h('input', { type: 'date', value: state.from, max: today, 'aria-label': 'From' });
    const to = h('input', { type: 'date', value: state.to, max: today, 'aria-label': 'To' });
    from.addEventListener('change', () => from.value && go({ from: from.value }));
    to.addEventListener('change', () => to.value && go({ to: to.value }));
    const by = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Group by' },
      Object.entries(GROUPS).map(([key, g]) => h('button', { type: 'button', class: key === state.by ? 'on' : null, 'data-group': key, onclick: () => go({ by: key }) }, g.label)));

    const csv = h('button', { type: 'button', 'data-test': 'summary-csv' }, 'Download CSV');
    csv.addEventListener('click', () => {
      const lines = [['day', state.by, 'label', 'credits', 'count'].join(',')];
      for (const row of [...rows].sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : 0))) {
        const id = row[group.field];
        lines.push([row.day, id, labelOf(id), row.credits, row.count].map(csvCell).join(','));
      }
      download(`usage-${state.by}-${state.from}-to-${state.to}.csv`, `${lines.join('\r\n')}\r\n`, 'text/csv');
    });
    const actions = [csv];
    if (can('credits:read')) {
      const ledgerCsv = h('button', { type: 'button', 'data-test': 'ledger-csv' }, 'Export ledger CSV');
      ledgerCsv.addEventListener('click', async () => {
        ledgerCsv.disabled = true;
        try {
          const text = await api('GET', '/v2/ledger', { accept: 'text/csv', query: scoped(range) });
          download(`ledger-${state.from}-to-${state.to}.csv`, text, 'text/csv');
        } catch (e) { toast(errorText(e), 'error'); } finally { ledgerCsv.disabled = false; }
      });
      actions.push(ledgerCsv);
    }

    const controls = h('div', { class: 'card' }, h('div', { class: 'card-body filters' },
      field('Range', presets), field('From', from), field('To', to), field('Group by', by)));

    const days = daysBetween(state.from, state.to);
    const chartBody = rows.length
      ? h('div', null, barChart(days, series, { test: 'usage-chart', label: `Credits per day by ${group.label.toLowerCase()}` }), legend(series.slice(0, 12)))
      : empty('No usage in this range', 'Pick a longer range, or record usage with POST /v2/usage: it shows here at once.');

    const tableRows = series.map((line) => h('tr', { 'data-test': 'usage-row' },
      td([swatch(line.color), h('span', { class: 'primary' }, line.label),
        line.key && line.label !== line.key ? h('div', { class: 'sub mono' }, line.key) : null]),
      td(num(line.total), 'num'),
      td(num(line.count), 'num'),
      td(h('div', null, h('div', { class: 'sub' }, total ? percent(line.total / total) : '—'), progress(total ? line.total / total : 0, null, line.color)), null)));
    if (series.length) {
      tableRows.push(h('tr', null, td(h('strong', null, 'Total')), td(h('strong', null, num(total)), 'num'), td(h('strong', null, num(totalCount)), 'num'), td('')));
    }
    const summaryTable = series.length
      ? table([{ label: group.label }, { label: 'Credits', class: 'num' }, { label: 'Requests', class: 'num' }, { label: 'Share' }], tableRows, { test: 'usage-table' })
      : empty('Nothing to list', 'No usage was recorded in this range.');

    view.replaceChildren(
      pageHead('Usage', `${accountLabel()} · ${dayLong(state.from)} – ${dayLong(state.to)} (UTC)`, actions),
      h('div', { class: 'stack' }, controls,
        card(`Credits per day by ${group.label.toLowerCase()}`, `${num(total)} credits · ${num(totalCount)} requests`, h('div', { class: 'card-body' }, chartBody)),
        card(`By ${group.label.toLowerCase()}`, null, h('div', { class: 'card-body flush' }, summaryTable))));
  }

  // ---------------------------------------------------------------------------------------------
  // Team

  const ROLES = ['owner', 'admin', 'member', 'viewer'];

  async function pageTeam(view) {
    const [members, keys] = await Promise.all([
      listAll('/v2/members', scoped(), 300),
      listAll('/v2/api-keys', scoped(), 300),
    ]);
    const memberById = new Map(members.map((m) => [m.id, m]));
    const secretSlot = h('div');

    const addMember = writeControl(h('button', { type: 'button', class: 'primary small', 'data-test': 'add-member' }, 'Add member'));
    addMember.addEventListener('click', () => {
      dialogForm('Add a member', [
        field('Email', h('input', { name: 'email', type: 'email', required: true, placeholder: 'alice@example.com' })),
        field('Name', h('input', { name: 'name', placeholder: 'Alice Example' })),
        field('Role', h('select', { name: 'role' }, ROLES.map((r) => option(r, r, r === 'member'))),
          'Owners and admins manage everything; members record usage; viewers only read.'),
      ], 'Add member', async (data) => {
        const body = scoped({ email: data.get('email'), role: data.get('role') });
        if (data.get('name')) body.name = data.get('name');
        await post('/v2/members', body);
        toast('Member added.');
        route();
      }, 'member-form');
    });

    const memberRows = members.map((member) => {
      const role = writeControl(h('select', { 'aria-label': `Role of ${member.email}` }, ROLES.map((r) => option(r, r, r === member.role))));
      role.addEventListener('change', async () => {
        try {
          await patch(`/v2/members/${encodeURIComponent(member.id)}`, { role: role.value });
          toast(`${member.name || member.email} is now ${role.value}. Their keys follow the new role at once.`);
        } catch (e) {
          role.value = member.role;
          toast(errorText(e), 'error');
        }
      });
      const remove = writeControl(h('button', { type: 'button', class: 'danger small' }, 'Remove'));
      remove.addEventListener('click', async () => {
        const ok = await confirmDialog(`Remove ${member.name || member.email}?`,
          'Their API keys are revoked at once. Their past usage stays attributed to them.', 'Remove member', true);
        if (!ok) return;
        try {
          await del(`/v2/members/${encodeURIComponent(member.id)}`);
          toast('Member removed.');
          route();
        } catch (e) { toast(errorText(e), 'error'); }
      });
      const you = session.principal.memberId === member.id ? badge('you', 'accent', true) : null;
      return h('tr', { 'data-test': 'member-row' },
        td([h('div', { class: 'primary' }, member.name || member.email, ' ', you), h('div', { class: 'sub' }, member.email)]),
        td(role),
        td(date(member.createdAt), 'hide-sm'),
        td(remove, 'actions'));
    });

    const createKey = writeControl(h('button', { type: 'button', class: 'primary small', 'data-test': 'create-key' }, 'Create key'));
    createKey.addEventListener('click', () => {
      // A member's session mints keys bound to a member (itself by default): no unbound choice.
      const memberSelect = h('select', { name: 'memberId' },
        session.principal.memberId ? null : option('', 'Not bound to a member'),
        members.map((m) => option(m.id, `${m.name || m.email} (${m.role})`, session.principal.memberId === m.id)));
      const scopes = h('div', { class: 'checks' }, ACCOUNT_SCOPES.filter(can).map((scope) =>
        h('label', null, h('input', { type: 'checkbox', name: 'scopes', value: scope }), h('code', null, scope))));
      dialogForm('Create an API key', [
        field('Name', h('input', { name: 'name', required: true, placeholder: 'billing-sync', autocomplete: 'off' })),
        field('Member', memberSelect, 'A member’s key spends as that member and never has more than their role.'),
        field('Scopes', scopes, 'Leave all unchecked for the defaults: the member’s role, or every account scope.'),
      ], 'Create key', async (data) => {
        const body = scoped({ name: data.get('name') });
        if (data.get('memberId')) body.memberId = data.get('memberId');
        const chosen = data.getAll('scopes');
        if (chosen.length) body.scopes = chosen;
        const created = await post('/v2/api-keys', body);
        await route();
        // The new page has its own slot; the secret is drawn there and nowhere else.
        const slot = document.querySelector('[data-test="secret-slot"]');
        if (slot) {
          slot.replaceChildren(secretBanner(`Key “${created.name}” created`,
            'Copy its secret now: it is shown only this once and cannot be read again.', created.secret));
        }
      }, 'key-form');
    });

    const keyRows = keys.map((key) => {
      const revoked = Boolean(key.revokedAt);
      const member = key.memberId ? memberById.get(key.memberId) : null;
      const self = key.id === session.principal.keyId;
      let revoke = null;
      if (!revoked) {
        revoke = writeControl(h('button', { type: 'button', class: 'danger small', 'data-test': 'revoke-key' }, 'Revoke'));
        revoke.addEventListener('click', async () => {
          const ok = await confirmDialog(`Revoke “${key.name}”?`,
            self ? 'This is the key of your own session: you will be signed out at once.'
              : 'Requests with this key are refused at once. This cannot be undone.', 'Revoke key', true);
          if (!ok) return;
          try {
            await del(`/v2/api-keys/${encodeURIComponent(key.id)}`);
            toast('Key revoked.');
            if (self) sessionEnded('Your key was revoked.');
            else route();
          } catch (e) { toast(errorText(e), 'error'); }
        });
      }
      return h('tr', { 'data-test': 'key-row', 'data-key-id': key.id },
        td([h('div', { class: 'primary' }, key.name, ' ', self ? badge('this session', 'accent', true) : null), h('div', { class: 'sub mono' }, `${key.prefix}…`)]),
        td(member ? (member.name || member.email) : key.memberId ? h('span', { class: 'mono sub' }, shortId(key.memberId)) : h('span', { class: 'muted' }, key.accountId ? 'Account key' : 'Operator key')),
        td(h('div', { class: 'chips' }, key.scopes.map((sc) => h('span', { class: 'chip' }, sc))), 'hide-sm'),
        td(key.lastUsedAt ? relative(key.lastUsedAt) : h('span', { class: 'muted' }, 'Never'), 'hide-sm'),
        td(revoked ? badge('revoked', 'danger') : badge('active', 'ok')),
        td(revoke, 'actions'));
    });

    secretSlot.setAttribute('data-test', 'secret-slot');
    view.replaceChildren(
      pageHead('Team', `${accountLabel()} · members and the API keys that spend this account’s credits`),
      secretSlot,
      h('div', { class: 'stack' },
        card('Members', `${members.length} ${members.length === 1 ? 'person' : 'people'}`, h('div', { class: 'card-body flush' },
          members.length ? table([{ label: 'Member' }, { label: 'Role' }, { label: 'Added', class: 'hide-sm' }, { label: '' }], memberRows, { test: 'members' })
            : empty('No members yet', 'Add the people who use this account; each can get keys bound to their role.')), addMember),
        card('API keys', 'Secrets are shown once, when a key is created', h('div', { class: 'card-body flush' },
          keys.length ? table([{ label: 'Key' }, { label: 'Member' }, { label: 'Scopes', class: 'hide-sm' }, { label: 'Last used', class: 'hide-sm' }, { label: 'Status' }, { label: '' }], keyRows, { test: 'keys' })
            : empty('No API keys yet', 'Create a key for each system that records usage.')), createKey)));
  }

  // ---------------------------------------------------------------------------------------------
  // Budgets

  async function pageBudgets(view) {
    const loaded = await settle({
      budgets: () => listAll('/v2/budgets', scoped(), 300),
      members: can('team:manage') ? () => listAll('/v2/members', scoped(), 300) : null,
      keys: can('team:manage') ? () => listAll('/v2/api-keys', scoped(), 300) : null,
    });
    if (loaded.budgets.error) throw loaded.budgets.error;
    const budgets = loaded.budgets.value;
    const members = loaded.members.value || [];
    const keys = (loaded.keys.value || []).filter((k) => !k.revokedAt);
    const scopeLabel = (scope) => {
      if (scope.type === 'account') return 'Whole account';
      if (scope.type === 'service') return `Service: ${serviceName(scope.id)}`;
      if (scope.type === 'member') {
        const m = members.find((x) => x.id === scope.id);
        return `Member: ${m ? (m.name || m.email) : scope.id}`;
      }
      const k = keys.find((x) => x.id === scope.id);
      return `Key: ${k ? k.name : scope.id}`;
    };

    const create = writeControl(h('button', { type: 'button', class: 'primary', 'data-test': 'new-budget' }, 'New budget'));
    create.addEventListener('click', () => {
      const target = h('div');
      const scopeType = h('select', { name: 'scopeType' },
        option('account', 'Whole account'), option('member', 'A member'), option('apiKey', 'An API key'), option('service', 'A service'));
      const drawTarget = () => {
        const type = scopeType.value;
        let control = null;
        if (type === 'service') control = h('select', { name: 'scopeId' }, session.services.map((svc) => option(svc.id, svc.name || svc.id)));
        else if (type === 'member') {
          control = members.length ? h('select', { name: 'scopeId' }, members.map((m) => option(m.id, `${m.name || m.email} (${m.role})`)))
            : h('input', { name: 'scopeId', placeholder: 'mem_…', required: true });
        } else if (type === 'apiKey') {
          control = keys.length ? h('select', { name: 'scopeId' }, keys.map((k) => option(k.id, `${k.name} (${k.prefix}…)`)))
            : h('input', { name: 'scopeId', placeholder: 'key_…', required: true });
        }
        target.replaceChildren(control ? field('Which', control) : h('span'));
      };
      scopeType.addEventListener('change', drawTarget);
      drawTarget();
      dialogForm('New budget', [
        field('Name', h('input', { name: 'name', required: true, placeholder: 'Monthly cap' })),
        h('div', { class: 'row' }, field('Applies to', scopeType), target),
        h('div', { class: 'row three' },
          field('Limit (credits)', h('input', { name: 'limit', type: 'number', min: 1, step: 1, required: true, placeholder: '5000' })),
          field('Period', h('select', { name: 'period' }, option('day', 'Day'), option('week', 'Week (from Monday)'), option('month', 'Month', true), option('lifetime', 'Lifetime'))),
          field('When reached', h('select', { name: 'enforcement' }, option('block', 'Block usage (402)'), option('notify', 'Notify only')))),
        field('Alert thresholds (%)', h('input', { name: 'thresholds', value: '80, 100' }), 'A budget.threshold_reached event fires once per period at each.'),
      ], 'Create budget', async (data) => {
        const limit = Number(data.get('limit'));
        if (!Number.isSafeInteger(limit) || limit < 1) throw new Error('The limit must be a whole number of credits, at least 1.');
        const thresholds = String(data.get('thresholds') || '').split(/[\s,]+/).filter(Boolean).map(Number);
        if (thresholds.some((t) => !Number.isInteger(t) || t < 1)) throw new Error('Thresholds are whole percentages, such as 80, 100.');
        const type = data.get('scopeType');
        const body = scoped({
          name: data.get('name'),
          scope: type === 'account' ? { type } : { type, id: data.get('scopeId') },
          period: data.get('period'),
          limit,
          enforcement: data.get('enforcement'),
        });
        if (thresholds.length) body.thresholds = thresholds;
        await post('/v2/budgets', body);
        toast('Budget created.');
        route();
      }, 'budget-form');
    });

    const rows = budgets.map((budget) => {
      const ratio = budget.limit ? budget.spent / budget.limit : 0;
      const limitCell = h('span', { class: 'inline-edit' }, h('span', null, num(budget.limit)));
      const edit = writeControl(h('button', { type: 'button', class: 'small', 'data-test': 'edit-limit' }, 'Edit limit'));
      edit.addEventListener('click', () => {
        const input = h('input', { type: 'number', min: 1, step: 1, value: budget.limit, 'aria-label': 'New limit' });
        const save = h('button', { type: 'button', class: 'primary small' }, 'Save');
        const cancel = h('button', { type: 'button', class: 'small' }, 'Cancel');
        cancel.addEventListener('click', () => route());
        const submit = async () => {
          const limit = Number(input.value);
          if (!Number.isSafeInteger(limit) || limit < 1) { toast('The limit must be a whole number, at least 1.', 'error'); return; }
          save.disabled = true;
          try {
            await patch(`/v2/budgets/${encodeURIComponent(budget.id)}`, { limit });
            toast('Limit saved.');
            route();
          } catch (e) { save.disabled = false; toast(errorText(e), 'error'); }
        };
        save.addEventListener('click', submit);
        input.addEventListener('keydown', (e) => { if (e.key === 'Enter') submit(); });
        limitCell.replaceChildren(input, save, cancel);
        edit.remove();
        input.focus();
      });
      const remove = writeControl(h('button', { type: 'button', class: 'danger small' }, 'Delete'));
      remove.addEventListener('click', async () => {
        if (!(await confirmDialog(`Delete “${budget.name}”?`, 'Usage in its scope is no longer limited by it.', 'Delete budget', true))) return;
        try {
          await del(`/v2/budgets/${encodeURIComponent(budget.id)}`);
          toast('Budget deleted.');
          route();
        } catch (e) { toast(errorText(e), 'error'); }
      });
      const resets = budget.periodEnd ? `resets ${relative(budget.periodEnd)}` : 'never resets';
      return h('tr', { 'data-test': 'budget-row' },
        td([h('div', { class: 'primary' }, budget.name), h('div', { class: 'sub' }, scopeLabel(budget.scope))]),
        td([h('div', null, periodLabel(budget.period)), h('div', { class: 'sub' }, resets)], 'hide-sm'),
        td(badge(budget.enforcement === 'block' ? 'blocks' : 'notifies', budget.enforcement === 'block' ? 'danger' : 'info', true), 'hide-sm'),
        td([h('div', { class: 'spent-line' }, h('span', null, `${num(budget.spent)} spent of `), limitCell, ' ', h('span', { class: 'muted' }, percent(ratio))),
          progress(ratio, budgetTone(ratio))], 'spent'),
        td([edit, remove], 'actions'));
    });

    view.replaceChildren(
      pageHead('Budgets', `${accountLabel()} · limits on what is spent per period; a blocking budget refuses usage past its limit with 402.`, [create]),
      card('Budgets', `${budgets.length} budget${budgets.length === 1 ? '' : 's'}`, h('div', { class: 'card-body flush' },
        budgets.length ? table([{ label: 'Budget' }, { label: 'Period', class: 'hide-sm' }, { label: 'Enforcement', class: 'hide-sm' }, { label: 'Spent of limit' }, { label: '' }], rows, { test: 'budgets' })
          : empty('No budgets yet', 'Use “New budget” to cap what the account, a member, a key or a service may spend.'))));
  }

  // ---------------------------------------------------------------------------------------------
  // Webhooks

  async function pageWebhooks(view, endpointId) {
    const scope = accountId() ? scoped() : {};
    const loaded = await settle({
      endpoints: () => listAll('/v2/webhook-endpoints', scope, 200),
      events: can('credits:read') ? () => get('/v2/events', Object.assign({ limit: 50 }, scope)) : null,
      deliveries: endpointId ? () => get(`/v2/webhook-endpoints/${encodeURIComponent(endpointId)}/deliveries`, { limit: 25 }) : null,
    });
    if (loaded.endpoints.error) throw loaded.endpoints.error;
    const endpoints = loaded.endpoints.value;
    const events = loaded.events.value ? loaded.events.value.data : [];
    const eventType = new Map(events.map((e) => [e.id, e.type]));
    const secretSlot = h('div');

    const add = writeControl(h('button', { type: 'button', class: 'primary', 'data-test': 'add-endpoint' }, 'Add endpoint'));
    add.addEventListener('click', () => {
      const all = h('input', { type: 'checkbox', name: 'all', checked: true });
      const types = h('div', { class: 'checks' }, EVENT_TYPES.map((t) =>
        h('label', null, h('input', { type: 'checkbox', name: 'events', value: t }), h('code', null, t))));
      const sync = () => { for (const box of types.querySelectorAll('input')) box.disabled = all.checked; };
      all.addEventListener('change', sync);
      sync();
      dialogForm('Add a webhook endpoint', [
        field('URL', h('input', { name: 'url', type: 'url', required: true, placeholder: 'https://example.com/webhooks/credits' }),
          'Deliveries are signed (Standard Webhooks) and retried with backoff for over 24 hours.'),
        field('Events', h('div', { class: 'stack' }, h('div', { class: 'checks' }, h('label', null, all, 'All events')), types)),
      ], 'Add endpoint', async (data) => {
        const chosen = data.get('all') ? ['*'] : data.getAll('events');
        if (!chosen.length) throw new Error('Pick at least one event, or All events.');
        const body = Object.assign(accountId() ? { accountId: accountId() } : {}, { url: data.get('url'), events: chosen });
        const created = await post('/v2/webhook-endpoints', body);
        await route();
        const slot = document.querySelector('[data-test="secret-slot"]');
        if (slot) {
          slot.replaceChildren(secretBanner('Endpoint added', 'Copy its signing secret now: it is shown only this once.', created.secret));
        }
      }, 'endpoint-form');
    });

    const rows = endpoints.map((endpoint) => {
      const remove = writeControl(h('button', { type: 'button', class: 'danger small' }, 'Delete'));
      remove.addEventListener('click', async (event) => {
        event.stopPropagation();
        if (!(await confirmDialog('Delete this endpoint?', `${endpoint.url} stops receiving events at once.`, 'Delete endpoint', true))) return;
        try {
          await del(`/v2/webhook-endpoints/${encodeURIComponent(endpoint.id)}`);
          toast('Endpoint deleted.');
          navigate('#/webhooks');
        } catch (e) { toast(errorText(e), 'error'); }
      });
      const row = h('tr', { class: `clickable ${endpoint.id === endpointId ? 'selected' : ''}`, 'data-test': 'endpoint-row', tabindex: 0 },
        td([h('div', { class: 'primary mono' }, endpoint.url), h('div', { class: 'sub mono' }, endpoint.id)]),
        td(h('div', { class: 'chips' }, endpoint.events.map((e) => h('span', { class: 'chip' }, e === '*' ? 'all events' : e))), 'hide-sm'),
        td(endpoint.disabledAt ? badge('disabled (410)', 'danger') : badge('active', 'ok')),
        td(endpoint.accountId ? h('span', { class: 'muted' }, 'this account') : badge('all accounts', 'accent', true), 'hide-sm'),
        td(remove, 'actions'));
      const open = () => { window.location.hash = hashFor('webhooks', endpoint.id); };
      row.addEventListener('click', open);
      row.addEventListener('keydown', (e) => { if (e.key === 'Enter') open(); });
      return row;
    });

    let deliveries = null;
    if (endpointId) {
      const endpoint = endpoints.find((e) => e.id === endpointId);
      let body;
      if (loaded.deliveries.error) body = errorBox(loaded.deliveries.error);
      else if (!loaded.deliveries.value.data.length) body = empty('No deliveries yet', 'Deliveries appear here as events this endpoint subscribes to happen.');
      else {
        const tones = { succeeded: 'ok', failed: 'danger', pending: 'warn' };
        body = table([{ label: 'Event' }, { label: 'Attempt', class: 'num' }, { label: 'Status' }, { label: 'Response' }, { label: 'When' }, { label: 'Next attempt', class: 'hide-sm' }, { label: '' }],
          loaded.deliveries.value.data.map((d) => {
            const again = writeControl(h('button', { type: 'button', class: 'small', 'data-test': 'redeliver' }, 'Redeliver'));
            again.addEventListener('click', async () => {
              again.disabled = true;
              try {
                await post(`/v2/webhook-endpoints/${encodeURIComponent(endpointId)}/redeliver`, { eventId: d.eventId });
                toast('Event queued for delivery again.');
                route();
              } catch (e) { again.disabled = false; toast(errorText(e), 'error'); }
            });
            return h('tr', { 'data-test': 'delivery-row' },
              td([h('div', { class: 'primary' }, eventType.get(d.eventId) || 'event'), h('div', { class: 'sub mono' }, d.eventId)]),
              td(String(d.attempt), 'num'),
              td(badge(d.status, tones[d.status])),
              td(d.responseCode ? `${d.responseCode}${d.durationMs != null ? ` · ${num(d.durationMs)} ms` : ''}` : h('span', { class: 'muted' }, '—')),
              td(dateTime(d.createdAt)),
              td(d.nextAttemptAt ? relative(d.nextAttemptAt) : h('span', { class: 'muted' }, '—'), 'hide-sm'),
              td(again, 'actions'));
          }), { test: 'deliveries' });
        if (loaded.deliveries.value.hasMore) body = h('div', null, body, h('div', { class: 'card-body muted' }, 'The latest 25 attempts.'));
      }
      deliveries = card('Recent deliveries', endpoint ? endpoint.url : endpointId, h('div', { class: 'card-body flush' }, body),
        h('a', { href: '#/webhooks' }, 'Close'));
    }

    const eventsCard = can('credits:read') ? card('Recent events', 'The latest events of this account, delivered to subscribed endpoints',
      h('div', { class: 'card-body flush' }, events.length
        ? table([{ label: 'Type' }, { label: 'When' }, { label: 'Id', class: 'hide-sm' }], events.slice(0, 10).map((e) => h('tr', null,
          td(h('code', null, e.type)), td(dateTime(e.createdAt)), td(h('span', { class: 'mono sub' }, e.id), 'hide-sm'))))
        : empty('No events yet', 'Events such as credit.created or balance.low appear as they happen.'))) : null;

    secretSlot.setAttribute('data-test', 'secret-slot');
    view.replaceChildren(
      pageHead('Webhooks', `${accountLabel() || 'All accounts'} · signed event deliveries to your systems`, [add]),
      secretSlot,
      h('div', { class: 'stack' },
        card('Endpoints', 'Pick one to see its deliveries', h('div', { class: 'card-body flush' }, endpoints.length
          ? table([{ label: 'URL' }, { label: 'Events', class: 'hide-sm' }, { label: 'Status' }, { label: 'Receives', class: 'hide-sm' }, { label: '' }], rows, { test: 'endpoints' })
          : empty('No endpoints yet', 'Use “Add endpoint” to get events such as balance.low and credit.expiring_soon at your URL.'))),
        deliveries, eventsCard));
  }

  // ---------------------------------------------------------------------------------------------
  // Operator: accounts, one account, adding credits

  async function pageOperator(view, id) {
    if (id) return operatorAccount(view, id);
    const accounts = await listAll('/v2/accounts', {}, 200);
    session.accounts = accounts;
    const balances = await pool(accounts, 6, (a) => get('/v2/balance', { accountId: a.id }));

    const create = writeControl(h('button', { type: 'button', class: 'primary', 'data-test': 'new-account' }, 'New account'));
    create.addEventListener('click', () => {
      dialogForm('New account', [
        field('Name', h('input', { name: 'name', required: true, placeholder: 'Acme Corp' })),
        h('div', { class: 'row' },
          field('External id', h('input', { name: 'externalId', placeholder: 'cus_123' }), 'The customer’s id in your billing system.'),
          field('Low-balance alert at', h('input', { name: 'lowBalanceThreshold', type: 'number', min: 0, step: 1, placeholder: '500' }))),
      ], 'Create account', async (data) => {
        const body = { name: data.get('name') };
        if (data.get('externalId')) body.externalId = data.get('externalId');
        if (data.get('lowBalanceThreshold') !== '') body.lowBalanceThreshold = Number(data.get('lowBalanceThreshold'));
        const created = await post('/v2/accounts', body);
        toast('Account created.');
        session.accounts.unshift(created);
        renderShell();
        navigate(hashFor('operator', created.id));
      }, 'account-form');
    });

    const total = balances.reduce((sum, b) => sum + (b ? b.available : 0), 0);
    const reserved = balances.reduce((sum, b) => sum + (b ? b.reserved : 0), 0);
    const lowCount = accounts.filter((a, i) => balances[i] && a.lowBalanceThreshold != null && balances[i].available <= a.lowBalanceThreshold).length;
    const rows = accounts.map((account, i) => {
      const b = balances[i];
      const low = b && account.lowBalanceThreshold != null && b.available <= account.lowBalanceThreshold;
      const row = h('tr', { class: 'clickable', 'data-test': 'account-row', 'data-account-id': account.id, tabindex: 0 },
        td([h('div', { class: 'primary' }, account.name || account.id), h('div', { class: 'sub' }, account.externalId || shortId(account.id))]),
        td(b ? num(b.available) : '—', 'num'),
        td(b ? num(b.reserved) : '—', 'num hide-sm'),
        td(account.lowBalanceThreshold != null ? num(account.lowBalanceThreshold) : h('span', { class: 'muted' }, 'off'), 'num hide-sm'),
        td(low ? badge('low balance', 'warn') : badge('ok', 'ok')),
        td(date(account.createdAt), 'hide-sm'),
        td(h('a', { href: hashFor('operator', account.id) }, 'Open'), 'actions'));
      row.addEventListener('click', (e) => { if (e.target.tagName !== 'A') window.location.hash = hashFor('operator', account.id); });
      return row;
    });

    view.replaceChildren(
      pageHead('Accounts', 'Every customer account, with what it has left.', [create]),
      h('div', { class: 'grid kpis' },
        kpi('Accounts', num(accounts.length), null, 'accounts'),
        kpi('Available, all accounts', num(total), 'credits', 'total-available'),
        kpi('Low balance', num(lowCount), lowCount ? 'at or below their alert threshold' : 'none at risk', 'low-count'),
        kpi('Reserved, all accounts', num(reserved), 'held by open reservations', 'total-reserved')),
      card('Accounts', accounts.length >= 200 ? 'The first 200 accounts' : `${accounts.length} account${accounts.length === 1 ? '' : 's'}`,
        h('div', { class: 'card-body flush' }, accounts.length
          ? table([{ label: 'Account' }, { label: 'Available', class: 'num' }, { label: 'Reserved', class: 'num hide-sm' }, { label: 'Alert at', class: 'num hide-sm' }, { label: 'Status' }, { label: 'Created', class: 'hide-sm' }, { label: '' }], rows, { test: 'accounts' })
          : empty('No accounts yet', 'Use “New account” for each customer, then add the credits they bought.'))));
  }

  async function operatorAccount(view, id) {
    const loaded = await settle({
      account: () => get(`/v2/accounts/${encodeURIComponent(id)}`),
      balance: () => get('/v2/balance', { accountId: id }),
      credits: () => get('/v2/credits', { accountId: id, limit: 10 }),
    });
    if (loaded.account.error) throw loaded.account.error;
    const account = loaded.account.value;
    const balance = loaded.balance.value;
    const useIt = h('button', { type: 'button', 'data-test': 'work-in-account' }, 'Open dashboard for this account');
    useIt.addEventListener('click', () => {
      if (!session.accounts.some((a) => a.id === account.id)) session.accounts.unshift(account);
      window.history.replaceState(null, '', '#/overview');
      selectAccount(account.id);
    });
    const parts = [
      h('div', { class: 'muted' }, h('a', { href: '#/operator' }, '← All accounts')),
      pageHead(account.name || account.id, [account.externalId ? `${account.externalId} · ` : '', account.id].join(''), [useIt]),
    ];
    if (balance && account.lowBalanceThreshold != null && balance.available <= account.lowBalanceThreshold) {
      const low = banner('warn', 'Low balance', `${num(balance.available)} credits available, at or below the alert threshold of ${num(account.lowBalanceThreshold)}.`);
      low.setAttribute('data-test', 'low-balance');
      parts.push(low);
    }
    if (balance) {
      const next = balance.nextExpiry;
      parts.push(h('div', { class: 'grid kpis' },
        kpi('Available', num(balance.available), `${Object.keys(balance.byService).length} services`, 'available'),
        kpi('Reserved', num(balance.reserved), 'held by open reservations', 'reserved'),
        kpi('Next expiry', next ? date(next.expiresAt) : 'None', next ? `${num(next.remaining)} credits ${relative(next.expiresAt)}` : null, 'next-expiry', true),
        kpi('Alert at', account.lowBalanceThreshold != null ? num(account.lowBalanceThreshold) : 'Off', 'low-balance threshold', 'threshold', true)));
    } else parts.push(errorBox(loaded.balance.error));

    const grant = can('credits:write')
      ? card('Add credits', 'Record a purchase from your billing system, or give a grant', h('div', { class: 'card-body' },
        addCreditsForm(account, () => route())))
      : null;

    const threshold = h('input', { name: 'lowBalanceThreshold', type: 'number', min: 0, step: 1, value: account.lowBalanceThreshold != null ? account.lowBalanceThreshold : '' });
    const settings = formOf([
      field('Name', h('input', { name: 'name', value: account.name || '', required: true })),
      field('External id', h('input', { name: 'externalId', value: account.externalId || '' })),
      h('div', { class: 'row' },
        field('Low-balance alert at', threshold, 'Empty turns the alert off.'),
        field('Expiring-soon window (days)', h('input', { name: 'expiringSoonDays', type: 'number', min: 1, step: 1, value: account.expiringSoonDays }))),
    ], 'Save settings', async (data) => {
      const body = {
        name: data.get('name') || null,
        externalId: data.get('externalId') || null,
        lowBalanceThreshold: data.get('lowBalanceThreshold') === '' ? null : Number(data.get('lowBalanceThreshold')),
        expiringSoonDays: Number(data.get('expiringSoonDays')),
      };
      await patch(`/v2/accounts/${encodeURIComponent(account.id)}`, body);
      toast('Settings saved.');
      route();
    }, { test: 'account-settings' });
    parts.push(h('div', { class: 'grid two' }, grant, writeControl(card('Settings', null, h('div', { class: 'card-body' }, settings)))));

    const credits = loaded.credits.value ? loaded.credits.value.data : [];
    parts.push(h('div', null, card('Latest credit records', null, h('div', { class: 'card-body flush' }, credits.length
      ? table([{ label: 'Credit' }, { label: 'Service' }, { label: 'Remaining / amount', class: 'num' }, { label: 'Status' }, { label: 'Expires', class: 'hide-sm' }],
        credits.map((record) => h('tr', { 'data-test': 'account-credit-row' },
          td([h('div', { class: 'primary' }, record.description || (record.kind === 'grant' ? 'Granted credits' : 'Purchased credits')), h('div', { class: 'sub' }, `${record.kind}${record.reference ? ` · ${record.reference}` : ''}`)]),
          td([swatch(serviceColor(record.service)), serviceName(record.service)]),
          td(`${num(record.remaining)} / ${num(record.amount)}`, 'num'),
          td(creditStatusBadge(record, account.expiringSoonDays)),
          td(record.expiresAt ? date(record.expiresAt) : 'Never', 'hide-sm'))))
      : empty('No credits yet', 'Add the credits this customer bought with the form above.')))));
    view.replaceChildren(...parts);
  }

  // ---------------------------------------------------------------------------------------------
  // Start

  window.addEventListener('hashchange', route);
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
