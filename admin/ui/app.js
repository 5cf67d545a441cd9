// dlb dashboard. Follows api/events (Server-Sent Events, "pools" messages) and
// draws one card per service and one row per replica. Rates are derived here
// from the cumulative counters. No dependencies; every piece of data reaches
// the page through textContent, never as markup.
"use strict";

(() => {
  const RATE_SPAN_MS = 1000; // req/s is measured over at least this much server time
  const WINDOW_MS = 60000;   // "share of the last minute"
  const STALL_MS = 5000;     // no message for this long: treat the stream as down
  const LEAVE_MS = 600;      // fade-out of vanished rows and cards (see style.css)
  const STATES = new Set(["starting", "ready", "draining", "down"]);

  const $pools = document.getElementById("pools");
  const $placeholder = document.getElementById("placeholder");
  const $banner = document.getElementById("banner");
  const $conn = document.getElementById("conn");
  const $summary = document.getElementById("summary");
  const $updated = document.getElementById("updated");

  const byName = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  const fmtInt = new Intl.NumberFormat();
  const fmtClock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

  const views = new Map(); // pool name -> pool view
  let lastTime = null;     // server time of the last message, unix ms
  let seenFirst = false;   // rows created after the first message are animated in

  // ---- counter history -------------------------------------------------
  // A history is the list of [server time, cumulative requests] samples of one
  // replica, trimmed to the last minute (plus one older sample, so the window
  // is fully covered). If a counter goes backwards (replica or dlb restarted),
  // an offset keeps the series monotonic.

  function newHistory() {
    return { samples: [], lastRaw: 0, offset: 0 };
  }

  function record(h, t, raw) {
    if (raw < h.lastRaw) h.offset += h.lastRaw;
    h.lastRaw = raw;
    const total = h.offset + raw;
    const s = h.samples;
    if (s.length && s[s.length - 1][0] === t) s[s.length - 1][1] = total;
    else s.push([t, total]);
  }

  function trim(h, now) {
    const s = h.samples;
    const cut = now - WINDOW_MS;
    let i = 0;
    while (i + 1 < s.length && s[i + 1][0] <= cut) i++;
    if (i) s.splice(0, i);
  }

  // Requests in the last minute (interpolated at the window's start).
  function windowCount(h, now) {
    const s = h.samples;
    if (s.length < 2) return 0;
    const cut = now - WINDOW_MS;
    let start = s[0][1];
    if (s[0][0] < cut) {
      const [t0, v0] = s[0], [t1, v1] = s[1];
      start = v0 + (v1 - v0) * (cut - t0) / (t1 - t0);
    }
    return Math.max(0, s[s.length - 1][1] - start);
  }

  // Requests per second between the newest sample and the newest one at least
  // RATE_SPAN_MS older (or the oldest there is): change messages can arrive a
  // few milliseconds apart and a rate over such a gap would be noise.
  function rate(h) {
    const s = h.samples;
    const n = s.length;
    if (n < 2) return null;
    const [t1, v1] = s[n - 1];
    let j = n - 2;
    while (j > 0 && t1 - s[j][0] < RATE_SPAN_MS) j--;
    const dt = t1 - s[j][0];
    return dt > 0 ? (v1 - s[j][1]) * 1000 / dt : null;
  }

  // ---- small DOM helpers -----------------------------------------------

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function setText(e, text) {
    if (e.textContent !== text) e.textContent = text;
  }

  // A labelled value: the label shows on narrow cards, and is read aloud on
  // wide ones where the column headings show instead.
  function field(className, label) {
    const cell = el("div", className);
    cell.append(el("span", "lbl", label), " ");
    const val = el("span", "val");
    cell.append(val);
    return { cell, val };
  }

  function flash(e, className) {
    e.classList.remove(className);
    void e.offsetWidth; // restart the animation
    e.classList.add(className);
  }

  // New rows and cards are highlighted once; the class goes afterwards so
  // that moving the node later does not replay it.
  function enter(e) {
    e.classList.add("entering");
    e.addEventListener("animationend", (ev) => {
      if (ev.target === e) e.classList.remove("entering");
    });
  }

  function fadeOut(e) {
    e.classList.add("leaving");
    setTimeout(() => e.remove(), LEAVE_MS);
  }

  // Puts the given children of parent in this order, after the node "after"
  // (or first), without moving those already in place. Fading-out nodes are
  // left where they are.
  function order(parent, list, after) {
    let ref = after ? after.nextSibling : parent.firstChild;
    const skip = () => {
      while (ref && ref.classList && ref.classList.contains("leaving")) ref = ref.nextSibling;
    };
    skip();
    for (const e of list) {
      if (e === ref) {
        ref = ref.nextSibling;
        skip();
      } else {
        parent.insertBefore(e, ref);
      }
    }
  }

  // ---- formatting ------------------------------------------------------

  function fmtRate(r) {
    if (r === null || !isFinite(r)) return "–";
    if (r === 0) return "0";
    if (r < 10) return r.toFixed(1);
    return fmtInt.format(Math.round(r));
  }

  function fmtShare(x) {
    if (x === null) return "–";
    if (x > 0 && x < 0.005) return "<1%";
    return Math.round(x * 100) + "%";
  }

  // Rounds up to 1, 2 or 5 times a power of ten, so bar scales change seldom.
  function niceCeil(x) {
    if (!(x > 1)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(x)));
    for (const m of [1, 2, 5, 10]) if (x <= m * p) return m * p;
    return 10 * p;
  }

  // "host" is a comma-separated list; empty means any host.
  function hostList(h) {
    return String(h || "").split(",").map((s) => s.trim()).filter(Boolean);
  }

  function stateOf(s) {
    return STATES.has(s) ? s : "unknown";
  }

  // ---- pool cards ------------------------------------------------------

  function newPoolView(name) {
    const v = { name, replicas: new Map(), gone: new Map() };
    v.root = el("section", "pool");
    const head = el("header", "pool-head");
    const title = el("h2", "pool-name", name);
    title.title = name;
    v.rate = el("span", "pool-rate-val");
    const rateBox = el("div", "pool-rate");
    rateBox.append(v.rate, el("span", "unit", " req/s"));
    v.ready = el("span", "pool-ready");
    const meta = el("dl", "pool-meta");
    v.host = el("dd");
    v.path = el("dd", "mono");
    v.policy = el("dd", "mono");
    for (const [k, dd] of [["host", v.host], ["path", v.path], ["policy", v.policy]]) {
      const pair = el("div");
      pair.append(el("dt", "", k), dd);
      meta.append(pair);
    }
    head.append(title, rateBox, meta, v.ready);

    v.cols = el("div", "cols");
    v.cols.setAttribute("aria-hidden", "true");
    for (const [c, t] of [["c-id", "replica"], ["c-state", "state"], ["c-flight", "in flight"],
      ["c-rate", "req/s"], ["c-share", "share"], ["c-fail", "failures"]]) {
      v.cols.append(el("span", c, t));
    }
    v.cols.querySelector(".c-share").title = "share of this service's requests in the last minute";
    v.list = el("ul", "replicas");
    v.empty = el("p", "empty", "no replicas — requests get 503");

    const foot = el("footer", "pool-foot");
    v.minute = el("span", "minute");
    v.scale = el("span", "scale");
    v.stack = el("div", "stack");
    v.stack.setAttribute("aria-hidden", "true");
    foot.append(v.minute, v.scale, v.stack);

    // The queue, beside the replicas: requests waiting for a replica
    // with room, drawn as a tank that fills toward dlb.queue.max.
    v.queue = el("aside", "queue");
    v.queue.append(el("span", "q-title", "queue"));
    const tank = el("div", "tank");
    v.tankFill = el("span", "tank-fill");
    tank.append(v.tankFill);
    v.queued = el("span", "q-queued num");
    v.qmax = el("span", "q-max");
    v.shed = el("span", "q-shed");
    v.needed = el("span", "q-needed");
    v.queue.append(tank, v.queued, v.qmax, v.shed, v.needed);
    v.shedHistory = newHistory();

    const main = el("div", "pool-main");
    main.append(v.cols, v.list, v.empty);
    const body = el("div", "pool-body");
    body.append(main, v.queue);
    v.root.append(head, body, foot);
    return v;
  }

  function drawQueue(v, p, now) {
    const q = p.queue || {};
    const queued = Number(q.queued) || 0, max = Number(q.max) || 0;
    record(v.shedHistory, now, Math.max(0, Number(q.shed) || 0));
    trim(v.shedHistory, now);
    const shedRate = rate(v.shedHistory) || 0;
    const limited = (Array.isArray(p.replicas) ? p.replicas : []).some((r) => Number(r.limit) > 0);
    v.root.classList.toggle("has-queue", limited || queued > 0 || Number(q.shed) > 0);
    v.root.classList.toggle("queueing", queued > 0);
    v.root.classList.toggle("shedding", !!q.shedding);
    v.tankFill.style.transform = "scaleY(" + (max > 0 ? Math.min(1, queued / max) : 0).toFixed(4) + ")";
    setText(v.queued, fmtInt.format(queued) + " waiting");
    setText(v.qmax, "of " + fmtInt.format(max));
    setText(v.shed, shedRate > 0 ? fmtRate(shedRate) + " shed/s" : (q.shedding ? "shedding" : "none shed"));
    const need = Number(q.replicas_needed) || 0;
    setText(v.needed, need > 0 ? "needs " + need + " replicas" : "");
    v.needed.title = need > 0 ? "the arrival rate (" + fmtRate(Number(q.arrival_per_s) || 0) + " req/s) at what each replica serves now (" +
      fmtRate(Number(q.per_replica_per_s) || 0) + " req/s): scale the service to this many" : "";
  }

  function newReplicaView(r) {
    const v = { id: r.id, state: null };
    v.root = el("li", "replica");
    const id = el("div", "r-id");
    v.name = el("span", "r-name");
    v.addr = el("span", "r-addr");
    id.append(v.name, v.addr);
    const st = el("div", "r-state");
    v.badge = el("span", "badge");
    st.append(v.badge);
    const flight = field("r-flight num", "in flight");
    const fail = field("r-fail num", "failures");
    const share = field("r-share num", "share");
    const rateCell = el("div", "r-rate");
    const bar = el("span", "bar");
    v.fill = el("span", "fill");
    bar.append(v.fill);
    v.rate = el("span", "val");
    rateCell.append(el("span", "lbl", "req/s"), " ", bar, v.rate);
    v.flight = flight.val;
    v.fail = fail.val;
    v.share = share.val;
    v.failCell = fail.cell;
    v.seg = el("span", "seg");
    v.root.append(id, st, flight.cell, rateCell, share.cell, fail.cell);
    v.history = newHistory();
    return v;
  }

  function updatePool(v, p, now) {
    const reps = (Array.isArray(p.replicas) ? p.replicas : [])
      .filter((r) => r && typeof r.id === "string")
      .sort((a, b) => byName.compare(String(a.name || a.id), String(b.name || b.id)) || (a.id < b.id ? -1 : 1));

    // Rows that vanished fade out; their counts stay in the minute's total.
    const present = new Set(reps.map((r) => r.id));
    for (const [id, rv] of v.replicas) {
      if (present.has(id)) continue;
      v.replicas.delete(id);
      v.gone.set(id, rv.history);
      fadeOut(rv.root);
      rv.seg.remove();
    }

    let total = 0, ready = 0, top = 0;
    const rows = [];
    for (const r of reps) {
      let rv = v.replicas.get(r.id);
      if (!rv) {
        rv = newReplicaView(r);
        const h = v.gone.get(r.id); // came back within the minute
        if (h) { rv.history = h; v.gone.delete(r.id); }
        if (seenFirst) enter(rv.root);
        v.replicas.set(r.id, rv);
      }
      rv.data = r;
      record(rv.history, now, Math.max(0, Number(r.requests) || 0));
      trim(rv.history, now);
      rv.rps = rate(rv.history);
      rv.count = windowCount(rv.history, now);
      total += rv.rps || 0;
      top = Math.max(top, rv.rps || 0);
      if (r.state === "ready") ready++;
      rows.push(rv);
    }

    let goneCount = 0;
    for (const [id, h] of v.gone) {
      trim(h, now);
      const c = windowCount(h, now); // no new samples: once 0, it stays 0
      if (c > 0) goneCount += c;
      else v.gone.delete(id);
    }
    const minute = rows.reduce((a, rv) => a + rv.count, goneCount);
    const scale = niceCeil(top);

    for (const rv of rows) drawReplica(rv, scale, minute);
    drawQueue(v, p, now);
    order(v.list, rows.map((rv) => rv.root));

    setText(v.rate, reps.length && rows.every((rv) => rv.rps === null) ? "–" : fmtRate(total));
    const hl = hostList(p.host);
    setText(v.host, hl.length ? hl.join(", ") : "any host");
    v.host.classList.toggle("any", hl.length === 0);
    setText(v.path, String(p.path || "/"));
    setText(v.policy, String(p.policy || "–"));
    setText(v.ready, ready + "/" + reps.length + " ready");
    v.ready.classList.toggle("short", ready < reps.length);
    v.ready.classList.toggle("none", ready === 0);
    v.root.classList.toggle("is-empty", reps.length === 0);
    v.root.classList.toggle("no-ready", ready === 0);

    setText(v.minute, "last minute: " + fmtInt.format(Math.round(minute)) + " requests" +
      (goneCount >= 0.5 ? " (" + fmtInt.format(Math.round(goneCount)) + " by removed replicas)" : ""));
    setText(v.scale, reps.length ? "bars: 0–" + fmtInt.format(scale) + " req/s" : "");

    // One segment per replica, in row order, then the removed ones.
    const segs = rows.map((rv) => rv.seg);
    if (!v.goneSeg) v.goneSeg = el("span", "seg gone");
    segs.push(v.goneSeg);
    for (const rv of rows) {
      rv.seg.style.flexGrow = minute > 0 ? String(rv.count / minute) : "0";
      rv.seg.title = String(rv.data.name || rv.id);
    }
    v.goneSeg.style.flexGrow = minute > 0 ? String(goneCount / minute) : "0";
    v.goneSeg.title = "removed replicas";
    order(v.stack, segs);
    return { ready, count: reps.length, total };
  }

  function drawReplica(rv, scale, minute) {
    const r = rv.data;
    const state = stateOf(r.state);
    setText(rv.name, String(r.name || r.id.slice(0, 12)));
    rv.name.title = String(r.name || "") + "\n" + r.id;
    setText(rv.addr, String(r.address || ""));
    setText(rv.badge, String(r.state || "unknown"));
    if (rv.state !== state) {
      if (rv.state !== null) flash(rv.badge, "changed");
      rv.root.classList.remove("st-" + rv.state);
      rv.root.classList.add("st-" + state);
      rv.state = state;
    }
    const inFlight = Number(r.in_flight) || 0;
    const failures = Number(r.failures) || 0;
    const limit = Number(r.limit) || 0;
    setText(rv.flight, fmtInt.format(inFlight) + (limit > 0 ? "/" + fmtInt.format(limit) + (r.adaptive ? "~" : "") : ""));
    rv.flight.title = limit > 0 ? (r.adaptive ? "in flight / limit learned from its latency (dlb.max_inflight: auto)" : "in flight / dlb.max_inflight") : "";
    rv.root.classList.toggle("at-limit", limit > 0 && inFlight >= limit);
    setText(rv.fail, fmtInt.format(failures));
    rv.failCell.classList.toggle("bad", failures > 0);
    setText(rv.rate, fmtRate(rv.rps));
    rv.fill.style.transform = "scaleX(" + Math.min(1, (rv.rps || 0) / scale).toFixed(4) + ")";
    setText(rv.share, minute >= 0.5 ? fmtShare(rv.count / minute) : "–");
  }

  // ---- messages ---------------------------------------------------------

  function onPools(ev) {
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch (err) {
      console.warn("dlb: bad pools message", err);
      return;
    }
    armStall();
    retryDelay = 1000;
    setConnected(true);

    const now = typeof msg.time === "number" && isFinite(msg.time) ? msg.time : Date.now();
    if (lastTime !== null && now < lastTime) {
      // The server's clock went back: old samples would give nonsense rates.
      for (const v of views.values()) {
        v.gone.clear();
        for (const rv of v.replicas.values()) rv.history = newHistory();
      }
    }
    lastTime = now;

    const list = (Array.isArray(msg.pools) ? msg.pools : [])
      .filter((p) => p && typeof p.name === "string")
      .sort((a, b) => byName.compare(a.name, b.name));

    const names = new Set(list.map((p) => p.name));
    for (const [name, v] of views) {
      if (!names.has(name)) {
        views.delete(name);
        fadeOut(v.root);
      }
    }

    let ready = 0, count = 0, total = 0;
    const cards = [];
    for (const p of list) {
      let v = views.get(p.name);
      if (!v) {
        v = newPoolView(p.name);
        if (seenFirst) enter(v.root);
        views.set(p.name, v);
      }
      const s = updatePool(v, p, now);
      ready += s.ready;
      count += s.count;
      total += s.total;
      cards.push(v.root);
    }
    order($pools, cards, $placeholder);

    $placeholder.hidden = list.length > 0;
    setText($placeholder, "No services yet. dlb balances Compose services labelled dlb.enable=true.");
    const svc = list.length + (list.length === 1 ? " service" : " services");
    setText($summary, svc + " · " + ready + "/" + count + " replicas ready · " + fmtRate(total) + " req/s");
    setText($updated, "updated " + fmtClock.format(new Date(now)));
    document.title = "dlb · " + ready + "/" + count + " ready";
    seenFirst = true;
  }

  // ---- connection -------------------------------------------------------
  // EventSource reconnects by itself after a dropped stream. It gives up for
  // good on an HTTP error or a wrong content type, and a stream can also go
  // quiet without closing; in both cases a new EventSource is made after a
  // growing delay.

  // ---- certificates ----------------------------------------------------
  // api/certificates (only there with an HTTPS listener) is polled apart
  // from the stream: certificates change in minutes, not milliseconds.

  const CERTS_MS = 5000;
  const $certs = document.getElementById("certs");
  const $certRows = document.getElementById("cert-rows");
  const fmtDate = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  async function pollCerts() {
    try {
      const res = await fetch("api/certificates", { cache: "no-store" });
      const hosts = res.ok ? await res.json() : [];
      const rows = (Array.isArray(hosts) ? hosts : []).map((h) => {
        const tr = document.createElement("tr");
        cell(tr, String(h.host || ""), "mono");
        cell(tr, String(h.state || "")).dataset.state = String(h.state || "");
        cell(tr, h.issuer ? String(h.issuer) : "–");
        cell(tr, h.not_after ? fmtDate.format(new Date(h.not_after)) : "–");
        cell(tr, String(h.last_error || h.reason || ""), "err");
        return tr;
      });
      $certRows.replaceChildren(...rows);
      $certs.hidden = rows.length === 0;
    } catch (err) {
      console.warn("dlb: api/certificates", err);
    }
    setTimeout(pollCerts, CERTS_MS);
  }
  pollCerts();

  let es = null;
  let stallTimer = 0;
  let retryTimer = 0;
  let retryDelay = 1000;
  let connected = false;

  function connect() {
    clearTimeout(retryTimer);
    if (es) es.close();
    es = new EventSource("api/events");
    es.addEventListener("pools", onPools);
    es.onerror = () => {
      setConnected(false);
      if (es.readyState === EventSource.CLOSED) reconnectLater();
    };
    armStall();
  }

  function reconnectLater() {
    if (es) es.close();
    clearTimeout(stallTimer);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 15000);
  }

  function armStall() {
    clearTimeout(stallTimer);
    stallTimer = setTimeout(() => {
      setConnected(false);
      reconnectLater();
    }, STALL_MS);
  }

  function setConnected(ok) {
    if (ok === connected && seenFirst) return;
    connected = ok;
    document.body.classList.toggle("stale", !ok && seenFirst);
    $conn.dataset.state = ok ? "live" : seenFirst ? "down" : "connecting";
    setText($conn, ok ? "live" : seenFirst ? "disconnected" : "connecting…");
    if (ok) {
      $banner.hidden = true;
    } else if (seenFirst || es) {
      const since = lastTime !== null ? " Last update " + fmtClock.format(new Date(lastTime)) + "; the figures below are frozen." : "";
      setText($banner, "Disconnected from dlb — retrying…" + since);
      $banner.hidden = false;
    }
  }

  connect();
})();
