// Browser test of the capture web page: live list, opening a message, and hostile mail kept inert.
//
//   npm ci --prefix tests/http
//   node tests/http/browser.mjs http://127.0.0.1:8025 2525
//
// Drives Debian's /usr/bin/chromium (or $CHROMIUM) through playwright-core. Sends two messages over
// SMTP to 127.0.0.1:SMTP_PORT after the page is open: a plain one with a unique subject and a hostile
// one (script and onerror in its subject and HTML body). Prints one line per check, then
// "browser: N passed, N failed"; exits 0 when all passed, 1 otherwise. Every wait is bounded.
// Leaves a screenshot in /tmp/capture-page.png.
import net from 'node:net';
import { chromium } from 'playwright-core';

const [baseArg, portArg] = process.argv.slice(2);
if (!baseArg || !/^\d+$/.test(portArg || '')) {
  console.error('usage: node browser.mjs BASE_URL SMTP_PORT');
  process.exit(2);
}
const BASE = baseArg.replace(/\/+$/, '');
const SMTP_PORT = Number(portArg);
const WAIT = 10_000; // any single wait
const SCREENSHOT = '/tmp/capture-page.png';
const HOSTILE_SUBJECT = '<img src=x onerror="window.parent.__pwned=1">';
const tag = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
const PLAIN_SUBJECT = `browser test ${tag}`;

// A watchdog, should something hang despite the bounded waits.
setTimeout(() => { console.log('FAIL whole test within 120 s'); process.exit(1); }, 120_000).unref();

