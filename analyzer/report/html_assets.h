// The static parts of the HTML report (html_report.cpp writes the data between them): page head,
// CSS, the waterfall's frame and the script that draws it. Nothing here may reference anything
// outside the page (no URL, font or import): the report must open offline and from file://, and
// the Content-Security-Policy below makes the browser refuse any fetch should one slip in.
//
// The script treats every string of the data as hostile: it only ever sets textContent, never
// innerHTML, and the data's JSON has < > & escaped (append_script_json_string).
#pragma once

namespace httptrace::analyzer {

inline constexpr const char* kHtmlHead = R"HTML(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="httptrace report">
<title>httptrace report</title>
<style>
)HTML";

inline constexpr const char* kHtmlCss = R"CSS(
:root { --lbl: 330px; --dns: #0e9f8e; --connect: #e58a00; --tls: #9b4dca; --send: #2f6fdf; --wait: #8fb4f2;
        --receive: #1b3f8f; --idle: #c9c9c9; --life: #eceff3; --fail: #d22; --fg: #1d2430; --muted: #5b6676; }
* { box-sizing: border-box; }
body { margin: 0; padding: 12px 18px 40px; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: var(--fg); background: #fff; display: flex; flex-direction: column; }
header { order: 0; } #summary { order: 1; } #waterfall { order: 2; } section { order: 3; }
h1 { font-size: 20px; margin: 0 0 2px; } h2 { font-size: 16px; margin: 22px 0 8px; } h3 { font-size: 14px; margin: 16px 0 6px; }
.sub, .note { color: var(--muted); margin: 4px 0; }
.warn { background: #fff4e5; border-left: 4px solid #e58a00; padding: 6px 10px; margin: 8px 0; }
tr.warn { border: 0; }
.facts { display: flex; flex-wrap: wrap; gap: 6px 22px; margin: 6px 0; }
.facts div { display: flex; gap: 6px; } .facts dt { color: var(--muted); } .facts dd { margin: 0; font-weight: 600; }
.controls { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; margin: 4px 0 6px; }
.controls button { font: inherit; padding: 2px 10px; border: 1px solid #aab3c0; background: #f6f8fa; border-radius: 4px; cursor: pointer; }
.controls button:hover { background: #e8edf3; }
#range { color: var(--muted); margin-left: 8px; font-variant-numeric: tabular-nums; }
.legend { display: flex; gap: 14px; flex-wrap: wrap; color: var(--muted); margin-bottom: 4px; }
.legend span::before { content: ""; display: inline-block; width: 12px; height: 10px; margin-right: 4px; vertical-align: -1px; background: var(--c); }
#wfbody { position: relative; user-select: none; }
#axis { display: flex; position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid #ccd3dc; height: 20px; }
#axis .pad { flex: 0 0 var(--lbl); }
#ticks { position: relative; flex: 1; overflow: hidden; }
#ticks span { position: absolute; top: 2px; font-size: 11px; color: var(--muted); border-left: 1px solid #ccd3dc; padding-left: 3px; white-space: nowrap; }
.row { display: flex; height: 20px; border-bottom: 1px solid #f0f2f5; content-visibility: auto; contain-intrinsic-size: auto 20px; }
.row:hover { background: #f7f9fc; }
.lbl { flex: 0 0 var(--lbl); overflow: hidden; white-space: nowrap; text-overflow: ellipsis; padding-right: 8px; font-size: 12px; line-height: 20px; }
.lbl .cid { font-weight: 600; margin-right: 6px; } .lbl .cep { margin-right: 6px; }
.lbl .reason { color: var(--muted); margin-right: 6px; } .lbl .reason.miss { color: var(--fail); }
.lbl .targets { color: var(--muted); }
.trk { position: relative; flex: 1; overflow: hidden; cursor: crosshair; }
.lane { position: absolute; top: 0; bottom: 0; left: calc(var(--o, 0) * var(--z, 1) * -100%); width: calc(var(--z, 1) * 100%); }
.seg { position: absolute; top: 4px; height: 12px; min-width: 1px; background: var(--c); }
.seg.life { top: 9px; height: 2px; background: #b8c0cc; }
.seg.idle { top: 8px; height: 4px; background: var(--idle); }
.seg.dns { --c: var(--dns); } .seg.connect, .seg.tunnel { --c: var(--connect); } .seg.tls { --c: var(--tls); }
.seg.send { --c: var(--send); } .seg.wait { --c: var(--wait); } .seg.receive { --c: var(--receive); }
.seg.fail { outline: 2px solid var(--fail); outline-offset: -1px; }
.seg:hover { filter: brightness(0.8); }
#sel { position: absolute; top: 0; bottom: 0; background: rgba(47, 111, 223, 0.15); border: 1px solid #2f6fdf; display: none; pointer-events: none; z-index: 3; }
#tip { position: fixed; z-index: 10; max-width: 460px; background: #1d2430; color: #fff; padding: 6px 9px; border-radius: 4px;
       font-size: 12px; pointer-events: none; white-space: pre-wrap; word-break: break-all; box-shadow: 0 2px 8px rgba(0,0,0,.3); }
#tip b { display: block; margin-bottom: 2px; }
.empty { color: var(--muted); padding: 10px 0; }
table.data { border-collapse: collapse; width: 100%; font-size: 12px; }
table.data.narrow { width: auto; }
table.data th, table.data td { border-bottom: 1px solid #e3e7ec; padding: 3px 8px; text-align: left; vertical-align: top; }
table.data th { background: #f6f8fa; font-weight: 600; }
table.data td.n { text-align: right; font-variant-numeric: tabular-nums; }
table.data td.ep, table.data td.exe, table.data td.argv, table.data td.req { word-break: break-all; }
table.data tr.total td { font-weight: 600; border-top: 2px solid #ccd3dc; }
.arg { background: #f0f2f5; padding: 0 3px; border-radius: 2px; }
@media print {
  body { padding: 0; font-size: 10px; }
  .controls, #tip, #sel, .hint { display: none !important; }
  #axis { position: static; }
  .row { content-visibility: visible; break-inside: avoid; }
  .seg, .legend span::before, .warn { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  section, table.data tr { break-inside: avoid-page; }
  table.data { font-size: 9px; }
}
)CSS";

inline constexpr const char* kHtmlHeadEnd = "</style>\n</head>\n<body>\n";

inline constexpr const char* kHtmlWaterfall = R"HTML(<section id="waterfall">
<h2>Waterfall</h2>
<div class="controls">
<button type="button" id="zoom-in" title="zoom in">+ zoom in</button>
<button type="button" id="zoom-out" title="zoom out">&minus; zoom out</button>
<button type="button" id="pan-left" title="move left">&#9664;</button>
<button type="button" id="pan-right" title="move right">&#9654;</button>
<button type="button" id="zoom-reset" title="show the whole trace">reset</button>
<span class="hint note">drag across the chart to zoom into a span; hover a bar for exact times</span>
<span id="range"></span>
</div>
<div class="legend">
<span style="--c: var(--dns)">dns</span><span style="--c: var(--connect)">connect</span><span style="--c: var(--tls)">tls</span>
<span style="--c: var(--send)">send</span><span style="--c: var(--wait)">wait</span><span style="--c: var(--receive)">receive</span>
<span style="--c: var(--idle)">idle before reuse</span>
</div>
<div id="wfbody">
<div id="axis"><div class="pad"></div><div id="ticks"></div></div>
<div id="rows"><noscript><p class="empty">The waterfall is drawn by the page's script; the tables below need none.</p></noscript></div>
<div id="sel"></div>
</div>
<div id="tip" hidden></div>
</section>
)HTML";

inline constexpr const char* kHtmlScript = R"JS(<script>
(function () {
  'use strict';
  var began = performance.now();
  var conns = JSON.parse(document.getElementById('ht-conns').textContent);
  var meta = JSON.parse(document.getElementById('ht-meta').textContent);
  var rows = document.getElementById('rows');
  var ticks = document.getElementById('ticks');
  var tip = document.getElementById('tip');
  var sel = document.getElementById('sel');
  var body = document.getElementById('wfbody');
  conns.sort(function (x, y) { return x.start - y.start || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0); });
  function lastSeen(c) {
    var t = c.start;
    if (c.dns) t = Math.max(t, c.dns[0] + c.dns[1]);
    if (c.connect) t = Math.max(t, c.connect[0] + c.connect[1]);
    if (c.tunnel) t = Math.max(t, c.tunnel.start + c.tunnel.dur);
    if (c.tls) t = Math.max(t, c.tls.start + c.tls.dur);
    c.reqs.forEach(function (r) { t = Math.max(t, r.end); });
    return t;
  }
  // The axis covers what is drawn: the whole trace when every connection is, else up to the
  // last drawn one (the first N to complete of a long trace would be a sliver of its span).
  var T = 1;
  if (meta.drawn === meta.connections) T = Math.max(meta.end, 1);
  else conns.forEach(function (c) { T = Math.max(T, c.end !== undefined ? c.end : lastSeen(c)); });
  var view = { a: 0, b: T };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function ms(ns) { return (ns / 1e6).toFixed(3) + ' ms'; }
  function at(ns) { return (ns / 1e6).toFixed(3); }
  function pct(ns) { return (ns / T * 100) + '%'; }
  // One style string per bar (one CSS parse) and the bar's identity as plain properties, not
  // data-* attributes: a page of 5,000 connections has some 60,000 bars.
  function seg(lane, kind, start, dur, ci, ri, extra) {
    var e = document.createElement('div');
    e.className = 'seg ' + kind + (extra ? ' ' + extra : '');
    e.style.cssText = 'left:' + pct(start) + ';width:' + pct(Math.max(dur, 0));
    e.htC = ci;
    e.htK = kind;
    e.htR = ri;
    lane.appendChild(e);
  }
  function label(r) { return r.method ? r.method + ' ' + (r.target || '') + (r.cut ? '\u2026' : '') : 'request ' + r.i; }
  function connEnd(c) { return c.end !== undefined ? c.end : Math.max(meta.end, lastSeen(c)); }

  // A row's bars are made when it comes near the screen (or the page is printed); the first
  // rows at once, so the first screen is whole as soon as the script has run.
  var kEager = 150, lanes = [];
  function fill(ci) {
    var lane = lanes[ci];
    if (!lane || lane.filled) return;
    lane.filled = true;
    var c = conns[ci];
    seg(lane, 'life', c.start, connEnd(c) - c.start, ci);
    if (c.dns) seg(lane, 'dns', c.dns[0], c.dns[1], ci);
    if (c.connect) seg(lane, 'connect', c.connect[0], c.connect[1], ci, undefined, c.connErr ? 'fail' : '');
    if (c.tunnel) {
      var up = c.tunnel.status >= 200 && c.tunnel.status < 300;
      seg(lane, 'tunnel', c.tunnel.start, c.tunnel.dur, ci, undefined, up ? '' : 'fail');
    }
    if (c.tls) seg(lane, 'tls', c.tls.start, c.tls.dur, ci, undefined, c.tls.err ? 'fail' : '');
    c.reqs.forEach(function (r, ri) {
      if (r.idle !== undefined && r.reused) seg(lane, 'idle', r.start - r.idle, r.idle, ci, ri);
      var fb = r.fb !== undefined ? r.fb : r.end;
      var bad = r.failed !== undefined ? 'fail' : '';
      seg(lane, 'send', r.start, r.sent - r.start, ci, ri, bad);
      seg(lane, 'wait', r.sent, fb - r.sent, ci, ri, bad);
      if (r.fb !== undefined) seg(lane, 'receive', r.fb, r.end - r.fb, ci, ri, bad);
    });
  }
  function fillAll() { for (var i = 0; i < lanes.length; ++i) fill(i); }
  var watch = window.IntersectionObserver ? new IntersectionObserver(function (entries) {
    entries.forEach(function (en) {
      if (!en.isIntersecting) return;
      fill(en.target.htC);
      watch.unobserve(en.target);
    });
  }, { rootMargin: '800px 0px' }) : null;
  window.addEventListener('beforeprint', fillAll);

  function draw() {
    var frag = document.createDocumentFragment();
    conns.forEach(function (c, ci) {
      var row = el('div', 'row');
      row.htC = ci;
      var lbl = el('div', 'lbl');
      lbl.appendChild(el('span', 'cid', c.id));
      lbl.appendChild(el('span', 'cep', c.ep));
      var why = c.reason || (c.poolMiss ? 'pool miss' : '\u2014');
      lbl.appendChild(el('span', 'reason' + (c.poolMiss ? ' miss' : ''), why));
      var names = c.reqs.slice(0, 20).map(label);
      if (c.reqs.length > 20 || c.reqsLeftOut) names.push('\u2026');
      if (c.h2Streams) names.push('h2: ' + c.h2Streams + ' streams');
      lbl.appendChild(el('span', 'targets', names.join(' \u00b7 ')));
      lbl.title = c.id + '  ' + c.ep + '  ' + names.join(' \u00b7 ');
      var trk = el('div', 'trk');
      var lane = el('div', 'lane');
      lanes.push(lane);
      trk.appendChild(lane);
      row.appendChild(lbl);
      row.appendChild(trk);
      frag.appendChild(row);
      if (ci < kEager || !watch) fill(ci);
      else watch.observe(row);
    });
    if (!conns.length) frag.appendChild(el('p', 'empty', 'no connections in the trace'));
    rows.appendChild(frag);
  }

  function niceStep(span) {
    var raw = span / 8, p = Math.pow(10, Math.floor(Math.log10(raw)));
    var m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  }
  function setView(a, b) {
    var span = Math.max(b - a, Math.min(1000, T));
    if (span > T) span = T;
    a = Math.min(Math.max(a, 0), T - span);
    view = { a: a, b: a + span };
    rows.style.setProperty('--z', String(T / span));
    rows.style.setProperty('--o', String(a / T));
    rows.dataset.view = Math.round(view.a) + '-' + Math.round(view.b);
    ticks.textContent = '';
    var step = niceStep(span), digits = Math.max(0, Math.min(6, -Math.floor(Math.log10(step / 1e6))));
    for (var t = Math.ceil(a / step) * step; t <= view.b; t += step) {
      var x = (t - a) / span * 100;
      if (x > 93) break;  // a label there would be cut by the edge
      var s = el('span', null, (t / 1e6).toFixed(digits) + ' ms');
      s.style.left = x + '%';
      ticks.appendChild(s);
    }
    document.getElementById('range').textContent =
        'showing ' + at(view.a) + '\u2013' + at(view.b) + ' ms of ' + ms(T) + ' \u00b7 ' + conns.length + ' of ' +
        meta.connections + ' connections drawn';
  }
  function zoom(f) {
    var mid = (view.a + view.b) / 2, half = (view.b - view.a) / 2 / f;
    setView(mid - half, mid + half);
  }
  function pan(f) {
    var d = (view.b - view.a) * f;
    setView(view.a + d, view.b + d);
  }

  function line(parent, k, v) {
    if (v === undefined || v === null || v === '') return;
    parent.appendChild(document.createTextNode(k + ': ' + v + '\n'));
  }
  function phase(parent, name, start, dur) {
    line(parent, name, ms(dur) + '  (at ' + at(start) + ' \u2013 ' + at(start + dur) + ' ms)');
  }
  function details(e) {
    var c = conns[e.htC], k = e.htK;
    var r = e.htR !== undefined ? c.reqs[e.htR] : null;
    tip.textContent = '';
    tip.appendChild(el('b', null, c.id + '  ' + c.ep + (c.host && c.peer ? '  (' + c.peer + ')' : '')));
    if (k === 'dns') {
      phase(tip, 'dns lookup', c.dns[0], c.dns[1]);
      line(tip, 'host', c.host);
    } else if (k === 'connect') {
      phase(tip, 'connect', c.connect[0], c.connect[1]);
      line(tip, 'peer', c.peer);
      line(tip, 'error', c.connErr);
      if (c.pending) line(tip, 'state', 'still connecting at the end of the trace');
    } else if (k === 'tunnel') {
      phase(tip, 'proxy tunnel (CONNECT)', c.tunnel.start, c.tunnel.dur);
      line(tip, 'target', c.tunnel.target);
      line(tip, 'proxy', c.peer);
      line(tip, 'proxy answered', c.tunnel.status ? String(c.tunnel.status) : 'nothing');
    } else if (k === 'tls') {
      phase(tip, 'tls handshake', c.tls.start, c.tls.dur);
      line(tip, 'version', c.tls.version);
      line(tip, 'cipher', c.tls.cipher);
      line(tip, 'resumed', c.tls.resumed ? 'yes' : 'no');
      line(tip, 'alpn', c.tls.alpn);
      line(tip, 'sni', c.tls.sni);
      line(tip, 'seen through', c.tls.lib);
      line(tip, 'error', c.tls.err);
    } else if (r) {
      line(tip, 'request #' + r.i, label(r));
      if (k === 'idle') {
        phase(tip, 'idle before reuse', r.start - r.idle, r.idle);
      } else {
        var fb = r.fb !== undefined ? r.fb : r.end;
        phase(tip, 'send', r.start, r.sent - r.start);
        phase(tip, r.fb !== undefined ? 'wait' : 'wait (no response)', r.sent, fb - r.sent);
        if (r.fb !== undefined) phase(tip, 'receive', r.fb, r.end - r.fb);
        line(tip, 'total', ms(r.end - r.start));
      }
      line(tip, 'status', r.status);
      line(tip, 'reused', r.reused ? 'yes' + (r.idle !== undefined ? ', idle ' + ms(r.idle) + ' before' : '') : 'no (first on its connection)');
      line(tip, 'bytes sent / received', r.tx + ' / ' + r.rx);
      line(tip, 'http/2 stream', r.stream);
      line(tip, 'ended without a response', r.failed);
    } else {
      line(tip, 'connection', at(c.start) + ' \u2013 ' + (c.end !== undefined ? at(c.end) + ' ms' : 'still open at the end'));
      line(tip, 'open for', ms(connEnd(c) - c.start));
      line(tip, 'pid', c.pid);
      line(tip, 'protocol', c.proto);
      line(tip, 'http/2 streams opened', c.h2Streams);
      line(tip, 'new because', c.reason || '\u2014');
      if (c.poolMiss) line(tip, 'pool miss', 'opened while another connection to this endpoint sat idle');
      line(tip, 'replaced', c.replaced);
      if (c.replacedIdle !== undefined) line(tip, 'which had been idle', ms(c.replacedIdle));
      if (c.inherited) line(tip, 'inherited', 'across fork');
      if (c.inbound) line(tip, 'direction', 'inbound (accepted)');
      line(tip, 'requests', c.reqs.length + (c.reqsLeftOut ? ' drawn, ' + c.reqsLeftOut + ' left out' : ''));
      line(tip, 'bytes sent / received', c.tx + ' / ' + c.rx);
    }
  }
  function place(ev) {
    var w = tip.offsetWidth, h = tip.offsetHeight;
    var x = ev.clientX + 14, y = ev.clientY + 14;
    if (x + w > window.innerWidth - 4) x = Math.max(4, ev.clientX - w - 14);
    if (y + h > window.innerHeight - 4) y = Math.max(4, ev.clientY - h - 14);
    tip.style.left = x + 'px';
    tip.style.top = y + 'px';
  }
  rows.addEventListener('mousemove', function (ev) {
    var e = ev.target.closest ? ev.target.closest('.seg') : null;
    if (!e || drag) { tip.hidden = true; return; }
    if (shown !== e) {
      details(e);
      shown = e;
    }
    tip.hidden = false;
    place(ev);
  });
  var shown = null;
  rows.addEventListener('mouseleave', function () { tip.hidden = true; });

  var drag = null;
  function trackBox() { var t = rows.querySelector('.trk'); return t ? t.getBoundingClientRect() : null; }
  rows.addEventListener('mousedown', function (ev) {
    if (ev.button !== 0 || !ev.target.closest || !ev.target.closest('.trk')) return;
    var box = trackBox();
    drag = { x: ev.clientX, box: box };
    ev.preventDefault();
  });
  window.addEventListener('mousemove', function (ev) {
    if (!drag) return;
    var lo = Math.max(Math.min(drag.x, ev.clientX), drag.box.left), hi = Math.min(Math.max(drag.x, ev.clientX), drag.box.right);
    var outer = body.getBoundingClientRect();
    sel.style.display = 'block';
    sel.style.left = (lo - outer.left) + 'px';
    sel.style.width = Math.max(hi - lo, 0) + 'px';
  });
  window.addEventListener('mouseup', function (ev) {
    if (!drag) return;
    var d = drag;
    drag = null;
    sel.style.display = 'none';
    if (Math.abs(ev.clientX - d.x) < 4) return;
    var f = function (x) { return Math.min(Math.max((x - d.box.left) / d.box.width, 0), 1); };
    var span = view.b - view.a;
    setView(view.a + f(Math.min(d.x, ev.clientX)) * span, view.a + f(Math.max(d.x, ev.clientX)) * span);
  });
  document.getElementById('zoom-in').addEventListener('click', function () { zoom(2); });
  document.getElementById('zoom-out').addEventListener('click', function () { zoom(0.5); });
  document.getElementById('pan-left').addEventListener('click', function () { pan(-0.25); });
  document.getElementById('pan-right').addEventListener('click', function () { pan(0.25); });
  document.getElementById('zoom-reset').addEventListener('click', function () { setView(0, T); });

  draw();
  setView(0, T);
  rows.dataset.drawn = String(conns.length);
  rows.dataset.renderMs = (performance.now() - began).toFixed(1);

  // For the tests, which drive a headless browser without an input device: hover the first
  // request's send bar, then drag across the middle half of the chart (file:///...#selftest).
  if (location.hash === '#selftest') {
    var s = rows.querySelector('.seg.send'), t = trackBox();
    if (s && t) {
      var b = s.getBoundingClientRect(), y = t.top + t.height / 2;
      s.dispatchEvent(new MouseEvent('mousemove', { bubbles: true, clientX: b.left, clientY: b.top }));
      var track = rows.querySelector('.trk');
      track.dispatchEvent(new MouseEvent('mousedown', { bubbles: true, button: 0, clientX: t.left + t.width / 4, clientY: y }));
      window.dispatchEvent(new MouseEvent('mousemove', { clientX: t.left + t.width * 3 / 4, clientY: y }));
      window.dispatchEvent(new MouseEvent('mouseup', { clientX: t.left + t.width * 3 / 4, clientY: y }));
    }
  }
})();
</script>
)JS";

}  // namespace httptrace::analyzer
