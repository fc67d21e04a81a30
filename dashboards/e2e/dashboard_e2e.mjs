// End-to-end test of the hakmem dashboard: the push API, then the page in
// headless Chromium (Debian's /usr/bin/chromium driven by playwright-core).
//
// Run by dashboards/dashboard_test.sh, which starts the servers:
//   node dashboard_e2e.mjs --url URL --nolib-url URL --runs FILE \
//       --node-modules DIR --out DIR [--chromium PATH] [--profile DIR] \
//       [--token-file FILE] [--commit-url TEMPLATE]
//
// --url        a server with an empty database (the test pushes into it)
// --token-file the server's push token (sent as Authorization: Bearer)
// --commit-url the server's --commit-url, to check the alert links
// --nolib-url  a server on the same database whose Chart.js is missing
// --runs       a run JSON (one object) or a JSON array of runs, pushed in order
// --node-modules  dashboards/node_modules (playwright-core is loaded from it)
// --out        where the screenshots go

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';

// ------------------------------------------------------------------ options

function parseArgs(argv) {
  const opts = { chromium: '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i];
    const value = argv[i + 1];
    if (!key.startsWith('--') || value === undefined) throw new Error(`bad argument list near ${key}`);
    opts[key.slice(2).replace(/-([a-z])/g, (m, c) => c.toUpperCase())] = value;
  }
  for (const k of ['url', 'runs', 'nodeModules', 'out']) {
    if (!opts[k]) throw new Error(`missing --${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`);
  }
  if (!opts.url.endsWith('/')) opts.url += '/';
  if (opts.nolibUrl && !opts.nolibUrl.endsWith('/')) opts.nolibUrl += '/';
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const TOKEN = opts.tokenFile ? fs.readFileSync(opts.tokenFile, 'utf8').trim() : null;
const requireFromDashboards = createRequire(path.join(path.dirname(path.resolve(opts.nodeModules)), 'package.json'));
const { chromium } = requireFromDashboards('playwright-core');

// ------------------------------------------------------------------ checks

let passed = 0;
const failures = [];

function check(cond, what) {
  if (cond) passed += 1;
  else {
    failures.push(what);
    console.log(`FAIL: ${what}`);
  }
  return cond;
}

function mustHold(cond, what) {
  if (!check(cond, what)) throw new Error(`cannot go on: ${what}`);
}

function sameNumber(a, b) {
  if (a === null || a === undefined || b === null || b === undefined) return (a ?? null) === (b ?? null);
  return a === b || Math.abs(a - b) <= 1e-12 * Math.max(Math.abs(a), Math.abs(b));
}

function log(msg) {
  console.log(`[e2e] ${msg}`);
}

// ------------------------------------------------------------- expectations

const HAKMEM = 'hakmem';
const RANK = ['hakmem', 'glibc', 'mimalloc', 'jemalloc', 'tcmalloc'];
const rank = (a) => (RANK.includes(a) ? RANK.indexOf(a) : RANK.length);
const seriesLabel = (a, v) => (v ? `${a} (${v})` : a);
const fmtRatio = (r) => (r === null || r === undefined || !Number.isFinite(r) ? '–' : r.toFixed(2) + '×');
const configOf = (run) => (run.config.build ? `${run.config.mode}/${run.config.build}` : run.config.mode);
const byEntryOrder = (x, y) => rank(x.allocator) - rank(y.allocator) ||
  (x.allocator < y.allocator ? -1 : x.allocator > y.allocator ? 1 : 0) ||
  (x.variant < y.variant ? -1 : x.variant > y.variant ? 1 : 0);

function loadRuns(file) {
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  const runs = Array.isArray(doc) ? doc : [doc];
  mustHold(runs.length > 0, `${file} holds at least one run`);
  for (const run of runs) {
    for (const r of run.results) {
      r.params = r.params ?? '';
      r.variant = r.variant ?? '';
      r.peak_rss_kb = r.peak_rss_kb ?? null;
    }
  }
  return runs.concat(alertPair(runs[0]));
}

// Two runs of their own machine and configuration, made from the first run
// with every round equal (no spread, so the 3% floor is the noise). The
// second halves hakmem's figure (doubles it when lower is better) on every
// other benchmark group and copies the rest: exactly those groups must be
// flagged, on hakmem's figure and on its ratio to the best peer.
const ALERT_HOST = 'e2e-alerts-host';
function alertPair(base) {
  const flat = (r, median) => ({ ...r, median, min: median, max: median, values: [median] });
  const groupKey = (r) => JSON.stringify([r.benchmark, r.params, r.threads, r.metric]);
  const keys = [...new Set(base.results.map(groupKey))].sort();
  const regressed = new Set(keys.filter((k, i) => i % 2 === 0));
  const make = (commit, time, change) => ({
    ...clone(base), commit, commit_subject: `e2e alert run ${commit.slice(0, 7)}`, commit_time: time, time,
    machine: { ...base.machine, hostname: ALERT_HOST },
    config: { ...base.config, mode: 'alerts' },
    results: base.results.map((r) => flat(r, change(r) ? (r.higher_is_better ? r.median / 2 : r.median * 2) : r.median)),
  });
  const first = make('a1e47a1000000000000000000000000000000001', '2099-01-01T00:00:00Z', () => false);
  const second = make('a1e47b2000000000000000000000000000000002', '2099-01-02T00:00:00Z',
    (r) => r.allocator === HAKMEM && regressed.has(groupKey(r)));
  second.expectedAlerts = new Set();
  for (const r of second.results) {
    if (r.allocator !== HAKMEM || !regressed.has(groupKey(r))) continue;
    second.expectedAlerts.add(JSON.stringify([r.benchmark, r.params, r.threads, r.metric, r.variant, 'median']));
    if (second.results.some((p) => p.allocator !== HAKMEM && groupKey(p) === groupKey(r) && p.median > 0)) {
      second.expectedAlerts.add(JSON.stringify([r.benchmark, r.params, r.threads, r.metric, r.variant, 'vs_best_peer']));
    }
  }
  second.regressedGroups = regressed;
  return [first, second];
}

// Runs in the dashboard's commit order: commit time (else run time), run time, id.
function commitOrder(runs) {
  const t = (s) => (s ? Date.parse(s) : NaN);
  return runs.slice().sort((a, b) => {
    const ka = Number.isNaN(t(a.commit_time)) ? t(a.time) : t(a.commit_time);
    const kb = Number.isNaN(t(b.commit_time)) ? t(b.time) : t(b.commit_time);
    return ka - kb || t(a.time) - t(b.time) || a.id - b.id;
  });
}

function combosOf(runs) {
  const seen = new Map();
  for (const run of runs) {
    for (const r of run.results) {
      const combo = { benchmark: r.benchmark, threads: r.threads, config: configOf(run), metric: r.metric };
      seen.set(JSON.stringify([combo.benchmark, combo.threads, combo.config, combo.metric]), combo);
    }
  }
  return [...seen.values()];
}

function expectedFor(runs, combo) {
  const match = (run, r) => configOf(run) === combo.config && r.benchmark === combo.benchmark &&
    r.threads === combo.threads && r.metric === combo.metric;
  const ordered = commitOrder(runs.filter((run) => run.results.some((r) => match(run, r))));
  const params = new Set();
  for (const run of ordered) for (const r of run.results) if (match(run, r)) params.add(r.params);
  const label = (r) => seriesLabel(r.allocator, r.variant) +
    (params.size > 1 ? ` [${r.params || 'default params'}]` : '');
  const points = [];
  ordered.forEach((run, index) => {
    for (const r of run.results) if (match(run, r)) points.push({ index, run, r, label: label(r) });
  });
  const latest = ordered[ordered.length - 1];
  const latestRows = latest.results.filter((r) => match(latest, r)).sort(byEntryOrder);
  return { ordered, points, labels: new Set(points.map((p) => p.label)), latest, latestRows, params };
}

// ------------------------------------------------------------------- HTTP

async function request(pathname, init) {
  const response = await fetch(opts.url + pathname, init);
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch (e) { body = null; }
  return { status: response.status, text, body };
}

// POST /api/runs announcing `length` bytes but sending none of them; the reply or a 10 s time-out.
function headOnlyPush(length) {
  return new Promise((resolve) => {
    const req = http.request(new URL('api/runs', opts.url), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Content-Length': String(length), Authorization: `Bearer ${TOKEN}` },
    });
    const timer = setTimeout(() => { req.destroy(); resolve({ status: 0, text: 'no answer within 10 s' }); }, 10000);
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => { clearTimeout(timer); req.destroy(); resolve({ status: res.statusCode, text }); });
    });
    req.on('error', (e) => { clearTimeout(timer); resolve({ status: 0, text: String(e) }); });
    req.flushHeaders();
  });
}

