// Web page of the mail capture server (Mailpit API v1). Plain ES2020, no framework, no build step.
//
// Captured messages are hostile input. Every node that shows message data is built with
// createElement + textContent; every ID put in a URL goes through encodeURIComponent; message HTML
// is only ever shown in an <iframe sandbox=""> loading view/ID.html, never in this document.
// URLs are relative, so the page also works when served under a path prefix.
'use strict';

(() => {
  const PAGE = 50;
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;

  const state = {
    query: '', // the active search; '' means the full list
    items: new Map(), // ID -> {msg, li}; display order is the DOM order, newest first
    total: 0, // messages in the current list (matching the search, if any)
    listSeq: 0, // the latest list load; older answers are dropped
    pending: null, // 'new' events received while a list load is in flight
    open: null, // the Message shown in #view
    openSeq: 0,
    loaded: {}, // tabs already fetched for the open message
    tab: 'tab-html', // the tab last chosen by the user
  };

  // ---- helpers ----

  async function api(path, opts = {}) {
    const r = await fetch(path, { headers: { Accept: 'application/json' }, ...opts });
    if (!r.ok) throw new Error(`${r.status} ${(await r.text()).slice(0, 200)}`);
    return r;
  }
  const getJSON = async (path) => (await api(path)).json();

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  const addrFull = (a) => (!a ? '' : a.Name ? `${a.Name} <${a.Address}>` : a.Address || '');
  const addrShort = (a) => (!a ? '' : a.Name || a.Address || '');
  const addrList = (list, fmt = addrFull) => (Array.isArray(list) ? list.map(fmt).filter(Boolean).join(', ') : '');

  function size(n) {
    n = Number(n) || 0;
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
    return `${(n / 1024 / 1024).toFixed(1)} MB`;
  }

  function when(s, full) {
    const d = new Date(s);
    if (Number.isNaN(d.getTime())) return String(s || '');
    if (full) return d.toLocaleString();
    if (d.toDateString() === new Date().toDateString()) {
      return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
    }
    return d.toLocaleDateString();
  }

  let statusTimer = 0;
  function status(text) {
    $('status').textContent = text;
    clearTimeout(statusTimer);
    if (text) statusTimer = setTimeout(() => { $('status').textContent = ''; }, 8000);
  }

  function debounce(fn, ms) {
    let t = 0;
    return () => { clearTimeout(t); t = setTimeout(fn, ms); };
  }

  // ---- the list ----

  function row(m) {
    const li = el('li', m.Read ? 'message' : 'message unread');
    li.dataset.id = m.ID;
    const b = el('button', 'open');
    b.type = 'button';
    const time = el('time', 'time', when(m.Created));
    time.dateTime = String(m.Created || '');
    time.title = when(m.Created, true);
    const to = addrList(m.To, addrShort);
    b.append(
      el('span', 'from', addrShort(m.From) || '(no sender)'),
      time,
      el('span', 'to', to ? `To: ${to}` : '(no recipients)'),
      el('span', 'size', m.Attachments ? `${size(m.Size)}, ${m.Attachments} att.` : size(m.Size)),
      el('span', 'subject', m.Subject || '(no subject)'),
      el('span', 'snippet', m.Snippet || ''),
    );
    b.addEventListener('click', () => openMessage(m.ID));
    li.append(b);
    if (state.open && state.open.ID === m.ID) select(li);
    return li;
  }

  function add(m, atTop) {
    if (!m || typeof m.ID !== 'string' || state.items.has(m.ID)) return;
    const li = row(m);
    state.items.set(m.ID, { msg: m, li });
    const ul = $('messages');
    if (atTop) ul.prepend(li); else ul.append(li);
  }

  function remove(id) {
    const it = state.items.get(id);
    if (it) { it.li.remove(); state.items.delete(id); }
    if (state.open && state.open.ID === id) closeView('Message deleted.');
  }

  function clearList() {
    $('messages').replaceChildren();
    state.items.clear();
  }

  function renderCounts(data) {
    if (data) {
      state.total = Number(data.messages_count) || 0;
      $('counts').textContent = state.query
        ? `${state.total} matching (${data.total} total)`
        : `${data.total} message${data.total === 1 ? '' : 's'}, ${data.unread} unread`;
    }
    $('empty').hidden = state.items.size > 0;
    $('more').hidden = state.items.size >= state.total;
  }

  function listURL(start, limit) {
    return state.query
      ? `api/v1/search?query=${enc(state.query)}&start=${start}&limit=${limit}`
      : `api/v1/messages?start=${start}&limit=${limit}`;
  }

  async function loadList(more = false) {
    const seq = ++state.listSeq;
    if (!more) state.pending = [];
    let data;
    try {
      data = await getJSON(listURL(more ? state.items.size : 0, PAGE));
    } catch (e) {
      if (seq === state.listSeq) { state.pending = null; status(`Could not load messages: ${e.message}`); }
      return;
    }
    if (seq !== state.listSeq) return; // a newer load replaced this one
    if (!more) clearList();
    for (const m of data.messages || []) add(m, false);
    // Messages that arrived live while loading may be missing from the answer.
    for (const m of state.pending || []) add(m, true);
    state.pending = null;
    renderCounts(data);
  }

  // Counts only (after deletions, reads, and live arrivals).
  const refreshCounts = debounce(async () => {
    try { renderCounts(await getJSON(listURL(0, 1))); } catch (e) { /* the next event retries */ }
  }, 300);
  const refreshList = debounce(() => loadList(), 300);

  // ---- the open message ----

  function select(li) {
    for (const x of document.querySelectorAll('#messages .selected')) {
      x.classList.remove('selected');
      x.removeAttribute('aria-current');
    }
    if (li) { li.classList.add('selected'); li.setAttribute('aria-current', 'true'); }
  }

  function showHTML(src) {
    // A fresh iframe per message: the sandbox attribute is set before src, and no history entry is added.
    const f = document.createElement('iframe');
    f.id = 'html';
    f.setAttribute('sandbox', '');
    f.referrerPolicy = 'no-referrer';
    f.title = 'HTML body (sandboxed)';
    f.hidden = !src;
    if (src) f.src = src;
    $('html').replaceWith(f);
    document.querySelector('#panel-html .note').hidden = Boolean(src);
  }

  function metaRow(dl, name, value) {
    if (!value) return;
    dl.append(el('dt', null, name), el('dd', null, value));
  }

  async function openMessage(id) {
    const seq = ++state.openSeq;
    let m;
    try {
      m = await getJSON(`api/v1/message/${enc(id)}`);
    } catch (e) {
      if (seq === state.openSeq) status(`Could not open the message: ${e.message}`);
      return;
    }
    if (seq !== state.openSeq) return; // another message was clicked meanwhile
    state.open = m;
    state.loaded = {};

    const it = state.items.get(m.ID);
    select(it ? it.li : null);
    if (it && !it.msg.Read) {
      it.msg.Read = true;
      it.li.classList.remove('unread');
      refreshCounts();
    }

    $('subject').textContent = m.Subject || '(no subject)';
    const dl = $('meta');
    dl.replaceChildren();
    metaRow(dl, 'From', addrFull(m.From));
    metaRow(dl, 'To', addrList(m.To));
    metaRow(dl, 'Cc', addrList(m.Cc));
    metaRow(dl, 'Bcc', addrList(m.Bcc));
    metaRow(dl, 'Reply-To', addrList(m.ReplyTo));
    metaRow(dl, 'Return-Path', m.ReturnPath);
    metaRow(dl, 'Date', when(m.Date, true));
    metaRow(dl, 'Size', size(m.Size));
    metaRow(dl, 'Tags', (m.Tags || []).join(', '));

    showHTML(m.HTML ? `view/${enc(m.ID)}.html` : null);
    $('text').textContent = m.Text || '(no text part)';
    $('headers').tBodies[0].replaceChildren();
    $('raw').textContent = '';
    $('raw-download').href = `api/v1/message/${enc(m.ID)}/raw?dl=1`;
    $('raw-download').download = `${m.ID}.eml`;

    const files = [...(m.Attachments || []), ...(m.Inline || []).map((a) => ({ ...a, inline: true }))];
    const ul = $('attachments');
    ul.replaceChildren();
    for (const a of files) {
      const li = el('li');
      const link = el('a', null, a.FileName || a.ContentID || `part ${a.PartID}`);
      link.href = `api/v1/message/${enc(m.ID)}/part/${enc(a.PartID)}`;
      link.download = a.FileName || '';
      link.rel = 'noreferrer';
      li.append(link, el('span', 'muted', ` ${a.ContentType || ''}, ${size(a.Size)}${a.inline ? ', inline' : ''}`));
      ul.append(li);
    }
    if (!files.length) ul.append(el('li', 'muted', 'No attachments.'));
    $('tab-attachments').textContent = `Attachments (${files.length})`;

    $('view').hidden = false;
    document.querySelector('main').classList.add('has-view');
    selectTab($(state.tab === 'tab-html' && !m.HTML ? 'tab-text' : state.tab));
  }

  function closeView(message) {
    state.openSeq++;
    state.open = null;
    showHTML(null);
    $('view').hidden = true;
    document.querySelector('main').classList.remove('has-view');
    select(null);
    if (message) status(message);
  }

  // ---- tabs (headers and raw source are fetched when first shown) ----

  const tabs = [...document.querySelectorAll('#tabs [role="tab"]')];

  function selectTab(tab, focus) {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute('aria-selected', String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.dataset.panel).hidden = !on;
    }
    if (focus) tab.focus();
    loadTab(tab.id);
  }

  async function loadTab(tabId) {
    const m = state.open;
    if (!m || state.loaded[tabId] || (tabId !== 'tab-headers' && tabId !== 'tab-raw')) return;
    state.loaded[tabId] = true;
    const seq = state.openSeq;
    try {
      if (tabId === 'tab-headers') {
        const h = await getJSON(`api/v1/message/${enc(m.ID)}/headers`);
        if (seq !== state.openSeq) return;
        const body = $('headers').tBodies[0];
        for (const [name, values] of Object.entries(h || {})) {
          for (const v of Array.isArray(values) ? values : [values]) {
            const tr = el('tr');
            tr.append(el('th', null, name), el('td', null, v));
            body.append(tr);
          }
        }
      } else {
        const text = await (await api(`api/v1/message/${enc(m.ID)}/raw`)).text();
        if (seq === state.openSeq) $('raw').textContent = text;
      }
    } catch (e) {
      if (seq === state.openSeq) { state.loaded[tabId] = false; status(`Could not load: ${e.message}`); }
    }
  }

  for (const t of tabs) {
    t.addEventListener('click', () => { state.tab = t.id; selectTab(t); });
    t.addEventListener('keydown', (e) => {
      const i = tabs.indexOf(t);
      const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
      if (next === undefined) return;
      e.preventDefault();
      const to = tabs[(next + tabs.length) % tabs.length];
      state.tab = to.id;
      selectTab(to, true);
    });
  }

  // ---- actions ----

  async function deleteOne() {
    const m = state.open;
    if (!m) return;
    try {
      await api('api/v1/messages', {
        method: 'DELETE',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ IDs: [m.ID] }),
      });
      remove(m.ID);
      refreshCounts();
    } catch (e) {
      status(`Could not delete: ${e.message}`);
    }
  }

  async function deleteAll() {
    const q = state.query;
    if (!confirm(q ? `Delete every message matching "${q}"?` : 'Delete ALL captured messages?')) return;
    try {
      await api(q ? `api/v1/search?query=${enc(q)}` : 'api/v1/messages', { method: 'DELETE' });
      closeView();
      loadList();
    } catch (e) {
      status(`Could not delete: ${e.message}`);
    }
  }

  function search(q) {
    state.query = q.trim();
    $('delete-all').textContent = state.query ? 'Delete matching' : 'Delete all';
    loadList();
  }

  $('search-form').addEventListener('submit', (e) => { e.preventDefault(); search($('search').value); });
  $('search').addEventListener('search', () => { if (!$('search').value && state.query) search(''); });
  $('more').addEventListener('click', () => loadList(true));
  $('delete-one').addEventListener('click', deleteOne);
  $('delete-all').addEventListener('click', deleteAll);
  $('close').addEventListener('click', () => closeView());
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !$('view').hidden && e.target !== $('search')) closeView();
  });

  // ---- live updates (Server-Sent Events) ----

  function parse(data) {
    try { return JSON.parse(data); } catch (e) { return null; }
  }

  function setLive(on) {
    $('live').textContent = on ? 'live' : 'offline';
    $('live').classList.toggle('on', on);
  }

  function connect() {
    if (!window.EventSource) return;
    const es = new EventSource('api/v1/events');
    es.addEventListener('open', () => {
      setLive(true);
      // On every (re)connect, reload: messages may have come or gone while not listening.
      loadList();
    });
    es.addEventListener('error', () => {
      setLive(false);
      if (es.readyState === EventSource.CLOSED) setTimeout(connect, 5000); // the browser gave up: retry
    });
    es.addEventListener('new', (e) => {
      const m = parse(e.data);
      if (!m || typeof m.ID !== 'string') return;
      if (state.query) { refreshList(); return; } // whether it matches is the server's call
      if (state.pending) state.pending.push(m);
      add(m, true);
      $('empty').hidden = true;
      refreshCounts();
    });
    es.addEventListener('delete', (e) => {
      const d = parse(e.data);
      if (d && typeof d.ID === 'string') { remove(d.ID); refreshCounts(); }
    });
    es.addEventListener('update', (e) => {
      const d = parse(e.data);
      const it = d && typeof d.ID === 'string' && state.items.get(d.ID);
      if (it && typeof d.Read === 'boolean') {
        it.msg.Read = d.Read;
        it.li.classList.toggle('unread', !d.Read);
        refreshCounts();
      }
    });
    const wipe = () => { closeView(); clearList(); loadList(); };
    es.addEventListener('truncate', wipe);
    es.addEventListener('prune', () => loadList());
    es.addEventListener('lagged', () => loadList()); // the server dropped events for us: resync
  }

  loadList();
  connect();
})();