let passed = 0;
let failed = 0;
function check(ok, name, detail) {
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${!ok && detail !== undefined ? ` (${detail})` : ''}`);
  if (ok) passed++; else failed++;
  return ok;
}
// A step whose failure makes the following ones meaningless: it throws to stop the test.
class Stop extends Error {}
async function must(name, fn) {
  try {
    const detail = await fn();
    check(true, name);
    return detail;
  } catch (e) {
    check(false, name, String((e && e.message) || e).split('\n')[0]);
    throw new Stop();
  }
}

// ---- a tiny SMTP client ----

async function smtpSend({ from, to, data }) {
  const sock = net.connect({ host: '127.0.0.1', port: SMTP_PORT });
  sock.setEncoding('utf8');
  sock.setTimeout(WAIT, () => sock.destroy(new Error('SMTP: timed out')));
  const replies = [];
  let lines = [];
  let buf = '';
  let err = null;
  let wake = null;
  sock.on('data', (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).replace(/\r$/, '');
      buf = buf.slice(i + 1);
      lines.push(line);
      if (/^\d{3}(?: |$)/.test(line)) { // the last line of a (possibly multiline) reply
        replies.push({ code: Number(line.slice(0, 3)), text: lines.join(' | ') });
        lines = [];
      }
    }
    if (wake) wake();
  });
  const end = (e) => { err = err || e || new Error('SMTP: connection closed'); if (wake) wake(); };
  sock.on('error', end);
  sock.on('close', () => end());

  async function reply(klass) {
    while (!replies.length) {
      if (err) throw err;
      await new Promise((r) => { wake = r; });
      wake = null;
    }
    const r = replies.shift();
    if (Math.floor(r.code / 100) !== klass) throw new Error(`SMTP: expected ${klass}xx, got "${r.text}"`);
    return r;
  }
  const cmd = (line, klass) => { sock.write(`${line}\r\n`); return reply(klass); };

  try {
    await reply(2); // greeting
    await cmd('EHLO browser-test.example', 2);
    await cmd(`MAIL FROM:<${from}>`, 2);
    for (const rcpt of to) await cmd(`RCPT TO:<${rcpt}>`, 2);
    await cmd('DATA', 3);
    const body = data.split(/\r?\n/).map((l) => (l.startsWith('.') ? `.${l}` : l)).join('\r\n');
    sock.write(`${body}\r\n.\r\n`);
    await reply(2);
    await cmd('QUIT', 2);
  } finally {
    sock.destroy();
  }
}

function message(headers, body) {
  const date = new Date().toUTCString().replace(/GMT$/, '+0000');
  const id = `<${Math.random().toString(36).slice(2)}.${tag}@browser-test.example>`;
  return [...headers, `Date: ${date}`, `Message-ID: ${id}`, 'MIME-Version: 1.0', '', body].join('\r\n');
}

// ---- the test ----

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  timeout: 30_000,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
let page;
const pageErrors = [];
const consoleErrors = []; // from the page itself
const frameConsole = []; // from the sandboxed message frame (blocked scripts, images): expected, shown only
const dialogs = [];
try {
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(WAIT);
  page.setDefaultNavigationTimeout(WAIT);
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const url = (m.location() && m.location().url) || '';
    (url.includes('/view/') ? frameConsole : consoleErrors).push(`${m.text()} [${url}]`);
  });
  page.on('dialog', (d) => { dialogs.push(`${d.type()}: ${d.message()}`); d.dismiss().catch(() => {}); });

  const resp = await must('page loads', async () => {
    const r = await page.goto(`${BASE}/`, { waitUntil: 'load' });
    if (!r || r.status() !== 200) throw new Error(`status ${r && r.status()}`);
    return r;
  });
  const csp = resp.headers()['content-security-policy'] || '';
  check(/script-src 'self'/.test(csp) && !/unsafe-inline|unsafe-eval/.test(csp), 'page has a strict Content-Security-Policy', csp);
  await must('live updates connected (EventSource open)', () => page.waitForSelector('#live.on', { timeout: WAIT }));

  await page.evaluate(() => { window.__marker = 1; });
  await must('SMTP: plain message accepted', () => smtpSend({
    from: 'alice@example.com',
    to: ['bob@example.com'],
    data: message(['From: Alice <alice@example.com>', 'To: Bob <bob@example.com>', `Subject: ${PLAIN_SUBJECT}`,
      'Content-Type: text/plain; charset=utf-8'], `Hello from the browser test ${tag}.\r\n.A line starting with a dot.`),
  }));
  await must('SMTP: hostile message accepted', () => smtpSend({
    from: 'mallory@example.com',
    to: ['victim@example.com'],
    data: message([`From: Hostile ${tag} <mallory@example.com>`, 'To: victim@example.com', `Subject: ${HOSTILE_SUBJECT}`,
      'Content-Type: text/html; charset=utf-8'],
    '<p>Hostile</p><script>window.parent.__pwned=1; alert(1)</script>'
      + '<img src=x onerror="window.top.__pwned=1;alert(2)">'
      + `<p><a href="https://example.com/${tag}">a link ${tag}</a></p>`),
  }));

  await must('new message appears in #messages live', () => page.waitForFunction(
    (s) => [...document.querySelectorAll('#messages li.message')].some((li) => li.textContent.includes(s)),
    PLAIN_SUBJECT, { timeout: WAIT },
  ));
  check(await page.evaluate(() => window.__marker) === 1, 'page was not reloaded (window.__marker still 1)');
  check(await page.waitForFunction((t) => {
    const first = document.querySelector('#messages li.message');
    return first && first.textContent.includes(`Hostile ${t}`);
  }, tag, { timeout: WAIT }).then(() => true, () => false), 'newest message (the second sent) is at the top of the list');

  const hostileRow = page.locator('#messages li.message', { hasText: `Hostile ${tag}` });
  await must('hostile message listed', () => hostileRow.first().waitFor({ timeout: WAIT }));
  check(await hostileRow.first().evaluate((li, s) => li.textContent.includes(s), HOSTILE_SUBJECT),
    'hostile subject shown as text in the list');
  await hostileRow.first().click();
  await must('#subject shows the literal hostile subject', () => page.waitForFunction(
    (s) => document.getElementById('subject').textContent === s, HOSTILE_SUBJECT, { timeout: WAIT },
  ));

  // The message's HTML loads in the sandboxed iframe.
  const frameEl = await must('iframe #html points at view/ID.html',
    () => page.waitForSelector('#html[src*="view/"]', { state: 'attached', timeout: WAIT }));
  const frame = await frameEl.contentFrame();
  await must('iframe loads the message HTML', async () => {
    const until = Date.now() + WAIT;
    while (!frame.url().includes('/view/')) {
      if (Date.now() > until) throw new Error(`frame url ${frame.url()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await frame.waitForLoadState('load', { timeout: WAIT });
  });
  const linkText = await frame.locator('a').first().textContent({ timeout: WAIT }).catch((e) => `error: ${e.message}`);
  check(linkText === `a link ${tag}`, 'iframe renders the message HTML (its link is there)', linkText);
  await page.waitForTimeout(500); // give any onerror handler time to fire

  const dom = await page.evaluate(() => {
    const f = document.getElementById('html');
    return {
      pwned: typeof window.__pwned,
      sandbox: f.getAttribute('sandbox'),
      referrer: f.getAttribute('referrerpolicy'),
      scripts: [...document.querySelectorAll('script')].map((s) => s.getAttribute('src')),
      imgs: document.querySelectorAll('img').length,
      iframes: document.querySelectorAll('iframe').length,
      marker: window.__marker,
    };
  });
  check(dom.pwned === 'undefined', 'window.__pwned is undefined (no message script ran)', dom.pwned);
  check(dialogs.length === 0, 'no dialog was opened', dialogs.join('; '));
  check(dom.sandbox === '', 'iframe has sandbox=""', JSON.stringify(dom.sandbox));
  check(dom.referrer === 'no-referrer', 'iframe has referrerpolicy="no-referrer"', dom.referrer);
  check(dom.scripts.length === 1 && /(^|\/)app\.js$/.test(dom.scripts[0] || ''), 'the only <script> element is app.js',
    JSON.stringify(dom.scripts));
  check(dom.imgs === 0, 'no <img> element in the page (hostile subject not parsed as HTML)', dom.imgs);
  check(dom.iframes === 1, 'one iframe in the page', dom.iframes);

  // The other parts of the open message.
  await page.click('#tab-headers');
  check(await page.waitForFunction((s) => [...document.querySelectorAll('#headers td')].some((td) => td.textContent === s),
    HOSTILE_SUBJECT, { timeout: WAIT }).then(() => true, () => false), 'Headers tab lists the Subject header as text');
  await page.click('#tab-raw');
  check(await page.waitForFunction(() => document.getElementById('raw').textContent.includes('<script>window.parent'),
    null, { timeout: WAIT }).then(() => true, () => false), 'Raw tab shows the source as text');
  check(await page.evaluate(() => document.querySelectorAll('script').length) === 1, 'still one <script> element');
  await page.click('#tab-html');

  // Search, then back to the full list.
  await page.fill('#search', `subject:${tag}`);
  await page.press('#search', 'Enter');
  check(await page.waitForFunction((s) => {
    const rows = [...document.querySelectorAll('#messages li.message')];
    return rows.length === 1 && rows[0].textContent.includes(s);
  }, PLAIN_SUBJECT, { timeout: WAIT }).then(() => true, () => false), 'search finds only the plain message');
  await page.fill('#search', '');
  await page.press('#search', 'Enter');
  check(await page.waitForFunction((t) => [...document.querySelectorAll('#messages li.message')]
    .some((li) => li.textContent.includes(`Hostile ${t}`)), tag, { timeout: WAIT }).then(() => true, () => false),
  'empty search shows the full list again');

  // Delete one: the plain message leaves the list.
  await page.locator('#messages li.message', { hasText: PLAIN_SUBJECT }).first().click();
  await page.waitForFunction((s) => document.getElementById('subject').textContent === s, PLAIN_SUBJECT, { timeout: WAIT });
  await page.click('#delete-one');
  check(await page.waitForFunction((s) => ![...document.querySelectorAll('#messages li.message')]
    .some((li) => li.textContent.includes(s)), PLAIN_SUBJECT, { timeout: WAIT }).then(() => true, () => false),
  'Delete removes the message from the list');
  const gone = await page.evaluate(async (s) => {
    const r = await fetch(`api/v1/search?query=${encodeURIComponent(`subject:${s}`)}`);
    return r.ok ? (await r.json()).messages_count : `status ${r.status}`;
  }, tag);
  check(gone === 0, 'and from the server', gone);

  check(await page.evaluate(() => window.__marker) === 1, 'page was never reloaded');
  check(pageErrors.length === 0, 'no uncaught error in the page', pageErrors.join('; '));
  check(consoleErrors.length === 0, 'no console error from the page', consoleErrors.join('; '));
  for (const m of frameConsole) console.log(`info: message frame said: ${m}`);

  // Leave the hostile message open for the screenshot.
  await hostileRow.first().click();
  await page.waitForFunction((s) => document.getElementById('subject').textContent === s, HOSTILE_SUBJECT, { timeout: WAIT });
  await page.waitForTimeout(300);
} catch (e) {
  if (!(e instanceof Stop)) check(false, 'test ran to the end', String((e && e.stack) || e).split('\n').slice(0, 3).join(' '));
} finally {
  if (page) {
    await page.screenshot({ path: SCREENSHOT, timeout: WAIT }).then(
      () => console.log(`info: screenshot in ${SCREENSHOT}`),
      (e) => console.log(`info: no screenshot: ${e.message}`),
    );
  }
  await browser.close().catch(() => {});
}
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