function push(body, contentType = 'application/json', token = TOKEN) {
  const headers = { 'Content-Type': contentType };
  if (token) headers.Authorization = `Bearer ${token}`;
  return request('api/runs', { method: 'POST', headers, body });
}

function clone(x) {
  return JSON.parse(JSON.stringify(x, (k, v) => (k === 'expectedAlerts' || k === 'regressedGroups' ? undefined : v)));
}

async function apiChecks(runs) {
  const health = await request('healthz');
  mustHold(health.status === 200 && health.body.ok === true, 'GET /healthz answers ok');
  mustHold(health.body.runs === 0, 'the test database starts empty');

  if (TOKEN) {
    const res = await push(JSON.stringify(clone(runs[0])), 'application/json', null);
    check(res.status === 401, `push without the token -> 401 (got ${res.status})`);
    const wrong = await push(JSON.stringify(clone(runs[0])), 'application/json', TOKEN + 'x');
    check(wrong.status === 403, `push with a wrong token -> 403 (got ${wrong.status})`);
  }
  for (const run of runs) {
    const res = await push(JSON.stringify(clone(run)));
    mustHold(res.status === 201, `push of run ${run.commit.slice(0, 7)} -> 201 (got ${res.status}: ${res.text.slice(0, 300)})`);
    check(res.body.results === run.results.length, `201 reply counts ${run.results.length} results`);
    check(Number.isInteger(res.body.id), '201 reply carries the run id');
    run.id = res.body.id;
    if (run.expectedAlerts) {
      const got = new Set(res.body.alerts.map((a) => JSON.stringify([a.benchmark, a.params, a.threads, a.metric, a.variant, a.figure])));
      check(got.size === run.expectedAlerts.size && [...got].every((a) => run.expectedAlerts.has(a)),
        `push reply lists exactly the ${run.expectedAlerts.size} regressions made on purpose (got ${got.size}: ${[...got].slice(0, 4).join(' ')})`);
      check(res.body.previous_run && res.body.previous_run.commit === runs[runs.indexOf(run) - 1].commit,
        'the alerts compare with the previous run of the same machine and configuration');
    }
  }
  log(`pushed ${runs.length} run(s), ${runs.reduce((n, r) => n + r.results.length, 0)} results`);

  const last = runs[runs.length - 1];
  const dup = await push(JSON.stringify(clone(last)));
  check(dup.status === 409, `identical re-push -> 409 (got ${dup.status})`);
  check(dup.body && /duplicate/i.test(dup.body.error) && dup.body.id === last.id,
    `409 names the stored run: ${dup.text.slice(0, 200)}`);

  const snapshot = async () => {
    const out = { runs: (await request('api/runs')).text, benchmarks: (await request('api/benchmarks')).text };
    for (const run of runs) out[`run${run.id}`] = (await request(`api/runs/${run.id}`)).text;
    return out;
  };
  const before = await snapshot();

  // Bad pushes: each -> 400 whose message names the problem; nothing stored.
  const base = runs[0];
  const n = base.results.length;
  const i1 = Math.min(1, n - 1);
  const i2 = Math.min(2, n - 1);
  const bad = [];
  bad.push(['malformed JSON', JSON.stringify(base).slice(0, -7), /malformed JSON/]);
  bad.push(['not an object', '[1, 2, 3]', /must be a JSON object/]);
  bad.push(['wrong content type', JSON.stringify(base), /Content-Type must be application\/json/, 'text/plain']);
  { const r = clone(base); delete r.results[i1].median; bad.push(['missing field', JSON.stringify(r), new RegExp(`results\\[${i1}\\]\\.median: missing`)]); }
  { const r = clone(base); delete r.commit; bad.push(['missing commit', JSON.stringify(r), /^commit: missing/]); }
  { const r = clone(base); r.results[i2].median = -5; bad.push(['negative value', JSON.stringify(r), new RegExp(`results\\[${i2}\\]\\.median: must not be negative`)]); }
  { const r = clone(base); r.results[i1].min = 0.5; r.results[i1].values = []; r.results[i1].median = 0.25; bad.push(['min above median', JSON.stringify(r), new RegExp(`results\\[${i1}\\]\\.min: min .* greater than median`)]); }
  { const r = clone(base); r.results[i1].max = '__NaN__'; bad.push(['NaN', JSON.stringify(r).replace('"__NaN__"', 'NaN'), new RegExp(`results\\[${i1}\\]\\.max: must be a finite number, got NaN`)]); }
  { const r = clone(base); r.results[0].median = '__Inf__'; bad.push(['Infinity', JSON.stringify(r).replace('"__Inf__"', 'Infinity'), /results\[0\]\.median: must be a finite number, got Infinity/]); }
  { const r = clone(base); r.results[i1].threads = '2'; bad.push(['wrong type', JSON.stringify(r), new RegExp(`results\\[${i1}\\]\\.threads: expected an integer, got string`)]); }
  { const r = clone(base); r.results[i1].threads = 5000; bad.push(['threads out of range', JSON.stringify(r), new RegExp(`results\\[${i1}\\]\\.threads: 5000 is out of range`)]); }
  { const r = clone(base); r.results[i2].median = 2e13; r.results[i2].max = 3e13; r.results[i2].values = []; bad.push(['absurd throughput', JSON.stringify(r), new RegExp(`results\\[${i2}\\]\\.median: absurd measurement`)]); }
  { const r = clone(base); r.results[i1].peak_rss_kb = 2e10; bad.push(['absurd RSS', JSON.stringify(r), new RegExp(`results\\[${i1}\\]\\.peak_rss_kb: absurd peak RSS`)]); }
  { const r = clone(base); r.results[i1].benchmark = 'b'.repeat(201); bad.push(['long string', JSON.stringify(r), new RegExp(`results\\[${i1}\\]\\.benchmark: string is 201 characters`)]); }
  { const r = clone(base); r.results = []; bad.push(['empty results', JSON.stringify(r), /^results: must not be empty/]); }
  { const r = clone(base); r.results.push(clone(r.results[0])); bad.push(['duplicate result', JSON.stringify(r), new RegExp(`results\\[${n}\\]: duplicates results\\[0\\]`)]); }
  { const r = clone(base); r.schema = 2; bad.push(['unknown schema', JSON.stringify(r), /^schema: unsupported run schema 2/]); }
  { const r = clone(base); r.time = 'yesterday'; bad.push(['bad time', JSON.stringify(r), /^time: not an ISO-8601 time/]); }
  {
    const r = clone(base);
    const tiny = { benchmark: 'x', threads: 1, allocator: 'a', metric: 'm', higher_is_better: true, median: 1 };
    r.results = new Array(100001).fill(tiny);
    bad.push(['too many results', JSON.stringify(r), /^results: 100001 results; the limit is 100000/]);
  }
  { const r = clone(base); r.results[0].benchmark = 'x\ud800'; bad.push(['lone surrogate', JSON.stringify(r), /^results\[0\]\.benchmark: contains a lone UTF-16 surrogate U\+D800/]); }
  { const r = clone(base); r.machine.hostname = 'host\u202e'; bad.push(['bidi control', JSON.stringify(r), /^machine\.hostname: contains the bidirectional control character U\+202E/]); }
  { const r = clone(base); r.results[0].threads = 31337; bad.push(['5000-digit number', JSON.stringify(r).replace('31337', '7'.repeat(5000)), /^malformed JSON: a number with 5000 digits/]); }
  bad.push(['duplicate key', JSON.stringify(base).replace('{', '{"schema": 1, '), /^malformed JSON: duplicate key "schema"/]);

  for (const [name, body, pattern, ctype] of bad) {
    const res = await push(body, ctype);
    const message = res.body && typeof res.body.error === 'string' ? res.body.error : `(no JSON error: ${res.text.slice(0, 120)})`;
    check(res.status === 400, `bad push "${name}" -> 400 (got ${res.status}: ${message.slice(0, 200)})`);
    check(pattern.test(message), `bad push "${name}": message ${JSON.stringify(message.slice(0, 200))} matches ${pattern}`);
  }
  log(`${bad.length} bad pushes rejected`);

  // Over the body limit waitress answers 413 itself (plain text) on seeing Content-Length, before the
  // app reads the token or the body: only the head is sent, and the answer must come anyway.
  {
    const res = await headOnlyPush(11 * 1024 * 1024);
    check(res.status === 413 && /exceeds max_body of 10485761/.test(res.text),
      `a body over 10 MiB -> 413 from waitress before it is sent (got ${res.status}: ${res.text.slice(0, 120)})`);
  }

  const after = await snapshot();
  for (const key of Object.keys(before)) {
    check(before[key] === after[key], `stored data unchanged by bad pushes (${key} byte-identical)`);
  }

  // What the API hands back is what was pushed.
  for (const run of runs) {
    const got = JSON.parse(after[`run${run.id}`]);
    check(got.commit === run.commit.toLowerCase() && got.results.length === run.results.length,
      `GET /api/runs/${run.id}: commit and result count`);
    let same = true;
    run.results.forEach((r, i) => {
      const g = got.results[i];
      if (!g || g.benchmark !== r.benchmark || g.allocator !== r.allocator || g.variant !== r.variant ||
          !sameNumber(g.median, r.median) || !sameNumber(g.peak_rss_kb, r.peak_rss_kb)) same = false;
    });
    check(same, `GET /api/runs/${run.id}: every result as pushed`);
  }
  check((await request('api/runs/999999')).status === 404, 'GET /api/runs/<unknown> -> 404');
  check((await request('api/series')).status === 400, 'GET /api/series without benchmark -> 400');
  check((await request('api/nope')).status === 404, 'unknown API path -> 404');
  check((await request('api/latest', { method: 'POST', body: '' })).status === 405, 'POST /api/latest -> 405');

  // Ratios of /api/latest against figures computed here from the pushed runs.
  const combos = combosOf(runs);
  let ratioChecks = 0;
  for (const combo of combos) {
    const exp = expectedFor(runs, combo);
    if (exp.params.size > 1) continue;
    const q = new URLSearchParams({ benchmark: combo.benchmark, threads: String(combo.threads), metric: combo.metric, config: combo.config });
    const latest = (await request(`api/latest?${q}`)).body;
    check(latest.run && latest.run.id === exp.latest.id, `/api/latest for ${JSON.stringify(combo)} is run ${exp.latest.id}`);
    const cmp = latest.comparisons.find((c) => c.benchmark === combo.benchmark && c.threads === combo.threads && c.metric === combo.metric);
    if (!check(cmp, `/api/latest has a comparison for ${combo.benchmark}`)) continue;
    const glibc = exp.latestRows.find((r) => r.allocator === 'glibc');
    for (const h of cmp.hakmem) {
      const mine = exp.latestRows.find((r) => r.allocator === HAKMEM && r.variant === h.variant);
      if (glibc && mine) {
        check(sameNumber(h.vs_glibc.ratio, mine.median / glibc.median), `${combo.benchmark} ${h.label}/glibc ratio`);
        ratioChecks += 1;
      }
    }
  }
  log(`${combos.length} benchmark combinations, ${ratioChecks} hakmem/glibc ratios checked in the API`);
  return combos;
}

