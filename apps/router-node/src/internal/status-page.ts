/**
 * `GET /`: the status page. One self-contained HTML document (inline CSS and JS, no CDN, no
 * fonts, works offline) that fetches `status.json` every second and redraws.
 *
 * Every string of the snapshot (node ids, zones and addresses are operator input) reaches the
 * DOM as a text node or an attribute value set with `setAttribute`: the script never parses
 * data as HTML. The Content-Security-Policy allows only this page's own script and style (by
 * hash), so even a markup slip could not run injected code.
 */
import { createHash } from 'node:crypto';
import type { HttpReply } from './metrics-server.js';

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2430;background:#f4f6f9}
header{display:flex;gap:16px;align-items:center;padding:10px 20px;background:#1d2430;color:#fff}
header h1{font-size:17px;margin:0}
#banner{display:flex;gap:14px;align-items:center}
.badge{padding:2px 10px;border-radius:10px;font-weight:600}
.ok{background:#1e8e3e;color:#fff}.bad{background:#d93025;color:#fff}.warn{background:#f29900;color:#1d2430}
.muted{color:#6b7480}header .muted{color:#aab2bd}
main{display:grid;grid-template-columns:340px 1fr;gap:16px;padding:16px 20px}
section{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px #0002}
h2{font-size:13px;text-transform:uppercase;letter-spacing:.05em;color:#6b7480;margin:0 0 8px}
.wide{grid-column:1/-1}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e6e9ee;white-space:nowrap}
th{font-size:12px;color:#6b7480;font-weight:600}
.pill{display:inline-block;padding:1px 8px;border-radius:9px;font-size:12px;font-weight:600}
.s-up,.b-closed{background:#e6f4ea;color:#137333}.s-down,.b-open{background:#fce8e6;color:#c5221f}
.s-draining,.s-unknown,.b-half-open{background:#fef7e0;color:#b06000}
.bar{display:inline-block;width:90px;height:8px;background:#e6e9ee;border-radius:4px;vertical-align:middle;margin-right:6px}
.bar>i{display:block;height:100%;border-radius:4px;background:#4285f4}
.legend span{display:inline-block;margin:2px 10px 2px 0}.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}.legend i.down-key{width:8px;height:8px;border:1px solid #d93025;background:#fff}
.series{display:grid;grid-template-columns:190px 1fr;align-items:center;gap:12px;margin:6px 0 14px}
.grow{flex:1}.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.series b{font-size:20px;display:block}svg.line{width:100%;height:90px;display:block;background:#f8f9fb;border-radius:4px}
`;

const SCRIPT = `
'use strict';
const NS = 'http://www.w3.org/2000/svg';
const ZONE_COLOURS = ['#4285f4', '#34a853', '#fbbc04', '#a142f4', '#24c1e0', '#f06292', '#ff7043', '#8d6e63'];
// Builds an element: attribute values and text children are never parsed as markup.
function build(ns, tag, attrs, kids) {
  const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const k in attrs) if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, String(attrs[k]));
  for (const c of kids) if (c !== undefined && c !== null) e.append(typeof c === 'object' ? c : String(c));
  return e;
}
const h = (tag, attrs, ...kids) => build(null, tag, attrs, kids);
const s = (tag, attrs, ...kids) => build(NS, tag, attrs, kids);
const byId = (id) => document.getElementById(id);
const fixed = (v, d) => (v === null || v === undefined ? '–' : Number(v).toFixed(d));
function bytes(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + u[i];
}
function bar(fraction) {
  const i = h('i', {});
  i.style.width = Math.round(Math.max(0, Math.min(1, fraction)) * 100) + '%';
  return h('span', { class: 'bar' }, i);
}
function pill(prefix, value) { return h('span', { class: 'pill ' + prefix + value }, value); }

function zoneColours(nodes) {
  const zones = [...new Set(nodes.map((n) => n.zone))].sort();
  return new Map(zones.map((z, i) => [z, ZONE_COLOURS[i % ZONE_COLOURS.length]]));
}

function point(r, a) { return (150 + r * Math.sin(a)).toFixed(2) + ' ' + (150 - r * Math.cos(a)).toFixed(2); }
function arcPath(a0, a1) {
  const big = a1 - a0 > Math.PI ? 1 : 0;
  return 'M' + point(120, a0) + 'A120 120 0 ' + big + ' 1 ' + point(120, a1) +
    'L' + point(78, a1) + 'A78 78 0 ' + big + ' 0 ' + point(78, a0) + 'Z';
}
function drawRing(snap, colours) {
  const svg = s('svg', { viewBox: '0 0 300 300', width: 300, height: 300, id: 'ring-svg' });
  let a = 0;
  for (const n of snap.nodes) {
    const g = s('g', { class: 'arc', 'data-node': n.id, 'data-state': n.state, 'data-share': n.ringShare });
    g.append(s('title', {}, n.id + ' (' + (n.zone || 'no zone') + '): ' + (n.ringShare * 100).toFixed(1) + '% of the ring, ' + n.state));
    // A whole circle is two half arcs (one SVG arc cannot start and end at the same point).
    const parts = n.ringShare >= 0.9999 ? [[0, Math.PI], [Math.PI, 2 * Math.PI]] : n.ringShare > 0 ? [[a, a + n.ringShare * 2 * Math.PI]] : [];
    for (const [p0, p1] of parts) {
      g.append(s('path', { d: arcPath(p0, p1), fill: colours.get(n.zone), stroke: n.state === 'up' ? '#fff' : '#d93025',
        'stroke-width': n.state === 'up' ? 2 : 3, 'fill-opacity': n.state === 'up' ? 1 : 0.3 }));
    }
    if (n.ringShare > 0.04) {
      const mid = a + n.ringShare * Math.PI;
      const [x, y] = point(99, mid).split(' ');
      g.append(s('text', { x, y, 'text-anchor': 'middle', 'dominant-baseline': 'middle', 'font-size': 11, fill: '#1d2430' },
        [...n.id].length > 10 ? [...n.id].slice(0, 9).join('') + '…' : n.id));
    }
    a += n.ringShare * 2 * Math.PI;
    svg.append(g);
  }
  svg.append(s('text', { x: 150, y: 144, 'text-anchor': 'middle', 'font-size': 13, fill: '#6b7480' }, 'epoch'));
  svg.append(s('text', { x: 150, y: 166, 'text-anchor': 'middle', 'font-size': 22, 'font-weight': 600 }, snap.epoch));
  const legend = h('div', { class: 'legend' });
  for (const [zone, colour] of colours) {
    const swatch = h('i', {});
    swatch.style.background = colour;
    legend.append(h('span', {}, swatch, zone === '' ? '(no zone)' : zone));
  }
  legend.append(h('span', {}, h('i', { class: 'down-key' }), 'not up'));
  byId('ring').replaceChildren(svg, legend);
}

// A sparkline of one or more series (null = no calls in that interval: a gap in the line),
// the newest point at the right edge, the whole history's capacity across.
function spark(series, colours, capacity) {
  const w = 600, ht = 90;
  const count = Math.max(2, capacity);
  const max = Math.max(1e-9, ...series.flat().filter((v) => v !== null));
  const svg = s('svg', { class: 'line', viewBox: '0 0 ' + w + ' ' + ht, preserveAspectRatio: 'none' });
  series.forEach((values, k) => {
    let run = [];
    const flush = () => {
      if (run.length > 1) svg.append(s('polyline', { points: run.join(' '), fill: 'none', stroke: colours[k], 'stroke-width': 1.5, 'vector-effect': 'non-scaling-stroke' }));
      run = [];
    };
    const skip = count - values.length;
    values.forEach((v, i) => {
      if (v === null) return flush();
      run.push((((skip + i) / (count - 1)) * w).toFixed(1) + ',' + (ht - 3 - (v / max) * (ht - 8)).toFixed(1));
    });
    flush();
  });
  return svg;
}
function drawHistory(hist) {
  const last = (a) => (a.length === 0 ? null : a[a.length - 1]);
  const peak = (...series) => 'top of the scale ' + fixed(Math.max(0, ...series.flat().filter((v) => v !== null)), 1);
  const row = (label, value, series, colours) => h('div', { class: 'series' },
    h('div', {}, h('span', { class: 'muted' }, label), h('b', {}, value), h('small', { class: 'muted' }, peak(...series))),
    spark(series, colours, hist.capacity));
  byId('history').replaceChildren(
    row('requests / s', fixed(last(hist.ratePerS), 1), [hist.ratePerS], ['#4285f4']),
    row('non-OK / s', fixed(last(hist.errorsPerS), 1), [hist.errorsPerS], ['#d93025']),
    row('latency p50 / p99 (ms)', fixed(last(hist.p50Ms), 2) + ' / ' + fixed(last(hist.p99Ms), 2),
      [hist.p50Ms, hist.p99Ms], ['#34a853', '#f29900']),
  );
}

function drawNodes(snap, colours) {
  const maxHints = Math.max(1, ...snap.nodes.map((n) => n.hintsPending));
  const rows = snap.nodes.map((n) => {
    const swatch = h('i', { class: 'sw' });
    swatch.style.background = colours.get(n.zone);
    return h('tr', { 'data-node': n.id },
      h('td', { class: 'id' }, n.id),
      h('td', { class: 'zone' }, swatch, n.zone === '' ? '(none)' : n.zone),
      h('td', { class: 'muted' }, n.address),
      h('td', { class: 'state' }, pill('s-', n.state),
        n.ejected ? h('span', { class: 'pill s-draining', title: 'ejected by outlier detection' }, 'ejected') : null),
      h('td', { class: 'lifecycle' }, n.lifecycle),
      h('td', { class: 'breaker' }, pill('b-', n.breaker)),
      h('td', {}, n.healthLatencyMs === null ? '–' : fixed(n.healthLatencyMs, 1) + ' ms'),
      h('td', {}, (n.ringShare * 100).toFixed(1) + '%'),
      h('td', { class: 'hints' }, bar(n.hintsPending / maxHints), n.hintsPending + ' (' + bytes(n.hintBytesPending) + ')'),
      h('td', {}, n.repairNeeded ? h('span', { class: 'pill s-draining' }, 'needed') : '–'));
  });
  byId('nodes').replaceChildren(...rows);
}

function drawStreams(snap) {
  const rows = snap.streams.map((x) => h('tr', {},
    h('td', {}, x.kind), h('td', {}, x.subject), h('td', {}, x.phase),
    h('td', {}, bar(x.spacesTotal === 0 ? 1 : x.spacesDone / x.spacesTotal), x.spacesDone + ' / ' + x.spacesTotal + ' spaces'),
    h('td', {}, x.entriesCopied + ' entries'), h('td', { class: 'muted' }, x.lastError)));
  byId('streams').replaceChildren(...(rows.length > 0 ? rows : [h('tr', {}, h('td', { class: 'muted' }, 'no data moving'))]));
}

function drawBanner(snap) {
  const up = snap.nodes.filter((n) => n.state === 'up').length;
  byId('banner').replaceChildren(
    h('span', { class: 'badge ' + (snap.partitioned ? 'bad' : 'ok'), id: 'partition' }, snap.partitioned ? 'PARTITIONED' : 'not partitioned'),
    h('span', {}, 'epoch ' + snap.epoch),
    h('span', {}, up + ' / ' + snap.nodes.length + ' nodes up'),
    h('span', {}, 'replication factor ' + snap.replicationFactor),
    ...(snap.etcd === null ? [] : [
      h('span', { class: 'badge ' + (snap.etcd.connected ? 'ok' : 'bad'), id: 'etcd' },
        snap.etcd.connected ? 'etcd revision ' + snap.etcd.revision : 'etcd UNREACHABLE (last table in force)'),
      h('span', {}, snap.etcd.routers.length + ' routers' + (snap.etcd.driving ? ', this one drives data movement' : '')),
    ]),
  );
}

let updates = 0;
async function refresh() {
  try {
    const res = await fetch('status.json', { cache: 'no-store' });
    if (!res.ok) throw new Error('HTTP ' + res.status);
    const snap = await res.json();
    const colours = zoneColours(snap.nodes);
    drawBanner(snap);
    drawRing(snap, colours);
    drawNodes(snap, colours);
    drawStreams(snap);
    drawHistory(snap.history);
    document.body.dataset.updates = String(++updates);
    byId('live').className = 'badge ok';
    byId('live').textContent = 'live · ' + new Date(snap.generatedAtMs).toLocaleTimeString();
  } catch (err) {
    byId('live').className = 'badge warn';
    byId('live').textContent = 'no answer (' + err.message + '), retrying';
  }
  setTimeout(refresh, 1000);
}
refresh();
`;

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** The page's HTML (static: the data comes from `status.json`). */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Engram router status</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="icon" href="data:,">
<style>${STYLE}</style></head>
<body><header><h1>Engram router</h1><span id="banner"></span><span class="grow"></span><span id="live" class="badge warn">loading</span></header>
<main>
<section><h2>Ring (token share)</h2><div id="ring"></div></section>
<section><h2>Requests (last two minutes, all operations)</h2><div id="history"></div></section>
<section class="wide"><h2>Nodes</h2><table><thead><tr><th>node</th><th>zone</th><th>address</th><th>health</th><th>lifecycle</th><th>breaker</th><th>probe</th><th>ring</th><th>hints pending</th><th>repair</th></tr></thead><tbody id="nodes"></tbody></table></section>
<section class="wide"><h2>Data movement</h2><table><tbody id="streams"></tbody></table></section>
</main><script>${SCRIPT}</script></body></html>
`;

/**
 * The page's Content-Security-Policy: its one script and one style block by hash, fetches to
 * its own origin only, nothing else.
 */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** `GET /`. */
export function statusPageRoute(): () => HttpReply {
  const body = Buffer.from(STATUS_PAGE_HTML);
  return () => ({
    status: 200,
    contentType: 'text/html; charset=utf-8',
    body,
    headers: {
      'content-security-policy': STATUS_PAGE_CSP,
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-store',
    },
  });
}
