// ui-driver.mjs: Debian's Chromium, driven through playwright-core, for the
// dashboard's tests (tests/integration/test_ui.py) and bench (bench/ui/run).
//
// A line protocol on stdin/stdout, so that the Python side keeps the fleet,
// the CLI and the assertions: each line in is one JSON command, each line
// out the JSON answer {"ok": true, ...} or {"ok": false, "error": "..."}.
//
//   {"op": "page", "token": T?}             a new browser context and page (T: in
//                                           session storage, as the prompt keeps it)
//   {"op": "goto", "url": U}
//   {"op": "fill", "sel": S, "value": V}    {"op": "click", "sel": S}
//   {"op": "select", "sel": S, "value": V}  {"op": "press", "sel": S, "key": K}
//   {"op": "wait", "sel": S, "text": T?, "state": "visible"|"hidden"|"attached"?,
//    "timeout": ms}                          waits for S (containing T)
//   {"op": "text", "sel": S}                S's innerText ("" when absent)
//   {"op": "count", "sel": S}               how many elements match S
//   {"op": "attr", "sel": S, "name": N}     an attribute of the first match
//   {"op": "eval", "js": "async () => ..."} the function's result, run in the page
//   {"op": "download", "sel": S}            clicks S; the download's name and text
//   {"op": "screenshot", "path": P, "full": bool}
//   {"op": "problems"}                      console errors, CSP violations and
//                                           page errors seen so far
//   {"op": "quit"}
//
// Environment: KF_CHROMIUM (default /usr/bin/chromium).
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const exe = process.env.KF_CHROMIUM || '/usr/bin/chromium';
const browser = await chromium.launch({
  executablePath: exe,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
let context = null;
let page = null;
const problems = [];

async function newPage(c) {
  if (context) await context.close();
  context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  if (c && c.token) {
    // signed in already, as after the prompt (the token in session storage)
    await context.addInitScript((t) => sessionStorage.setItem('kfleet.token', t), c.token);
  }
  page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('dialog', (d) => d.accept());
  return {};
}

function loc(sel, text) {
  const l = page.locator(sel);
  return text === undefined || text === null ? l.first() : l.filter({ hasText: text }).first();
}

const ops = {
  page: newPage,
  goto: async (c) => { await page.goto(c.url, { waitUntil: 'domcontentloaded' }); return {}; },
  fill: async (c) => { await loc(c.sel).fill(c.value); return {}; },
  click: async (c) => { await loc(c.sel, c.text).click({ timeout: c.timeout || 10000 }); return {}; },
  select: async (c) => { await loc(c.sel).selectOption(c.value); return {}; },
  press: async (c) => { await loc(c.sel).press(c.key); return {}; },
  wait: async (c) => {
    const t0 = Date.now();
    await loc(c.sel, c.text).waitFor({ state: c.state || 'visible', timeout: c.timeout || 10000 });
    return { ms: Date.now() - t0 };
  },
  text: async (c) => {
    const l = loc(c.sel);
    return { text: (await l.count()) ? await l.innerText() : '' };
  },
  count: async (c) => ({ count: await page.locator(c.sel).count() }),
  attr: async (c) => ({ value: await loc(c.sel).getAttribute(c.name) }),
  // eslint-disable-next-line no-eval
  eval: async (c) => ({ value: await page.evaluate(`(${c.js})()`) }),
  download: async (c) => {
    const [dl] = await Promise.all([page.waitForEvent('download', { timeout: c.timeout || 10000 }),
      loc(c.sel).click()]);
    const stream = await dl.createReadStream();
    const chunks = [];
    for await (const ch of stream) chunks.push(ch);
    return { name: dl.suggestedFilename(), text: Buffer.concat(chunks).toString('utf8') };
  },
  screenshot: async (c) => { await page.screenshot({ path: c.path, fullPage: !!c.full }); return {}; },
  problems: async () => ({ problems: problems.splice(0) }),
};

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  let c;
  try {
    c = JSON.parse(line);
  } catch (e) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: `bad command: ${e.message}` })}\n`);
    continue;
  }
  if (c.op === 'quit') break;
  try {
    const fn = ops[c.op];
    if (!fn) throw new Error(`unknown op "${c.op}"`);
    const r = await fn(c);
    process.stdout.write(`${JSON.stringify({ ok: true, ...r })}\n`);
  } catch (e) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: String(e.message || e).slice(0, 2000) })}\n`);
  }
}
if (context) await context.close();
await browser.close();
process.exit(0); // stdin, still open, would keep node running