// ---------------------------------------------------------------- browser

async function pageSnapshot(page) {
  return page.evaluate(() => {
    const c = window.hakmemCharts;
    const ds = (ch) => (ch ? ch.data.datasets.map((d) => ({
      label: d.label, data: d.data.slice(),
      alerts: d.hakmemAlerts ? d.hakmemAlerts.map((m) => (m ? m.map((a) => a.figure) : null)) : null,
      pointStyle: Array.isArray(d.pointStyle) ? d.pointStyle.slice() : d.pointStyle,
    })) : []);
    return {
      labels: c.throughput ? c.throughput.data.labels.slice() : [],
      rssLabels: c.rss ? c.rss.data.labels.slice() : [],
      tp: ds(c.throughput),
      rss: ds(c.rss),
      ratio: ds(c.ratio),
      rssRatio: ds(c.rssRatio),
      alertItems: [...document.querySelectorAll('#alerts-list li')].map((li) => ({
        figure: li.dataset.figure, variant: li.dataset.variant, run: li.dataset.run,
        href: li.querySelector('a.commit').getAttribute('href'), text: li.textContent,
      })),
      alertsShown: !document.getElementById('alerts-section').hidden,
      barLabels: c.bars ? c.bars.data.labels.slice() : [],
      bars: c.bars && c.bars.data.datasets[0] ? c.bars.data.datasets[0].data.slice() : [],
      barTexts: c.bars ? c.bars.options.plugins.hakmemBarLabels.lines.map((ls) => ls.map((l) => l.text)) : [],
      cards: [...document.querySelectorAll('#ratio-cards .ratio-card')].map((e) => ({
        kind: e.dataset.kind, hakmem: e.dataset.hakmem, peer: e.dataset.peer,
        value: e.querySelector('.value').textContent, what: e.querySelector('.what').textContent,
      })),
      peerRows: [...document.querySelectorAll('#peer-table tbody tr')].map((tr) => ({
        hakmem: tr.dataset.hakmem, peer: tr.dataset.peer, ratio: tr.children[3].textContent,
      })),
      rawRows: document.querySelectorAll('#raw-table tbody tr').length,
      summaryRows: document.querySelectorAll('#summary-table tbody tr').length,
      errorShown: !document.getElementById('error').hidden,
      missingShown: !document.getElementById('chart-missing').hidden,
      canvasPainted: [...document.querySelectorAll('canvas')].every((cv) => cv.width > 0 && cv.height > 0),
    };
  });
}

