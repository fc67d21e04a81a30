// hakmem performance dashboard: plain JavaScript, no build step.
//
// Reads the JSON API of dashboards/server.py and draws with Chart.js (global
// `Chart`, served at vendor/chart.umd.js). For tests and for poking around in
// the console it exposes:
//   window.hakmemCharts    = {throughput, rss, ratio, rssRatio, bars}   Chart.js instances;
//                            a hakmem dataset's hakmemAlerts[i] lists the regression
//                            alerts marked at commit i (null where there is none)
//   window.hakmemDashboard = state: selection, last API answers, ready flag,
//                            renderedKey (selection of the last finished render),
//                            range / rangeKey (the runs shown: [first, last, of] indexes)
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);

  const state = {
    ready: false,
    loading: false,
    renderCount: 0,
    renderedKey: '',
    chartLibrary: typeof window.Chart !== 'undefined',
    error: null,
    benchmarks: [],
    runs: [],
    // machine: a hostname, '' for every machine (a line each), null until settled (the newest run's).
    selection: { benchmark: null, threads: null, config: null, metric: null, machine: null },
    range: { last: 0, from: '', to: '' },
    rangeKey: '',
    commitUrl: '',
    series: null,
    seriesFull: null,
    latest: null,
    sort: { key: null, dir: 1 },
  };
  const charts = { throughput: null, rss: null, ratio: null, rssRatio: null, bars: null };
  window.hakmemDashboard = state;
  window.hakmemCharts = charts;

  const HAKMEM = 'hakmem';
  const PEER_COLORS = { glibc: '#868e96', mimalloc: '#1c7ed6', jemalloc: '#2f9e44', tcmalloc: '#7048e8' };
  const HAKMEM_COLORS = ['#e8590c', '#c2255c', '#f59f00', '#9c36b5', '#d9480f'];
  const OTHER_COLORS = ['#0c8599', '#5c940d', '#364fc7', '#a61e4d', '#495057', '#e67700'];
  const ALERT_COLOR = '#e03131';
  const FIGURE_NAMES = { median: null, peak_rss_kb: 'peak RSS', vs_best_peer: 'ratio to best peer' };
  const colorByLabel = new Map();
  let hakmemColorNext = 0;
  let otherColorNext = 0;

  // ---------------------------------------------------------------- helpers

  function colorFor(allocator, label) {
    if (colorByLabel.has(label)) return colorByLabel.get(label);
    let color;
    if (allocator === HAKMEM) color = HAKMEM_COLORS[hakmemColorNext++ % HAKMEM_COLORS.length];
    else if (PEER_COLORS[allocator] && ![...colorByLabel.values()].includes(PEER_COLORS[allocator])) {
      color = PEER_COLORS[allocator];
    } else color = OTHER_COLORS[otherColorNext++ % OTHER_COLORS.length];
    colorByLabel.set(label, color);
    return color;
  }

  function seriesLabel(allocator, variant) {
    return variant ? `${allocator} (${variant})` : allocator;
  }

  function fmtSI(v) {
    if (v === null || v === undefined || !Number.isFinite(v)) return '–';
    const a = Math.abs(v);
    const units = [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
    const digits = (x) => (x >= 100 ? 0 : x >= 10 ? 1 : 2);
    if (v === 0) return '0';
    for (const [scale, suffix] of units) {
      if (a >= scale) return (v / scale).toFixed(digits(a / scale)) + suffix;
    }
    return v.toFixed(digits(a));
  }

  function fmtKB(kb) {
    if (kb === null || kb === undefined || !Number.isFinite(kb)) return '–';
    if (kb >= 1024 * 1024) return (kb / 1024 / 1024).toFixed(2) + ' GiB';
    if (kb >= 1024) return (kb / 1024).toFixed(kb >= 100 * 1024 ? 0 : 1) + ' MiB';
    return kb.toFixed(0) + ' KiB';
  }

  function fmtRaw(v) {
    if (v === null || v === undefined || v === '') return '–';
    if (typeof v !== 'number') return String(v);
    return v.toLocaleString('en-US', { maximumFractionDigits: 2 });
  }

  // The one ratio format of the page (the e2e test formats the same way).
  function fmtRatio(r) {
    return r === null || r === undefined || !Number.isFinite(r) ? '–' : r.toFixed(2) + '×';
  }

  function verdict(cmp, metric) {
    if (!cmp || cmp.ratio === null || cmp.ratio === undefined) return { text: 'n/a', cls: '' };
    if (Math.abs(cmp.ratio - 1) < 0.005) return { text: 'on par', cls: '' };
    const speed = metric === 'ops_per_sec' || metric === 'ns_per_op';
    const words = speed ? ['faster', 'slower'] : ['better', 'worse'];
    return cmp.better ? { text: `▲ hakmem ${words[0]}`, cls: 'better' }
      : { text: `▼ hakmem ${words[1]}`, cls: 'worse' };
  }

  function metricInfo(metric, unit, higherIsBetter) {
    const names = { ops_per_sec: 'Throughput', ns_per_op: 'Time per operation' };
    return {
      title: names[metric] || metric,
      axis: unit || metric,
      hint: `${metric}${unit ? ' in ' + unit : ''}; ${higherIsBetter ? 'higher' : 'lower'} is better. ` +
        'One line per allocator (and hakmem variant), median of the rounds; x = commit in commit order.',
    };
  }

  function shortTime(iso) {
    return iso ? iso.replace('T', ' ').replace(/(\.\d+)?Z$/, '') : '–';
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k.startsWith('data-')) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  async function api(path) {
    const response = await fetch(path, { headers: { Accept: 'application/json' } });
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      throw new Error(`${path}: HTTP ${response.status}${body && body.error ? ' — ' + body.error : ''}`);
    }
    return body;
  }

  function showError(message) {
    state.error = message;
    const box = $('error');
    box.textContent = message;
    box.hidden = false;
  }

  // -------------------------------------------------------------- selection

  const unique = (xs) => [...new Set(xs)];
  const rowsFor = (f) => state.benchmarks.filter(f);

  function optionsFor(sel) {
    const b = state.benchmarks;
    const benchmarks = unique(b.map((r) => r.benchmark)).sort();
    const configs = unique(rowsFor((r) => r.benchmark === sel.benchmark).map((r) => r.config)).sort();
    const threads = unique(rowsFor((r) => r.benchmark === sel.benchmark && r.config === sel.config)
      .map((r) => r.threads)).sort((x, y) => x - y);
    const metrics = unique(rowsFor((r) => r.benchmark === sel.benchmark && r.config === sel.config &&
      r.threads === sel.threads).map((r) => r.metric)).sort();
    const machines = [''].concat(unique(rowsFor((r) => r.benchmark === sel.benchmark && r.config === sel.config)
      .map((r) => r.machine)).sort());
    return { benchmarks, configs, threads, metrics, machines };
  }

  // Makes every part of the selection valid, keeping what still is.
  function settle(sel, preferLatestConfig) {
    const out = { ...sel };
    let o = optionsFor(out);
    if (!o.benchmarks.includes(out.benchmark)) {
      out.benchmark = o.benchmarks.includes('larson') ? 'larson' : o.benchmarks[0];
    }
    o = optionsFor(out);
    if (!o.configs.includes(out.config)) {
      const latest = preferLatestConfig && state.runs.length ? state.runs[0].config : null;
      out.config = o.configs.includes(latest) ? latest : o.configs[0];
    }
    o = optionsFor(out);
    if (!o.threads.includes(out.threads)) out.threads = o.threads[o.threads.length - 1];
    o = optionsFor(out);
    if (!o.metrics.includes(out.metric)) out.metric = o.metrics[0];
    if (out.machine === null || !o.machines.includes(out.machine)) {
      // Runs of two machines are not comparable: by default show the machine of the newest run.
      const newest = state.runs.find((r) => r.config === out.config && o.machines.includes(r.hostname));
      out.machine = newest ? newest.hostname : (o.machines[1] || '');
    }
    return out;
  }

  function fillSelect(select, values, current, grouped) {
    select.textContent = '';
    if (grouped) {
      const groups = new Map();
      for (const v of values) {
        const cut = String(v).indexOf('/');
        const g = cut > 0 ? String(v).slice(0, cut) : '';
        if (!groups.has(g)) groups.set(g, []);
        groups.get(g).push(v);
      }
      for (const [g, vs] of groups) {
        const parent = g ? el('optgroup', { label: g }) : select;
        for (const v of vs) parent.append(el('option', { value: String(v), text: String(v) }));
        if (g) select.append(parent);
      }
    } else {
      for (const v of values) select.append(el('option', { value: String(v), text: String(v) }));
    }
    select.value = current === null || current === undefined ? '' : String(current);
  }

  function syncSelects() {
    const s = state.selection;
    const o = optionsFor(s);
    fillSelect($('f-benchmark'), o.benchmarks, s.benchmark, true);
    fillSelect($('f-config'), o.configs, s.config);
    fillSelect($('f-threads'), o.threads, s.threads);
    fillSelect($('f-metric'), o.metrics, s.metric);
    const machine = $('f-machine');
    machine.textContent = '';
    for (const m of o.machines) machine.append(el('option', { value: m, text: m || 'all machines (a line each)' }));
    machine.value = s.machine || '';
  }

  function selectionKey(s) {
    return JSON.stringify([s.benchmark, s.threads, s.config, s.metric, s.machine || '']);
  }

  function readHash() {
    const p = new URLSearchParams(window.location.hash.replace(/^#/, ''));
    const threads = p.get('threads');
    return {
      benchmark: p.get('benchmark'),
      threads: threads === null ? null : Number(threads),
      config: p.get('config'),
      metric: p.get('metric'),
      machine: p.has('machine') ? p.get('machine') : null,
    };
  }

  function readRange() {
    const p = new URLSearchParams(window.location.hash.replace(/^#/, ''));
    const last = Number(p.get('last') || 0);
    return { last: Number.isInteger(last) && last > 0 ? last : 0, from: p.get('from') || '', to: p.get('to') || '' };
  }

  function writeHash() {
    const s = state.selection;
    const p = new URLSearchParams();
    for (const k of ['benchmark', 'threads', 'config', 'metric']) if (s[k] !== null && s[k] !== undefined && s[k] !== '') p.set(k, s[k]);
    p.set('machine', s.machine || '');  // present even when empty: '' is "all machines", absent is the default
    const r = state.range;
    if (r.last) p.set('last', String(r.last));
    if (r.from) p.set('from', r.from);
    if (r.to) p.set('to', r.to);
    const hash = '#' + p.toString();
    if (window.location.hash !== hash) history.replaceState(null, '', hash);
  }

  function select(partial) {
    state.selection = settle({ ...state.selection, ...partial }, false);
    syncSelects();
    writeHash();
    render();
  }

  // ------------------------------------------------------------------ range

  // [lo, hi] indexes of the runs to show: from/to commit (run ids), then at most the last N of them.
  function rangeOf(full) {
    const n = full.runs.length;
    const r = state.range;
    let lo = 0;
    let hi = n - 1;
    const fi = r.from ? full.runs.findIndex((x) => String(x.id) === r.from) : -1;
    const ti = r.to ? full.runs.findIndex((x) => String(x.id) === r.to) : -1;
    if (fi >= 0) lo = fi;
    if (ti >= 0) hi = ti;
    if (lo > hi) [lo, hi] = [hi, lo];
    if (r.last > 0) lo = Math.max(lo, hi - r.last + 1);
    return [lo, hi];
  }

  // The series answer cut to runs lo..hi, indexes renumbered from 0.
  function sliceSeries(full, lo, hi) {
    const inside = (i) => i >= lo && i <= hi;
    const cut = (points) => points.filter((p) => inside(p.index)).map((p) => ({ ...p, index: p.index - lo }));
    return {
      ...full,
      runs: full.runs.slice(lo, hi + 1),
      series: full.series.map((x) => ({ ...x, points: cut(x.points) })),
      ratios: (full.ratios || []).map((x) => ({ ...x, points: cut(x.points) })),
      alerts: cut(full.alerts || []),
    };
  }

  function syncRange(full) {
    $('r-last').value = String(state.range.last);
    if (![...$('r-last').options].some((o) => o.value === String(state.range.last))) {
      $('r-last').append(el('option', { value: String(state.range.last), text: `last ${state.range.last}` }));
      $('r-last').value = String(state.range.last);
    }
    for (const [id, first] of [['r-from', 'oldest'], ['r-to', 'newest']]) {
      const sel = $(id);
      sel.textContent = '';
      sel.append(el('option', { value: '', text: first }));
      for (const run of full.runs) sel.append(el('option', { value: String(run.id), text: `${run.label} · ${shortTime(run.time).slice(0, 10)}` }));
      const want = id === 'r-from' ? state.range.from : state.range.to;
      sel.value = full.runs.some((run) => String(run.id) === want) ? want : '';
    }
  }

  // Draws the part of the last series answer that the range picks.
  function drawRange() {
    const full = state.seriesFull;
    if (!full) return;
    syncRange(full);
    const [lo, hi] = full.runs.length ? rangeOf(full) : [0, -1];
    const series = sliceSeries(full, lo, hi);
    state.series = series;
    drawTrends(series);
    drawAlerts(series);
    state.rangeKey = JSON.stringify([lo, hi, full.runs.length]);
    document.body.dataset.range = state.rangeKey;
  }

  function setRange(partial) {
    state.range = { ...state.range, ...partial };
    writeHash();
    drawRange();
  }

  // ----------------------------------------------------------------- charts

  function baseLineOptions(yTitle, tickFormat) {
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: 'index', intersect: false },
      spanGaps: true,
      scales: {
        x: { title: { display: true, text: 'commit (oldest → newest)' }, ticks: { font: { family: 'monospace' } } },
        y: { title: { display: true, text: yTitle }, grace: '5%', ticks: { callback: tickFormat } },
      },
      plugins: {
        legend: { position: 'bottom', labels: { usePointStyle: true, boxWidth: 8 } },
        tooltip: {
          callbacks: {
            title: (items) => {
              const run = state.series && state.series.runs[items[0].dataIndex];
              return run ? `${run.label}  ${run.subject || ''}` : '';
            },
            afterTitle: (items) => {
              const run = state.series && state.series.runs[items[0].dataIndex];
              return run ? `run #${run.id} · ${shortTime(run.time)} UTC · ${run.hostname}` : '';
            },
          },
        },
      },
    };
  }

  function ensureCharts() {
    if (!state.chartLibrary || charts.throughput) return;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = '#5f6b7a';
    Chart.defaults.borderColor = '#e9ecef';

    const tp = baseLineOptions('', (v) => fmtSI(v));
    tp.plugins.tooltip.callbacks.label = (item) => {
      const pt = item.dataset.hakmemPoints[item.dataIndex];
      if (!pt) return `${item.dataset.label}: –`;
      const unit = state.series ? state.series.unit : '';
      const spread = pt.min !== null && pt.max !== null ? ` (min ${fmtSI(pt.min)}, max ${fmtSI(pt.max)})` : '';
      return `${item.dataset.label}: ${fmtSI(pt.median)} ${unit}${spread}`;
    };
    charts.throughput = new Chart($('chart-throughput'), { type: 'line', data: { labels: [], datasets: [] }, options: tp });

    tp.plugins.tooltip.callbacks.footer = alertFooter;
    tp.onClick = openAlertCommit;
    const rss = baseLineOptions('peak RSS', (v) => fmtKB(v));
    rss.plugins.tooltip.callbacks.label = (item) => `${item.dataset.label}: ${fmtKB(item.raw)}`;
    rss.plugins.tooltip.callbacks.footer = alertFooter;
    rss.onClick = openAlertCommit;
    charts.rss = new Chart($('chart-rss'), { type: 'line', data: { labels: [], datasets: [] }, options: rss });

    for (const [key, canvas, title] of [['ratio', 'chart-ratio', 'hakmem / peer'], ['rssRatio', 'chart-rss-ratio', 'hakmem RSS / peer RSS']]) {
      const o = baseLineOptions(title, (v) => fmtRatio(v));
      o.plugins.tooltip.callbacks.label = (item) => {
        const pt = item.dataset.hakmemPoints[item.dataIndex];
        return pt ? `${item.dataset.label}: ${fmtRatio(pt.ratio)} (${pt.peer})` : `${item.dataset.label}: –`;
      };
      o.plugins.tooltip.callbacks.footer = alertFooter;
      o.onClick = openAlertCommit;
      charts[key] = new Chart($(canvas), { type: 'line', data: { labels: [], datasets: [] }, options: o });
    }

    charts.bars = new Chart($('chart-bars'), {
      type: 'bar',
      data: { labels: [], datasets: [] },
      plugins: [barLabelsPlugin],
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        layout: { padding: { top: 34 } },
        scales: { y: { beginAtZero: true, title: { display: true, text: '' }, ticks: { callback: (v) => fmtSI(v) } } },
        plugins: {
          legend: { display: false },
          hakmemBarLabels: { lines: [] },
          tooltip: {
            callbacks: {
              label: (item) => {
                const lines = item.chart.options.plugins.hakmemBarLabels.lines[item.dataIndex] || [];
                return [`${fmtSI(item.raw)} ${state.barUnit || ''}`, ...lines.slice(1).map((l) => l.text)];
              },
            },
          },
        },
      },
    });
  }

  // Draws the value and, above each peer bar, hakmem / peer.
  const barLabelsPlugin = {
    id: 'hakmemBarLabels',
    afterDatasetsDraw(chart, args, opts) {
      const meta = chart.getDatasetMeta(0);
      if (!meta || !meta.data) return;
      const ctx = chart.ctx;
      ctx.save();
      ctx.textAlign = 'center';
      ctx.textBaseline = 'bottom';
      meta.data.forEach((bar, i) => {
        const lines = (opts.lines || [])[i] || [];
        let y = bar.y - 4;
        for (const line of lines) {
          ctx.font = `${line.bold ? '600 ' : ''}${line.size || 11}px ${Chart.defaults.font.family}`;
          ctx.fillStyle = line.color || '#5f6b7a';
          ctx.fillText(line.text, bar.x, y);
          y -= (line.size || 11) + 3;
        }
      });
      ctx.restore();
    },
  };

  function lineDataset(s, data, kind) {
    const color = colorFor(s.allocator, seriesLabel(s.allocator, s.variant));
    const mine = s.allocator === HAKMEM;
    return {
      label: s.label,
      data,
      borderColor: color,
      backgroundColor: color,
      borderWidth: mine ? 3 : 2,
      borderDash: s.allocator === 'glibc' ? [6, 4] : [],
      pointRadius: mine ? 4 : 3,
      pointHoverRadius: 6,
      tension: 0.15,
      hakmemKind: kind,
      hakmemAllocator: s.allocator,
      hakmemVariant: s.variant,
    };
  }

  function commitHref(commit, runId) {
    if (state.commitUrl) return state.commitUrl.split('{commit}').join(encodeURIComponent(commit));
    return `api/runs/${runId}`;
  }

  function describeAlert(a) {
    const what = FIGURE_NAMES[a.figure] || a.metric;
    const fmt = a.figure === 'vs_best_peer' ? fmtRatio : a.figure === 'peak_rss_kb' ? fmtKB : fmtSI;
    return `${a.label} ${what}: ${fmt(a.previous)} → ${fmt(a.current)} ` +
      `(${a.change > 0 ? '+' : ''}${(100 * a.change).toFixed(1)}%, noise ${(100 * a.threshold).toFixed(1)}%)`;
  }

  // A click on an alert mark opens its commit.
  function openAlertCommit(event, elements, chart) {
    for (const e of elements) {
      const marks = chart.data.datasets[e.datasetIndex].hakmemAlerts;
      if (marks && marks[e.index]) {
        window.open(commitHref(marks[e.index][0].commit, marks[e.index][0].run_id), '_blank', 'noopener');
        return;
      }
    }
  }

  function alertFooter(items) {
    const out = [];
    for (const item of items) {
      const marks = item.dataset.hakmemAlerts;
      for (const a of (marks && marks[item.dataIndex]) || []) out.push(`▲ regression: ${describeAlert(a)}`);
    }
    return out;
  }

  // Marks the points of a hakmem line where an alert fired: a big red triangle.
  function markAlerts(dataset, alerts, n) {
    const marks = new Array(n).fill(null);
    for (const a of alerts) (marks[a.index] = marks[a.index] || []).push(a);
    const base = dataset.pointRadius;
    const color = dataset.borderColor;
    dataset.hakmemAlerts = marks;
    dataset.pointStyle = marks.map((m) => (m ? 'triangle' : 'circle'));
    dataset.pointRadius = marks.map((m) => (m ? 9 : base));
    dataset.pointHoverRadius = marks.map((m) => (m ? 11 : 6));
    dataset.pointBackgroundColor = marks.map((m) => (m ? ALERT_COLOR : color));
    dataset.pointBorderColor = marks.map((m) => (m ? ALERT_COLOR : color));
  }

  const sameLine = (a, s) => a.variant === s.variant && a.threads === s.threads && a.metric === s.metric && a.params === s.params;

  function ratioDataset(line, n) {
    const data = new Array(n).fill(null);
    const pts = new Array(n).fill(null);
    for (const p of line.points) {
      data[p.index] = p.ratio;
      pts[p.index] = p;
    }
    const color = colorFor(HAKMEM, seriesLabel(HAKMEM, line.variant));
    return {
      label: line.label,
      data,
      borderColor: color,
      backgroundColor: color,
      borderWidth: line.kind === 'best' ? 3 : 2,
      borderDash: line.kind === 'glibc' ? [6, 4] : [],
      pointRadius: 4,
      pointHoverRadius: 6,
      tension: 0.15,
      hakmemPoints: pts,
      hakmemKind: line.kind,
      hakmemVariant: line.variant,
    };
  }

  function drawAlerts(series) {
    const list = $('alerts-list');
    list.textContent = '';
    const alerts = series.alerts || [];
    $('alerts-section').hidden = alerts.length === 0;
    for (const a of alerts) {
      const run = series.runs[a.index];
      list.append(el('li', { 'data-run': String(a.run_id), 'data-figure': a.figure, 'data-variant': a.variant },
        el('a', { class: 'commit', href: commitHref(a.commit, a.run_id), text: a.commit.slice(0, 7), target: '_blank', rel: 'noopener' }),
        ` ${run ? '“' + run.subject + '” ' : ''}· ${a.benchmark} ${a.threads}T · ${a.label} ${FIGURE_NAMES[a.figure] || a.metric}: `,
        el('span', { class: 'change', text: describeAlert(a).replace(/^.*?: /, '') }),
        ' against ',
        el('a', { href: commitHref(a.previous_commit, a.previous_run_id), text: a.previous_commit.slice(0, 7), target: '_blank', rel: 'noopener' })));
    }
  }

  function drawTrends(series) {
    const info = metricInfo(series.metric, series.unit, series.higher_is_better);
    $('throughput-title').textContent = `${info.title} across commits`;
    $('throughput-hint').textContent = info.hint;
    if (!state.chartLibrary) return;
    const labels = series.runs.map((r) => r.label);
    const medians = [];
    const rss = [];
    for (const s of series.series) {
      const m = new Array(labels.length).fill(null);
      const r = new Array(labels.length).fill(null);
      const pts = new Array(labels.length).fill(null);
      for (const p of s.points) {
        m[p.index] = p.median;
        r[p.index] = p.peak_rss_kb;
        pts[p.index] = p;
      }
      const d = lineDataset(s, m, 'median');
      d.hakmemPoints = pts;
      const dr = lineDataset(s, r, 'peak_rss_kb');
      if (s.allocator === HAKMEM) {
        const mine = (series.alerts || []).filter((a) => sameLine(a, s));
        markAlerts(d, mine.filter((a) => a.figure === 'median'), labels.length);
        markAlerts(dr, mine.filter((a) => a.figure === 'peak_rss_kb'), labels.length);
      }
      medians.push(d);
      rss.push(dr);
    }
    const ratios = [];
    const rssRatios = [];
    for (const line of series.ratios || []) {
      const d = ratioDataset(line, labels.length);
      if (line.figure === 'median') {
        markAlerts(d, line.kind === 'best'
          ? (series.alerts || []).filter((a) => a.figure === 'vs_best_peer' && sameLine(a, line)) : [], labels.length);
        ratios.push(d);
      } else rssRatios.push(d);
    }
    charts.ratio.data.labels = labels.slice();
    charts.ratio.data.datasets = ratios;
    charts.ratio.update('none');
    charts.rssRatio.data.labels = labels.slice();
    charts.rssRatio.data.datasets = rssRatios;
    charts.rssRatio.update('none');
    charts.throughput.data.labels = labels;
    charts.throughput.data.datasets = medians;
    charts.throughput.options.scales.y.title.text = `${info.axis} (${series.higher_is_better ? 'higher' : 'lower'} is better)`;
    charts.throughput.update('none');
    charts.rss.data.labels = labels.slice();
    charts.rss.data.datasets = rss;
    charts.rss.update('none');
  }

  // ------------------------------------------------------------ latest run

  function findComparison(latest, sel) {
    return (latest.comparisons || []).find((c) => c.benchmark === sel.benchmark && c.threads === sel.threads &&
      c.metric === sel.metric) || null;
  }

  function drawLatest(latest, sel) {
    const cmp = latest.run ? findComparison(latest, sel) : null;
    const run = latest.run;
    $('latest-info').textContent = run
      ? `Run #${run.id}: ${run.commit.slice(0, 7)} “${run.commit_subject}” · ${shortTime(run.time)} UTC · ` +
        `${run.machine.hostname} · ${sel.benchmark}, ${sel.threads} thread${sel.threads === 1 ? '' : 's'}` +
        (cmp && cmp.params ? `, params “${cmp.params}”` : '')
      : 'No run for this selection.';
    const cards = $('ratio-cards');
    cards.textContent = '';
    const tbody = $('peer-table').querySelector('tbody');
    tbody.textContent = '';
    state.barUnit = cmp ? cmp.unit : '';

    if (!cmp) {
      $('ratio-hint').textContent = 'No data.';
    } else {
      const primary = cmp.hakmem[0];
      $('ratio-hint').textContent = cmp.hakmem.length
        ? `Ratios are hakmem value / peer value for ${cmp.metric} (${cmp.higher_is_better ? 'higher' : 'lower'} is better).` +
          (cmp.hakmem.length > 1 ? ` Numbers above the bars use ${primary.label}.` : '')
        : 'No hakmem result in this run for this benchmark.';
      for (const h of cmp.hakmem) {
        for (const [kind, c, what] of [['glibc', h.vs_glibc, 'glibc'], ['best', h.vs_best_peer, 'best peer']]) {
          if (!c) continue;
          const v = verdict(c, cmp.metric);
          cards.append(el('div', {
            class: `ratio-card ${v.cls}`, 'data-kind': kind, 'data-hakmem': h.label, 'data-peer': c.peer,
            'data-ratio': String(c.ratio),
          },
          el('div', { class: 'what', text: `${h.label} / ${what}${kind === 'best' ? ' (' + c.peer + ')' : ''}` }),
          el('div', { class: 'value', text: fmtRatio(c.ratio) }),
          el('div', { class: 'verdict', text: v.text })));
        }
        for (const c of h.vs_peers) {
          const v = verdict(c, cmp.metric);
          tbody.append(el('tr', { 'data-hakmem': h.label, 'data-peer': c.peer, 'data-ratio': String(c.ratio) },
            el('td', { class: 'alloc', text: h.label }),
            el('td', { text: c.peer }),
            el('td', { class: 'num', text: `${fmtSI(c.median)} ${cmp.unit}` }),
            el('td', { class: `num ${v.cls}`, text: fmtRatio(c.ratio) }),
            el('td', { class: v.cls ? v.cls + '-text' : '', text: v.text })));
        }
      }
    }

    if (!state.chartLibrary) return;
    const entries = cmp ? cmp.entries : [];
    const primary = cmp && cmp.hakmem.length ? cmp.hakmem[0] : null;
    const lines = entries.map((e) => {
      const out = [{ text: fmtSI(e.median), color: '#5f6b7a', size: 11 }];
      if (primary && e.allocator !== HAKMEM) {
        const c = primary.vs_peers.find((p) => p.peer === e.label);
        if (c) {
          out.push({ text: fmtRatio(c.ratio), bold: true, size: 12,
            color: c.ratio !== null && Math.abs(c.ratio - 1) >= 0.005 ? (c.better ? '#2b8a3e' : '#c92a2a') : '#495057' });
        }
      }
      return out;
    });
    charts.bars.data.labels = entries.map((e) => e.label);
    charts.bars.data.datasets = [{
      label: cmp ? `${cmp.metric}` : '',
      data: entries.map((e) => e.median),
      backgroundColor: entries.map((e) => colorFor(e.allocator, e.label) + (e.allocator === HAKMEM ? '' : 'cc')),
      borderColor: entries.map((e) => colorFor(e.allocator, e.label)),
      borderWidth: entries.map((e) => (e.allocator === HAKMEM ? 2 : 1)),
      maxBarThickness: 70,
    }];
    charts.bars.options.plugins.hakmemBarLabels.lines = lines;
    charts.bars.options.scales.y.title.text = cmp ? `${cmp.unit || cmp.metric} (${cmp.higher_is_better ? 'higher' : 'lower'} is better)` : '';
    charts.bars.update('none');
  }

  function drawSummary(latest, sel) {
    const tbody = $('summary-table').querySelector('tbody');
    tbody.textContent = '';
    const groups = (latest.comparisons || []).slice().sort((a, b) =>
      a.benchmark.localeCompare(b.benchmark) || a.threads - b.threads || a.metric.localeCompare(b.metric));
    for (const c of groups) {
      const hs = c.hakmem.length ? c.hakmem : [null];
      for (const h of hs) {
        const g = h && h.vs_glibc;
        const b = h && h.vs_best_peer;
        const tr = el('tr', {
          class: c.benchmark === sel.benchmark && c.threads === sel.threads && c.metric === sel.metric ? 'selected' : '',
          title: c.params ? `params: ${c.params}` : null,
        },
        el('td', { text: c.benchmark }),
        el('td', { class: 'num', text: String(c.threads) }),
        el('td', { text: c.metric }),
        el('td', { class: 'alloc', text: h ? h.label : '–' }),
        el('td', { class: 'num', text: h ? fmtSI(h.median) : '–' }),
        el('td', { class: 'num', text: c.glibc ? fmtSI(c.glibc.median) : '–' }),
        el('td', { text: c.best_peer ? c.best_peer.label : '–' }),
        el('td', { class: 'num', text: c.best_peer ? fmtSI(c.best_peer.median) : '–' }),
        el('td', { class: `num ${g ? verdict(g, c.metric).cls : ''}`, text: g ? fmtRatio(g.ratio) : '–' }),
        el('td', { class: `num ${b ? verdict(b, c.metric).cls : ''}`, text: b ? fmtRatio(b.ratio) : '–' }));
        tr.addEventListener('click', () => select({ benchmark: c.benchmark, threads: c.threads, metric: c.metric }));
        tbody.append(tr);
      }
    }
  }

  // ---------------------------------------------------------- change view

  function fmtChange(c) {
    return c === null || c === undefined || !Number.isFinite(c) ? '–' : `${c > 0 ? '+' : ''}${(100 * c).toFixed(1)}%`;
  }

  function drawChanges(changes) {
    state.changes = changes;
    const run = changes.run;
    const prev = changes.previous_run;
    $('changes-info').textContent = run
      ? `Run #${run.id} ${run.commit.slice(0, 7)} “${run.subject}” on ${run.hostname} (${run.config}), ` +
        (prev ? `against run #${prev.id} ${prev.commit.slice(0, 7)}.` : 'the first of its machine and configuration: nothing to compare with.')
      : 'No run for this configuration and machine.';
    const gm = $('changes-geomean');
    gm.textContent = '';
    for (const g of changes.geomean || []) {
      gm.append(el('span', { 'data-variant': g.variant, 'data-better': String(g.better),
        text: `geometric mean, ${g.label}: ${fmtRatio(g.better)} over ${g.n} benchmark${g.n === 1 ? '' : 's'}` }));
    }
    const tbody = $('changes-table').querySelector('tbody');
    tbody.textContent = '';
    for (const r of changes.rows || []) {
      const alertCell = el('td', {});
      for (const a of r.alerts) {
        const mark = a.triage ? a.triage.status : 'open';
        const item = el('span', { class: 'alert-item', 'data-figure': a.figure, 'data-status': mark },
          `▲ ${FIGURE_NAMES[a.figure] || a.metric} ${fmtChange(a.change)}`,
          el('span', { class: 'triage-mark', text: mark === 'open' ? '' : mark, title: a.triage && a.triage.note ? a.triage.note : null }));
        for (const status of ['triaged', 'accepted', 'open']) {
          if (status === mark) continue;
          const b = el('button', { type: 'button', text: status === 'open' ? 'reopen' : status, 'data-status': status });
          b.addEventListener('click', () => triage(a, status));
          item.append(b);
        }
        alertCell.append(item);
      }
      const cls = r.alerts.length ? `alert-row${r.open_alerts ? '' : ' all-triaged'}` : '';
      tbody.append(el('tr', { class: cls, 'data-benchmark': r.benchmark, 'data-threads': String(r.threads), 'data-metric': r.metric,
        'data-variant': r.variant, 'data-alerts': String(r.alerts.length), 'data-open': String(r.open_alerts) },
      el('td', { text: r.benchmark, title: r.params ? `params: ${r.params}` : null }),
      el('td', { class: 'num', text: String(r.threads) }),
      el('td', { text: r.metric }),
      el('td', { class: 'alloc', text: r.label }),
      el('td', { class: 'num', text: fmtSI(r.previous) }),
      el('td', { class: 'num', text: fmtSI(r.current) }),
      el('td', { class: 'num', text: fmtChange(r.change) }),
      el('td', { class: `num ${r.better === null ? '' : r.better >= 1.005 ? 'better' : r.better <= 0.995 ? 'worse' : ''}`, text: fmtRatio(r.better) }),
      alertCell));
    }
  }

  function changesQuery(sel) {
    const q = new URLSearchParams({ config: sel.config });
    if (sel.machine) q.set('machine', sel.machine);
    return 'api/changes?' + q;
  }

  // Marks an alert with the token typed in the page; the server keeps the mark.
  async function triage(a, status) {
    const token = $('triage-token').value.trim();
    const say = (text) => { $('triage-status').textContent = text; };
    if (!token) { say('Type the push token first: marking an alert needs it.'); return; }
    const body = { benchmark: a.benchmark, params: a.params, threads: a.threads, metric: a.metric,
      variant: a.variant, figure: a.figure, status };
    let response;
    try {
      response = await fetch(`api/runs/${a.run_id}/triage`, { method: 'POST', body: JSON.stringify(body),
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` } });
    } catch (e) { say(`Could not reach the server: ${e.message}`); return; }
    let reply = null;
    try { reply = await response.json(); } catch (e) { reply = null; }
    if (!response.ok) { say(`Not marked: HTTP ${response.status}${reply && reply.error ? ' — ' + reply.error : ''}`); return; }
    say(`${a.benchmark} ${FIGURE_NAMES[a.figure] || a.metric}: ${status}`);
    try { drawChanges(await api(changesQuery(state.selection))); } catch (e) { say(`Marked, but could not reload: ${e.message}`); }
    state.triageCount = (state.triageCount || 0) + 1;
  }

  const NUMERIC = new Set(['threads', 'median', 'min', 'max', 'wall_s', 'cpu_s', 'peak_rss_kb']);

  function drawRaw(latest) {
    const table = $('raw-table');
    const tbody = table.querySelector('tbody');
    tbody.textContent = '';
    const rows = (latest.results || []).slice();
    const { key, dir } = state.sort;
    if (key) {
      rows.sort((a, b) => {
        const x = a[key];
        const y = b[key];
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (NUMERIC.has(key) ? x - y : String(x).localeCompare(String(y))) * dir;
      });
    }
    for (const th of table.querySelectorAll('th')) {
      if (th.dataset.key === key) th.setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
    for (const r of rows) {
      const label = seriesLabel(r.allocator, r.variant);
      tbody.append(el('tr', { class: r.allocator === HAKMEM ? 'hakmem-row' : '' },
        el('td', { text: r.benchmark }),
        el('td', { class: 'params', text: r.params || '', title: r.params || null }),
        el('td', { class: 'num', text: String(r.threads) }),
        el('td', { class: 'alloc' }, el('span', { class: 'swatch', style: `background:${colorFor(r.allocator, label)}` }), r.allocator),
        el('td', { text: r.variant || '' }),
        el('td', { text: r.metric }),
        el('td', { class: 'num', text: fmtRaw(r.median) }),
        el('td', { class: 'num', text: fmtRaw(r.min) }),
        el('td', { class: 'num', text: fmtRaw(r.max) }),
        el('td', { text: r.unit || '' }),
        el('td', { class: 'num', text: fmtRaw(r.wall_s) }),
        el('td', { class: 'num', text: fmtRaw(r.cpu_s) }),
        el('td', { class: 'num', text: r.peak_rss_kb === null ? '–' : `${fmtRaw(r.peak_rss_kb)} kB` })));
    }
    const run = latest.run;
    $('raw-info').textContent = run
      ? `Run #${run.id} (${run.commit.slice(0, 7)}, ${run.config.mode}${run.config.build ? '/' + run.config.build : ''}` +
        `${run.config.rounds ? ', ' + run.config.rounds + ' rounds' : ''}): ${rows.length} results. Click a column heading to sort.`
      : 'No run.';
  }

  function drawRuns() {
    const tbody = $('runs-table').querySelector('tbody');
    tbody.textContent = '';
    for (const r of state.runs.slice(0, 100)) {
      tbody.append(el('tr', {},
        el('td', { class: 'num', text: String(r.id) }),
        el('td', {}, el('code', { text: r.commit.slice(0, 10) })),
        el('td', { class: 'wrap', text: r.subject || '' }),
        el('td', { text: shortTime(r.time) }),
        el('td', { text: r.config }),
        el('td', { text: r.hostname }),
        el('td', { class: 'num', text: String(r.results) })));
    }
  }

  // ----------------------------------------------------------------- render

  let renderToken = 0;

  async function render() {
    const token = ++renderToken;
    const sel = { ...state.selection };
    state.loading = true;
    const q = new URLSearchParams({ benchmark: sel.benchmark, threads: String(sel.threads), metric: sel.metric, config: sel.config });
    if (sel.machine) q.set('machine', sel.machine);
    let series;
    let latest;
    let changes;
    try {
      [series, latest, changes] = await Promise.all([api('api/series?' + q), api('api/latest?' + q), api(changesQuery(sel))]);
    } catch (e) {
      if (token === renderToken) { state.loading = false; showError(`Could not load data: ${e.message}`); }
      return;
    }
    if (token !== renderToken) return;
    state.seriesFull = series;
    state.latest = latest;
    drawRange();
    drawChanges(changes);
    drawLatest(latest, sel);
    drawSummary(latest, sel);
    drawRaw(latest);
    state.renderCount += 1;
    state.renderedKey = selectionKey(sel);
    state.loading = false;
    state.ready = true;
    document.body.dataset.rendered = state.renderedKey;
  }

  async function init() {
    if (!state.chartLibrary) {
      $('chart-missing').hidden = false;
      document.body.classList.add('no-charts');
    }
    let benchmarks;
    let runs;
    try {
      let health;
      [benchmarks, runs, health] = await Promise.all([api('api/benchmarks'), api('api/runs'), api('healthz')]);
      state.commitUrl = health.commit_url || '';
    } catch (e) {
      showError(`Could not reach the dashboard API: ${e.message}`);
      state.ready = true;
      return;
    }
    state.benchmarks = benchmarks.benchmarks;
    state.runs = runs.runs;
    drawRuns();
    if (!state.runs.length || !state.benchmarks.length) {
      $('push-url').textContent = new URL('api/runs', window.location.href).href;
      $('empty').hidden = false;
      for (const id of ['changes-section', 'trend-section', 'history-section', 'alerts-section', 'latest-section', 'summary-section', 'raw-section', 'runs-section']) $(id).hidden = true;
      $('run-info').textContent = 'No runs stored yet.';
      for (const id of ['f-benchmark', 'f-threads', 'f-config', 'f-metric', 'f-machine', 'r-last', 'r-from', 'r-to', 'r-reset']) $(id).disabled = true;
      state.ready = true;
      return;
    }
    const r0 = state.runs[0];
    $('run-info').textContent = `${state.runs.length} run${state.runs.length === 1 ? '' : 's'} · newest commit ` +
      `${r0.commit.slice(0, 7)} “${r0.subject}” · ${shortTime(r0.time)} UTC · ${r0.hostname}`;
    ensureCharts();
    state.selection = settle(readHash(), true);
    state.range = readRange();
    syncSelects();
    writeHash();

    $('f-benchmark').addEventListener('change', (e) => select({ benchmark: e.target.value }));
    $('f-config').addEventListener('change', (e) => select({ config: e.target.value }));
    $('f-threads').addEventListener('change', (e) => select({ threads: Number(e.target.value) }));
    $('f-metric').addEventListener('change', (e) => select({ metric: e.target.value }));
    $('f-machine').addEventListener('change', (e) => select({ machine: e.target.value }));
    window.addEventListener('hashchange', () => { state.range = readRange(); select(readHash()); });
    $('r-last').addEventListener('change', (e) => setRange({ last: Number(e.target.value) }));
    $('r-from').addEventListener('change', (e) => setRange({ from: e.target.value }));
    $('r-to').addEventListener('change', (e) => setRange({ to: e.target.value }));
    $('r-reset').addEventListener('click', () => setRange({ last: 0, from: '', to: '' }));
    for (const th of $('raw-table').querySelectorAll('th[data-key]')) {
      th.addEventListener('click', () => {
        const key = th.dataset.key;
        state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
        if (state.latest) drawRaw(state.latest);
      });
    }
    await render();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