async function selectCombo(page, combo, machine = '') {
  const key = JSON.stringify([combo.benchmark, combo.threads, combo.config, combo.metric, machine]);
  await page.selectOption('#f-benchmark', combo.benchmark);
  await page.selectOption('#f-config', combo.config);
  await page.selectOption('#f-threads', String(combo.threads));
  await page.selectOption('#f-metric', combo.metric);
  await page.selectOption('#f-machine', machine);
  await page.waitForFunction((k) => window.hakmemDashboard.renderedKey === k && !window.hakmemDashboard.loading,
    key, { timeout: 15000 });
}

function checkCombo(snap, exp, combo, apiSeries) {
  const name = `${combo.benchmark} ${combo.threads}T ${combo.metric} ${combo.config}`;
  const shorts = exp.ordered.map((r) => r.commit.toLowerCase().slice(0, 7));
  check(snap.labels.length === shorts.length && snap.labels.every((l, i) => l.startsWith(shorts[i])),
    `${name}: x axis = commits in commit order ${JSON.stringify(shorts)} (got ${JSON.stringify(snap.labels)})`);
  check(snap.tp.length === exp.labels.size, `${name}: ${exp.labels.size} lines (got ${snap.tp.length})`);
  check(snap.rss.length === exp.labels.size, `${name}: ${exp.labels.size} RSS lines (got ${snap.rss.length})`);
  let ok = true;
  let okRss = true;
  for (const p of exp.points) {
    const d = snap.tp.find((x) => x.label === p.label);
    const dr = snap.rss.find((x) => x.label === p.label);
    if (!d || !sameNumber(d.data[p.index], p.r.median)) {
      ok = false;
      console.log(`  ${name}: ${p.label} at ${p.index}: chart ${d ? d.data[p.index] : 'no line'}, pushed ${p.r.median}`);
    }
    if (!dr || !sameNumber(dr.data[p.index], p.r.peak_rss_kb)) {
      okRss = false;
      console.log(`  ${name}: ${p.label} RSS at ${p.index}: chart ${dr ? dr.data[p.index] : 'no line'}, pushed ${p.r.peak_rss_kb}`);
    }
  }
  check(ok, `${name}: metric chart holds every pushed median`);
  check(okRss, `${name}: RSS chart holds every pushed peak_rss_kb`);
  // A point the test did not push must be a gap.
  const pushedAt = new Set(exp.points.map((p) => `${p.label}@${p.index}`));
  const extra = snap.tp.flatMap((d) => d.data.map((v, i) => (v !== null && !pushedAt.has(`${d.label}@${i}`) ? `${d.label}@${i}` : null)))
    .filter((x) => x);
  check(extra.length === 0, `${name}: no points beyond the pushed ones (${extra.join(', ')})`);

  // History of hakmem / glibc, from the pushed medians.
  if (exp.params.size === 1) {
    let okRatio = true;
    let nRatio = 0;
    exp.ordered.forEach((run, index) => {
      const rows = run.results.filter((r) => r.benchmark === combo.benchmark && r.threads === combo.threads && r.metric === combo.metric);
      const glibc = rows.find((r) => r.allocator === 'glibc');
      for (const h of rows.filter((r) => r.allocator === HAKMEM)) {
        if (!glibc || !glibc.median) continue;
        const d = snap.ratio.find((x) => x.label === `${seriesLabel(h.allocator, h.variant)} / glibc`);
        nRatio += 1;
        if (!d || !sameNumber(d.data[index], h.median / glibc.median)) {
          okRatio = false;
          console.log(`  ${name}: ${seriesLabel(h.allocator, h.variant)} / glibc at ${index}: chart ${d ? d.data[index] : 'no line'}, expected ${h.median / glibc.median}`);
        }
      }
    });
    check(okRatio, `${name}: ratio history holds hakmem / glibc at every commit (${nRatio} points)`);
  }

  // Alert marks: only the second run of the alert pair has them, only on regressed groups.
  const alertRun = exp.ordered.find((r) => r.expectedAlerts);
  const groupKey = JSON.stringify([combo.benchmark, exp.latestRows.length ? exp.latestRows[0].params : '', combo.threads, combo.metric]);
  const hakmemLines = snap.tp.filter((d) => d.label.startsWith(HAKMEM));
  if (alertRun && exp.params.size === 1) {
    const i = exp.ordered.indexOf(alertRun);
    const want = alertRun.regressedGroups.has(groupKey);
    check(hakmemLines.length > 0 && hakmemLines.every((d) => want === Boolean(d.alerts && d.alerts[i] && d.alerts[i].includes('median'))),
      `${name}: hakmem lines ${want ? 'carry' : 'carry no'} an alert mark at the regressed commit`);
    check(hakmemLines.every((d) => (d.pointStyle[i] === 'triangle') === want), `${name}: the mark is drawn as a triangle`);
    check(hakmemLines.every((d) => d.alerts.every((m, j) => j === i || m === null)), `${name}: no mark at other commits`);
    const best = snap.ratio.filter((d) => d.label.endsWith('/ best peer'));
    check(best.every((d) => Boolean(d.alerts && d.alerts[i] && d.alerts[i].includes('vs_best_peer')) === want),
      `${name}: ratio-to-best-peer lines ${want ? 'carry' : 'carry no'} the alert mark`);
    const items = snap.alertItems.filter((a) => a.run === String(alertRun.id));
    check(snap.alertsShown === want && (items.length > 0) === want, `${name}: the alert list ${want ? 'shows' : 'does not show'} the regression`);
    const link = opts.commitUrl ? opts.commitUrl.replace('{commit}', alertRun.commit) : `api/runs/${alertRun.id}`;
    check(items.every((a) => a.href === link && a.text.includes(alertRun.commit.slice(0, 7))), `${name}: alerts link to the commit (${link})`);
  }
  // Every selection: the marks are exactly the alerts the API reports for it.
  const want = new Set((apiSeries.alerts || []).filter((a) => a.figure === 'median')
    .map((a) => `${seriesLabel(HAKMEM, a.variant)}@${a.index}`));
  const got = new Set(hakmemLines.flatMap((d) => (d.alerts || []).map((m, j) => (m && m.includes('median') ? `${d.label}@${j}` : null)))
    .filter((x) => x));
  check(want.size === got.size && [...want].every((x) => got.has(x)),
    `${name}: alert marks = the API's alerts (${[...want].join(', ') || 'none'}; page ${[...got].join(', ') || 'none'})`);
  check(snap.alertItems.length === (apiSeries.alerts || []).length && snap.alertsShown === snap.alertItems.length > 0,
    `${name}: the alert list has the API's ${(apiSeries.alerts || []).length} alerts`);

  if (exp.params.size > 1) return; // the bars show one params group; skip
  const rows = exp.latestRows;
  const labels = rows.map((r) => seriesLabel(r.allocator, r.variant));
  check(JSON.stringify(snap.barLabels) === JSON.stringify(labels),
    `${name}: bars = hakmem and each peer ${JSON.stringify(labels)} (got ${JSON.stringify(snap.barLabels)})`);
  check(rows.every((r, i) => sameNumber(snap.bars[i], r.median)), `${name}: bar heights = latest medians`);

  const mine = rows.filter((r) => r.allocator === HAKMEM);
  const peers = rows.filter((r) => r.allocator !== HAKMEM);
  const hib = rows[0].higher_is_better;
  const glibc = peers.find((r) => r.allocator === 'glibc');
  let best = null;
  for (const p of peers) if (!best || (hib ? p.median > best.median : p.median < best.median)) best = p;
  for (const h of mine) {
    const hl = seriesLabel(h.allocator, h.variant);
    if (glibc) {
      const card = snap.cards.find((c) => c.kind === 'glibc' && c.hakmem === hl);
      const want = fmtRatio(h.median / glibc.median);
      check(card && card.value === want && /\/ glibc/.test(card.what),
        `${name}: "${hl} / glibc" shows ${want} (got ${card ? card.value : 'nothing'})`);
    }
    if (best) {
      const card = snap.cards.find((c) => c.kind === 'best' && c.hakmem === hl);
      const bl = seriesLabel(best.allocator, best.variant);
      const want = fmtRatio(h.median / best.median);
      check(card && card.value === want && card.peer === bl,
        `${name}: "${hl} / best peer (${bl})" shows ${want} (got ${card ? card.peer + ' ' + card.value : 'nothing'})`);
    }
    for (const p of peers) {
      const pl = seriesLabel(p.allocator, p.variant);
      const row = snap.peerRows.find((x) => x.hakmem === hl && x.peer === pl);
      const want = fmtRatio(h.median / p.median);
      check(row && row.ratio === want, `${name}: table row ${hl} vs ${pl} shows ${want} (got ${row ? row.ratio : 'nothing'})`);
    }
  }
  if (mine.length) {
    const primary = mine[0];
    rows.forEach((r, i) => {
      if (r.allocator === HAKMEM) return;
      const want = fmtRatio(primary.median / r.median);
      const texts = snap.barTexts[i] || [];
      check(texts.includes(want), `${name}: bar of ${labels[i]} is labelled hakmem/peer ${want} (got ${JSON.stringify(texts)})`);
    });
  }
}

async function browserChecks(runs, combos) {
  const profile = opts.profile || fs.mkdtempSync(path.join(opts.out, 'chromium-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: opts.chromium,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
  const problems = [];
  const watch = (page, allowed) => {
    const origin = new URL(allowed.origin).origin;
    page.on('console', (m) => {
      if (m.type() === 'error' && !(allowed.consoleError && allowed.consoleError.test(m.text()))) problems.push(`console error: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => {
      if (allowed.status404 && allowed.status404.test(r.url())) return; // the missing script, on purpose
      problems.push(`request failed: ${r.url()} ${r.failure() ? r.failure().errorText : ''}`);
    });
    page.on('request', (r) => {
      const u = r.url();
      if (!u.startsWith(origin + '/') && !u.startsWith('data:')) problems.push(`request to another origin: ${u}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 400 && !(allowed.status404 && allowed.status404.test(r.url()))) problems.push(`HTTP ${r.status()}: ${r.url()}`);
    });
  };
  try {
    let page = await context.newPage();
    watch(page, { origin: opts.url });
    await page.goto(opts.url, { waitUntil: 'load' });
    await page.waitForFunction(() => window.hakmemDashboard && window.hakmemDashboard.ready, null, { timeout: 20000 });
    const first = await pageSnapshot(page);
    mustHold(!first.errorShown, 'the page shows no error banner');
    check(!first.missingShown, 'the page does not claim Chart.js is missing');
    check(first.canvasPainted, 'all canvases have a size');
    check(await page.evaluate(() => typeof window.Chart === 'function' && window.hakmemDashboard.chartLibrary === true),
      'Chart.js loaded from the local server');

    for (const combo of combos) {
      await selectCombo(page, combo);
      const snap = await pageSnapshot(page);
      const q = new URLSearchParams({ benchmark: combo.benchmark, threads: String(combo.threads), metric: combo.metric, config: combo.config });
      checkCombo(snap, expectedFor(runs, combo), combo, (await request(`api/series?${q}`)).body);
      check(snap.rawRows === expectedFor(runs, combo).latest.results.length, `raw table lists every result of the latest run (${combo.benchmark})`);
      check(snap.summaryRows > 0, `summary table has rows (${combo.benchmark})`);
    }
    log(`${combos.length} selections checked in the page`);

    // The machine filter: the alert runs' machine alone, then a machine with nothing for this config.
    const alertCombo = combos.find((c) => c.config.startsWith('alerts'));
    if (alertCombo) {
      await selectCombo(page, alertCombo, ALERT_HOST);
      const snap = await pageSnapshot(page);
      check(snap.labels.length === 2, `machine filter ${ALERT_HOST}: the 2 alert runs (got ${snap.labels.length})`);
      const options = await page.$$eval('#f-machine option', (os) => os.map((o) => o.value));
      check(JSON.stringify(options) === JSON.stringify(['', ALERT_HOST]), `machine options for the alert config: ${JSON.stringify(options)}`);
      await selectCombo(page, alertCombo, '');
    }

    // The change view of the alert pair's second run, then marking one of its alerts (wrong token first).
    if (alertCombo) {
      await selectCombo(page, alertCombo, ALERT_HOST);
      const [before, after] = runs.filter((r) => r.machine.hostname === ALERT_HOST);
      const hakOf = (run) => run.results.filter((r) => r.allocator === HAKMEM);
      const keyOf = (r) => JSON.stringify([r.benchmark, r.params, r.threads, r.metric, r.variant]);
      const prev = new Map(hakOf(before).map((r) => [keyOf(r), r.median]));
      const alertKeys = new Set([...after.expectedAlerts].map((k) => JSON.stringify(JSON.parse(k).slice(0, 5))));
      const rows = await page.$$eval('#changes-table tbody tr', (trs) => trs.map((tr) => ({
        key: JSON.stringify([tr.dataset.benchmark, null, Number(tr.dataset.threads), tr.dataset.metric, tr.dataset.variant]),
        alerts: Number(tr.dataset.alerts), open: Number(tr.dataset.open), change: tr.children[6].textContent })));
      check(rows.length === hakOf(after).length, `change view: a row per hakmem result of the newest run (${rows.length} of ${hakOf(after).length})`);
      const nAlertRows = rows.filter((r) => r.alerts > 0).length;
      check(nAlertRows === alertKeys.size && rows.slice(0, nAlertRows).every((r) => r.alerts > 0),
        `change view: the ${alertKeys.size} rows with alerts come first (got ${rows.map((r) => r.alerts).join(',')})`);
      const wantChange = (r) => `${r.median / prev.get(keyOf(r)) - 1 > 0 ? '+' : ''}${(100 * (r.median / prev.get(keyOf(r)) - 1)).toFixed(1)}%`;
      const shown = new Map(rows.map((r) => [r.key, r.change]));
      const noParams = (r) => JSON.stringify([r.benchmark, null, r.threads, r.metric, r.variant]);
      check(hakOf(after).every((r) => shown.get(noParams(r)) === wantChange(r)), 'change view: every change as pushed (-50.0% or +0.0%...)');
      const variants = [...new Set(hakOf(after).map((r) => r.variant))].sort();
      const geo = await page.$$eval('#changes-geomean span', (ss) => ss.map((s) => [s.dataset.variant, Number(s.dataset.better)]));
      const wantGeo = variants.map((v) => {
        const logs = hakOf(after).filter((r) => r.variant === v).map((r) => Math.log(r.higher_is_better ? r.median / prev.get(keyOf(r)) : prev.get(keyOf(r)) / r.median));
        return [v, Math.exp(logs.reduce((x, y) => x + y, 0) / logs.length)];
      });
      check(geo.length === wantGeo.length && geo.every(([v, g], i) => v === wantGeo[i][0] && Math.abs(g - wantGeo[i][1]) < 1e-9),
        `change view: geometric mean per variant ${JSON.stringify(wantGeo)} (got ${JSON.stringify(geo)})`);

      const runId = (await request('api/runs')).body.runs.find((r) => r.commit === after.commit).id;
      const marks = async () => (await request(`api/runs/${runId}/alerts`)).body.alerts.map((a) => (a.triage ? a.triage.status : null));
      const tp = await context.newPage();
      // The wrong token's 403 is on purpose on this page.
      watch(tp, { origin: opts.url, consoleError: /status of 403/, status404: /\/api\/runs\/\d+\/triage$/ });
      await tp.goto(opts.url, { waitUntil: 'load' });
      await tp.waitForFunction(() => window.hakmemDashboard && window.hakmemDashboard.ready, null, { timeout: 20000 });
      await selectCombo(tp, alertCombo, ALERT_HOST);
      const target = await tp.$eval('#changes-table tbody tr:first-child', (tr) => JSON.stringify([tr.dataset.benchmark, tr.dataset.threads, tr.dataset.metric, tr.dataset.variant]));
      const button = '#changes-table tbody tr:first-child .alert-item:first-child button[data-status="accepted"]';
      await tp.fill('#triage-token', 'x'.repeat(24));
      await tp.click(button);
      await tp.waitForFunction(() => /HTTP 403/.test(document.getElementById('triage-status').textContent), null, { timeout: 10000 });
      check((await marks()).every((m) => m === null), 'a wrong token marks nothing');
      await tp.fill('#triage-token', TOKEN);
      await tp.click(button);
      await tp.waitForFunction(() => window.hakmemDashboard.triageCount === 1, null, { timeout: 10000 });
      const stored = await marks();
      check(stored.filter((m) => m === 'accepted').length === 1 && stored.filter((m) => m !== null).length === 1,
        `exactly one alert accepted in the database (got ${JSON.stringify(stored)})`);
      // The marked row now sorts after the rows whose alerts are all open.
      const after2 = await tp.$$eval('#changes-table tbody tr', (trs, key) => trs.map((tr) => ({
        mine: JSON.stringify([tr.dataset.benchmark, tr.dataset.threads, tr.dataset.metric, tr.dataset.variant]) === key,
        open: Number(tr.dataset.open), alerts: Number(tr.dataset.alerts),
        status: tr.querySelector('.alert-item') ? tr.querySelector('.alert-item').dataset.status : null })), target);
      const mine = after2.find((r) => r.mine);
      check(mine && mine.status === 'accepted' && mine.open === mine.alerts - 1, `the row shows the mark (${JSON.stringify(mine)})`);
      const opens = after2.map((r) => r.open);
      check(opens.every((o, i) => i === 0 || opens[i - 1] >= o), `rows with more open alerts come first (${opens.join(',')})`);
      await tp.close();
      log('change view and triage checked in the page');
    }

    // Machines and range: six runs alternating between two machines, in a configuration of their own.
    {
      const base = runs[0];
      const first = base.results[0];
      const same = (r) => r.benchmark === first.benchmark && r.threads === first.threads && r.metric === first.metric;
      const hosts = ['e2e-mach-a', 'e2e-mach-b'];
      const made = [];
      for (let i = 0; i < 6; i += 1) {
        const f = 1 + i / 10;  // every figure of run i scaled alike keeps min <= median <= max
        const scale = (v) => (typeof v === 'number' ? v * f : v);
        const r = clone(base);
        r.commit = `${i}e2e0000`;  // distinct short shas (the x labels)
        r.commit_time = r.time = `2024-02-0${i + 1}T00:00:00Z`;
        r.machine = { ...r.machine, hostname: hosts[i % 2] };
        r.config = { ...r.config, mode: 'machines', build: 'release' };
        r.results = base.results.filter(same).map((x) => ({ ...x, median: scale(x.median), min: scale(x.min), max: scale(x.max),
          values: Array.isArray(x.values) ? x.values.map(scale) : x.values }));
        const res = await push(JSON.stringify(r));
        mustHold(res.status === 201, `machine run ${i} pushed (got ${res.status}: ${res.text.slice(0, 200)})`);
        r.id = res.body.id;
        made.push(r);
      }
      const config = 'machines/release';
      const q = new URLSearchParams({ benchmark: first.benchmark, threads: String(first.threads), config, metric: first.metric });
      const settled = async (p, machine) => p.waitForFunction((k) => window.hakmemDashboard.renderedKey === k && !window.hakmemDashboard.loading,
        JSON.stringify([first.benchmark, first.threads, config, first.metric, machine]), { timeout: 15000 });
      const mp = await context.newPage();
      watch(mp, { origin: opts.url });
      await mp.goto(`${opts.url}#${q}`, { waitUntil: 'load' });
      await settled(mp, hosts[1]);
      check(await mp.inputValue('#f-machine') === hosts[1], `default machine is the newest run's (${hosts[1]})`);
      const hak = base.results.find((x) => same(x) && x.allocator === HAKMEM);
      const hakLabel = seriesLabel(HAKMEM, hak.variant);
      const medianOf = (run) => run.results.find((x) => x.allocator === HAKMEM && x.variant === hak.variant).median;
      const short = (run) => run.commit.slice(0, 7);
      let snap = await pageSnapshot(mp);
      const bRuns = made.filter((r, i) => i % 2 === 1);
      check(JSON.stringify(snap.labels) === JSON.stringify(bRuns.map(short)),
        `one machine: its 3 runs only (got ${JSON.stringify(snap.labels)})`);
      let line = snap.tp.find((d) => d.label === hakLabel);
      check(line && line.data.every((v, i) => sameNumber(v, medianOf(bRuns[i]))), `one machine: ${hakLabel} holds its medians`);

      await mp.selectOption('#f-machine', '');
      await settled(mp, '');
      snap = await pageSnapshot(mp);
      check(snap.labels.length === 6, `all machines: 6 runs on the x axis (got ${snap.labels.length})`);
      for (const [h, host] of hosts.entries()) {
        line = snap.tp.find((d) => d.label === `${hakLabel} [${host}]`);
        const ok = line && line.data.every((v, i) => (i % 2 === h ? sameNumber(v, medianOf(made[i])) : v === null));
        check(ok, `all machines: a line of its own for ${host}, only at its runs (got ${line ? JSON.stringify(line.data) : 'no line'})`);
      }
      check(!snap.tp.some((d) => d.label === hakLabel), 'all machines: no line joins the two machines');

      const rangeIs = (p, lo, hi) => p.waitForFunction((k) => window.hakmemDashboard.rangeKey === k, JSON.stringify([lo, hi, 6]), { timeout: 15000 });
      await mp.selectOption('#r-last', '5');
      await rangeIs(mp, 1, 5);
      snap = await pageSnapshot(mp);
      check(JSON.stringify(snap.labels) === JSON.stringify(made.slice(1).map(short)), `last 5 runs (got ${JSON.stringify(snap.labels)})`);
      await mp.selectOption('#r-last', '0');
      await mp.selectOption('#r-from', String(made[1].id));
      await mp.selectOption('#r-to', String(made[3].id));
      await rangeIs(mp, 1, 3);
      snap = await pageSnapshot(mp);
      check(JSON.stringify(snap.labels) === JSON.stringify(made.slice(1, 4).map(short)), `commit range ${short(made[1])}..${short(made[3])} (got ${JSON.stringify(snap.labels)})`);
      line = snap.tp.find((d) => d.label === `${hakLabel} [${hosts[0]}]`);
      check(line && line.data.length === 3 && line.data[0] === null && sameNumber(line.data[1], medianOf(made[2])) && line.data[2] === null,
        `commit range: ${hosts[0]}'s point is the run inside the range`);
      const hash = await mp.evaluate(() => window.location.hash);
      check(/[#&]from=\d+/.test(hash) && /&to=\d+/.test(hash) && /machine=(&|$)/.test(hash), `range and machines kept in the URL (${hash})`);
      await mp.reload({ waitUntil: 'load' });
      await settled(mp, '');
      await rangeIs(mp, 1, 3);
      check(true, 'a reloaded link shows the same range');
      await mp.click('#r-reset');
      await rangeIs(mp, 0, 5);
      await mp.close();
      log('machines and range checked in the page');
    }

    // Sorting the raw table by median.
    await page.click('#raw-table th[data-key="median"]');
    const medians = await page.$$eval('#raw-table tbody tr td:nth-child(7)', (tds) => tds.map((td) => Number(td.textContent.replace(/,/g, ''))));
    check(medians.every((v, i) => i === 0 || medians[i - 1] <= v), 'raw table sorts by median');

    // A fresh page shows the default view (what a visitor sees first): the screenshot.
    await page.close();
    page = await context.newPage();
    watch(page, { origin: opts.url });
    await page.goto(opts.url, { waitUntil: 'load' });
    await page.waitForFunction(() => window.hakmemDashboard && window.hakmemDashboard.ready &&
      !window.hakmemDashboard.loading, null, { timeout: 20000 });
    const shot = path.join(opts.out, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    log(`screenshot: ${shot}`);

    const micro = combos.find((c) => c.metric === 'ns_per_op');
    if (micro) {
      await selectCombo(page, micro);
      await page.screenshot({ path: path.join(opts.out, 'dashboard_ns_per_op.png'), fullPage: false });
    }
    await page.close();

    if (opts.nolibUrl) {
      const nolib = await context.newPage();
      watch(nolib, { origin: opts.nolibUrl, consoleError: /Failed to load resource.*404/, status404: /\/vendor\/chart\.umd\.js$/ });
      await nolib.goto(opts.nolibUrl, { waitUntil: 'load' });
      await nolib.waitForFunction(() => window.hakmemDashboard && window.hakmemDashboard.ready, null, { timeout: 20000 });
      const s = await pageSnapshot(nolib);
      const text = await nolib.textContent('#chart-missing');
      check(s.missingShown && /npm ci --prefix dashboards/.test(text) && /tools\/setup\.sh/.test(text),
        'without Chart.js the page says so and how to install it');
      check(s.rawRows > 0 && s.cards.length > 0, 'without Chart.js the tables and ratios still show');
      await nolib.screenshot({ path: path.join(opts.out, 'dashboard_no_chartjs.png'), fullPage: false });
      await nolib.close();
    }
  } finally {
    await context.close();
  }
  check(problems.length === 0, `no console errors, page errors or failed requests${problems.length ? ':\n  ' + problems.join('\n  ') : ''}`);
}

// -------------------------------------------------------------------- main

async function main() {
  fs.mkdirSync(opts.out, { recursive: true });
  const runs = loadRuns(opts.runs);
  const combos = await apiChecks(runs);
  await browserChecks(runs, combos);
}

try {
  await main();
} catch (e) {
  failures.push(String(e && e.stack ? e.stack : e));
  console.log(`ERROR: ${e && e.stack ? e.stack : e}`);
}
console.log(`dashboard e2e: ${passed} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
