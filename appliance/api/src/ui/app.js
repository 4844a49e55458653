"use strict";
// headcount facilities dashboard. Plain DOM code: the page runs under a strict
// CSP (no inline code, no eval, no data: images), so everything is built with
// createElement/textContent and never from HTML strings.
(() => {
  const SVGNS = "http://www.w3.org/2000/svg";
  const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
  const NAME_RE = /^[A-Za-z0-9_-]+$/;
  const MINUTE = 60000;
  const DAY = 24 * 60 * MINUTE;
  const HEATMAP_EVERY = 15 * MINUTE; // four weeks of data hardly moves
  const SESSION_ENDED = "Your session has ended; log in again";

  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  const pad = (n) => String(n).padStart(2, "0");
  const round3 = (v) => Math.round(v * 1000) / 1000;
  const r1 = (v) => Math.round(v * 10) / 10;
  const clamp01 = (v) => Math.min(1, Math.max(0, v));
  const human = (w) => String(w).replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());

  // Session state lives in memory only (the CSRF token is never persisted).
  const S = {
    me: null, csrf: null, dash: null, fmt: null, es: null, esRetry: null, timer: null,
    chartsAt: 0, heatAt: 0, anomalies: [], dayData: null, seq: { day: 0, flow: 0, heat: 0 },
    emptyText: new Map(),
  };
  // Editor state: items are {kind: "zone"|"line", name, pts: [[x, y]], capacity, in}.
  const ED = {
    cam: null, items: [], draw: null, drag: null, sel: null, dirty: false, seq: 0,
    invalid: new Set(), px: { x: 1, y: 1 }, cursor: [0.5, 0.5], focus: false,
  };

  // ---------- DOM helpers ----------
  function h(tag, props = {}, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (v == null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k === "data") Object.assign(e.dataset, v);
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    e.append(...kids.flat(2).filter((c) => c != null && c !== false));
    return e;
  }
  function s(tag, attrs = {}, ...kids) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs)) if (v != null) e.setAttribute(k, String(v));
    e.append(...kids.flat().filter((c) => c != null));
    return e;
  }
  // Sets a section's explanatory text; hidden when there is nothing to explain.
  function setEmpty(id, text) {
    const e = $(id);
    e.textContent = text || "";
    e.hidden = !text;
  }

  // ---------- API ----------
  class ApiError extends Error {
    constructor(status, message, data) {
      super(message);
      this.status = status;
      this.data = data;
    }
  }

  async function api(path, { method = "GET", body, auth = true } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && S.csrf) headers["X-CSRF-Token"] = S.csrf;
    let res;
    try {
      res = await fetch(path, {
        method, headers, credentials: "same-origin", cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, `the appliance cannot be reached (${e.message})`);
    }
    const text = res.status === 204 ? "" : await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    // Any 401 after login means the cookie expired or was revoked.
    if (res.status === 401 && auth) sessionEnded();
    if (!res.ok) {
      throw new ApiError(res.status, (data && data.error) || `${res.status} ${res.statusText}`, data);
    }
    return data;
  }

  // ---------- views and session ----------
  function show(view) {
    $("loading").hidden = true;
    $("login-view").hidden = view !== "login";
    $("norole-view").hidden = view !== "norole";
    $("dashboard").hidden = view !== "dashboard";
    $("logout").hidden = view === "login";
    $("whoami").hidden = view === "login";
    $("live-status").hidden = view !== "dashboard";
  }

  function showLogin(message) {
    teardown();
    show("login");
    $("login-error").textContent = message || "";
    $("token").focus();
  }

  function sessionEnded() {
    if (S.me) showLogin(SESSION_ENDED);
  }

  async function enter(session) {
    S.me = { name: session.name, role: session.role };
    S.csrf = session.csrf;
    S.fmt = formatters("UTC");
    $("whoami").textContent = `${session.name} · ${session.role}`;
    if (session.role !== "admin" && session.role !== "facilities") {
      $("norole-message").textContent =
        `You are logged in, but the ${session.role} role has no dashboard. Use the API or log out.`;
      show("norole");
      $("logout").focus();
      return;
    }
    show("dashboard");
    $("editor").hidden = session.role !== "admin";
    $("main").focus(); // the login form that had focus is gone
    connectLive();
    await refreshCharts(true);
    S.timer = setInterval(() => refreshCharts(false), MINUTE);
  }

  // Forgets everything shown, so the next user never sees the previous one's data.
  function teardown() {
    closeLive();
    clearInterval(S.timer);
    Object.assign(S, { me: null, csrf: null, dash: null, timer: null, chartsAt: 0, heatAt: 0, anomalies: [], anomaliesJson: null, dayData: null });
    for (const k of Object.keys(S.seq)) S.seq[k]++;
    Object.assign(ED, { cam: null, items: [], draw: null, drag: null, sel: null, dirty: false, invalid: new Set() });
    ED.seq++;
    VAL.id = null;
    setValidating(false);
    $("validate-result").textContent = "";
    $("validate-error").textContent = "";
    for (const id of ["occupancy-cards", "flow-body", "day-svg", "heatmap-table", "heatmap-legend", "anomaly-list",
      "health-body", "shape-list", "editor-camera", "day-subject", "heatmap-subject", "editor-canvas", "editor-errors"]) {
      $(id).replaceChildren();
    }
    for (const id of ["whoami", "site-name", "occupancy-updated", "day-summary", "flow-updated", "site-status",
      "anomaly-count", "anomalies-error", "anomalies-status", "editor-status", "snapshot-note", "draw-hint", "page-error"]) {
      $(id).textContent = "";
    }
    for (const [id, text] of S.emptyText) setEmpty(id, text);
    const img = $("editor-snapshot");
    img.removeAttribute("src");
    img.hidden = true;
    $("editor").hidden = true;
  }

  async function onLogin(e) {
    e.preventDefault();
    const input = $("token");
    const err = $("login-error");
    const button = e.target.querySelector("button[type=submit]");
    if (!input.value) {
      err.textContent = "Enter your API token.";
      input.focus();
      return;
    }
    err.textContent = "";
    button.disabled = true;
    try {
      const session = await api("/api/v1/login", { method: "POST", body: { token: input.value }, auth: false });
      input.value = "";
      await enter(session);
    } catch (ex) {
      err.textContent = ex.status === 401 ? `Log in failed: ${ex.message}` : ex.message;
      input.select();
    } finally {
      button.disabled = false;
    }
  }

  async function logout() {
    closeLive();
    let message = "";
    try {
      await api("/api/v1/logout", { method: "POST", auth: false });
    } catch (e) {
      if (e.status !== 401) message = `Logging out failed: ${e.message}`;
    }
    showLogin(message);
  }

  // ---------- dashboard description ----------
  function formatters(tz) {
    const make = (opts) => {
      try {
        return new Intl.DateTimeFormat("en-GB", { ...opts, timeZone: tz });
      } catch {
        return new Intl.DateTimeFormat("en-GB", { ...opts, timeZone: "UTC" });
      }
    };
    return {
      time: make({ hour: "2-digit", minute: "2-digit", hourCycle: "h23" }),
      sec: make({ hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }),
      date: make({ year: "numeric", month: "2-digit", day: "2-digit" }),
      long: make({ weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }),
    };
  }
  function fmtWhen(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return "–";
    const today = S.fmt.date.format(d) === S.fmt.date.format(new Date());
    return today ? `today ${S.fmt.time.format(d)}` : S.fmt.long.format(d);
  }

  async function loadDashboard() {
    const d = await api("/api/v1/dashboard");
    if (!S.me) return;
    if (!S.dash || S.dash.timezone !== d.timezone) S.fmt = formatters(d.timezone);
    S.dash = d;
    $("site-name").textContent = d.site;
    document.title = `headcount · ${d.site}`;
    fillSubjects($("day-subject"));
    fillSubjects($("heatmap-subject"));
    if (S.me.role === "admin") {
      const cam = fillCameras();
      if (cam !== ED.cam) loadCamera(cam);
    }
    fillValidationLines();
    fillExport();
  }

  // ---------- on-site validation: taps against a line's count ----------
  const VAL = { id: null, timer: null };

  function fillValidationLines() {
    const lines = S.dash.lines || [];
    const canValidate = S.me.role === "admin" || S.me.role === "facilities";
    $("validate").hidden = !canValidate || lines.length === 0;
    const sel = $("validate-line");
    const keep = sel.value;
    sel.replaceChildren(...lines.map((l) => h("option", { value: l.line, text: l.line })));
    if (lines.some((l) => l.line === keep)) sel.value = keep;
  }

  function showValidation(r) {
    const pct = (v) => `${v > 0 ? "+" : ""}${(v * 100).toFixed(1)} %`;
    const parts = [`${Math.round(r.seconds)} s: you tapped ${r.taps_in} in, ${r.taps_out} out; ` +
      `the appliance counted ${r.counted_in} in, ${r.counted_out} out`];
    if (r.error != null) parts.push(`error ${pct(r.error)}`);
    if (r.interval) parts.push(`95 % interval ${pct(r.interval[0])} to ${pct(r.interval[1])}`);
    else if (r.error != null) parts.push("tap for at least a minute for an interval");
    $("validate-result").textContent = parts.join("; ") + (r.finished ? " (finished, recorded in the audit log)" : "");
  }

  function setValidating(on) {
    $("validate-start").disabled = on;
    $("validate-line").disabled = on;
    for (const id of ["validate-in", "validate-out", "validate-finish"]) $(id).disabled = !on;
    clearInterval(VAL.timer);
    VAL.timer = on ? setInterval(() => validationCall("GET", ""), 2000) : null;
  }

  async function validationCall(method, suffix, body) {
    if (VAL.id == null) return;
    try {
      const r = await api(`/api/v1/validations/${enc(VAL.id)}${suffix}`, { method, body });
      showValidation(r);
      $("validate-error").textContent = "";
      if (r.finished) {
        VAL.id = null;
        setValidating(false);
      }
    } catch (e) {
      $("validate-error").textContent = `Could not record: ${e.message}`;
      if (e.status === 404) {
        VAL.id = null;
        setValidating(false);
      }
    }
  }

  async function startValidation() {
    try {
      const r = await api("/api/v1/validations", { method: "POST", body: { line: $("validate-line").value } });
      VAL.id = r.id;
      showValidation(r);
      $("validate-error").textContent = "";
      setValidating(true);
    } catch (e) {
      $("validate-error").textContent = `Could not start: ${e.message}`;
    }
  }

  function wireValidation() {
    $("validate-start").addEventListener("click", startValidation);
    $("validate-in").addEventListener("click", () => validationCall("POST", "/taps", { direction: "in" }));
    $("validate-out").addEventListener("click", () => validationCall("POST", "/taps", { direction: "out" }));
    $("validate-finish").addEventListener("click", () => validationCall("POST", "/finish"));
  }

  // ---------- CSV download of the published aggregates ----------
  function fillExport() {
    const spaces = (S.dash.spaces || []).map((x) => x.space);
    $("export").hidden = spaces.length === 0;
    const sel = $("export-space");
    const keep = sel.value;
    sel.replaceChildren(...spaces.map((name) => h("option", { value: name, text: name })));
    if (spaces.includes(keep)) sel.value = keep;
    exportLink();
  }

  // The link is the API's CSV for the chosen space and range; the session
  // cookie authorises it, as any GET of the page.
  function exportLink() {
    const to = new Date();
    const from = new Date(to.getTime() - Number($("export-days").value) * DAY);
    const query = `space=${enc($("export-space").value)}&bucket=${enc($("export-bucket").value)}` +
      `&from=${enc(from.toISOString())}&to=${enc(to.toISOString())}&format=csv`;
    const link = $("export-csv");
    link.href = `/api/v1/aggregates?${query}`;
    link.download = `${$("export-space").value}-${$("export-bucket").value}.csv`;
  }

  function wireExport() {
    for (const id of ["export-space", "export-bucket", "export-days"]) $(id).addEventListener("change", exportLink);
    // Now, not when the page loaded: the range ends at the click.
    $("export-csv").addEventListener("click", exportLink);
  }

  function fillSubjects(sel) {
    const keep = sel.value;
    const groups = [
      ["Spaces", (S.dash.spaces || []).map((x) => ["space:" + x.space, x.space])],
      ["Zones", (S.dash.zones || []).map((x) => ["zone:" + x.zone, x.zone])],
    ];
    sel.replaceChildren(...groups.filter(([, items]) => items.length).map(([label, items]) =>
      h("optgroup", { label }, items.map(([value, text]) => h("option", { value, text })))));
    if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
    sel.disabled = sel.options.length === 0;
  }
  const subjectName = (v) => v.slice(v.indexOf(":") + 1);
  const subjectQuery = (v) => `${v.startsWith("space:") ? "space" : "zone"}=${enc(subjectName(v))}`;
  // Today's chart: 5-minute means, or 15 for a zone below k people.
  function bucketMsOf(v) {
    const zone = v.startsWith("zone:") && (S.dash.zones || []).find((x) => x.zone === subjectName(v));
    return zone && zone.history_bucket === "15m" ? 900000 : 300000;
  }
  function capacityOf(v) {
    const name = subjectName(v);
    const found = v.startsWith("space:")
      ? (S.dash.spaces || []).find((x) => x.space === name)
      : (S.dash.zones || []).find((x) => x.zone === name);
    return found && found.capacity != null ? found.capacity : null;
  }

  // ---------- live events ----------
  function setLive(state) {
    const el = $("live-status");
    el.dataset.state = state;
    el.textContent = { live: "Live", connecting: "Connecting…", reconnecting: "Reconnecting…" }[state];
  }
  function closeLive() {
    clearTimeout(S.esRetry);
    if (S.es) S.es.close();
    S.es = null;
  }
  function connectLive() {
    closeLive();
    const es = new EventSource("/api/v1/live");
    S.es = es;
    setLive("connecting");
    es.onopen = () => setLive("live");
    es.onerror = () => {
      if (S.es !== es) return;
      setLive("reconnecting");
      if (es.readyState !== EventSource.CLOSED) return; // the browser retries by itself
      // The browser gave up (an HTTP error such as 401): a 401 here ends the session,
      // anything else is retried a little later.
      api("/api/v1/session").catch((e) => e).then((r) => {
        if (r instanceof ApiError && r.status === 401) return;
        if (S.es === es) S.esRetry = setTimeout(() => S.es === es && connectLive(), 5000);
      });
    };
    const handlers = { occupancy: renderOccupancy, health: renderHealth, anomalies: renderAnomalies };
    for (const [name, render] of Object.entries(handlers)) {
      es.addEventListener(name, (ev) => {
        if (S.es !== es) return;
        let data;
        try { data = JSON.parse(ev.data); } catch { return; }
        setLive("live");
        render(data);
      });
    }
  }

  // ---------- occupancy cards ----------
  const LEVEL_TEXT = { ok: "Below capacity", warn: "Near capacity", over: "Over capacity" };
  function levelOf(n, cap) {
    if (n == null || cap == null) return "unknown";
    if (n > cap) return "over";
    return n >= 0.8 * cap ? "warn" : "ok";
  }

  function renderOccupancy(o) {
    const grid = $("occupancy-cards");
    const items = [
      ...(o.spaces || []).map((x) => ["space", x.space, x]),
      ...(o.zones || []).map((x) => ["zone", x.zone, x]),
    ];
    const old = new Map([...grid.children].map((c) => [`${c.dataset.kind}:${c.dataset.key}`, c]));
    grid.replaceChildren(...items.map(([kind, key, it]) => {
      const card = old.get(`${kind}:${key}`) || newCard(kind, key, it);
      fillCard(card, it);
      return card;
    }));
    setEmpty("occupancy-empty", items.length ? "" : "No spaces or zones are configured.");
    const at = new Date(o.at);
    $("occupancy-updated").textContent = Number.isNaN(at.getTime()) ? "" : `Last updated ${S.fmt.sec.format(at)}`;
  }

  function newCard(kind, key, it) {
    const sub = kind === "space" ? `Space · counted by ${it.method}` : `Zone · camera ${it.camera}`;
    const correctable = kind === "space" && String(it.method).startsWith("entrances");
    return h("article", { class: "card", data: { kind, key } },
      h("h3", { class: "card-title", text: key }),
      h("p", { class: "card-sub", text: sub }),
      h("p", { class: "card-figure" },
        h("span", { class: "occupancy-value" }), " ", h("span", { class: "occupancy-capacity" })),
      h("div", { class: "bar", "aria-hidden": "true" }, h("div", { class: "bar-fill" })),
      h("p", { class: "level-label" }),
      h("p", { class: "card-updated" }),
      correctable && correctionForm(key));
  }

  // A count kept at the doors drifts when a door miscounts: whoever sees the
  // room sets it right, with a reason (both go to the audit log).
  function correctionForm(space) {
    const id = (what) => `correct-${what}-${space}`;
    const status = h("p", { class: "status correct-status", role: "status" });
    const submit = async (event) => {
      event.preventDefault();
      const form = event.currentTarget;
      const set = Number(form.elements.count.value);
      try {
        const r = await api(`/api/v1/spaces/${enc(space)}/adjust`, {
          method: "POST", body: { set, reason: form.elements.reason.value },
        });
        status.textContent = `Set from ${r.before} to ${r.occupancy}.`;
        form.reset();
      } catch (e) {
        status.textContent = `Not changed: ${e.message}`;
      }
    };
    return h("details", { class: "correct" },
      h("summary", { text: "Correct the count" }),
      h("form", { onsubmit: submit },
        h("label", { for: id("count"), text: "People inside now" }),
        h("input", { id: id("count"), name: "count", type: "number", min: "0", step: "1", required: true }),
        h("label", { for: id("reason"), text: "Reason" }),
        h("input", { id: id("reason"), name: "reason", type: "text", maxlength: "200", required: true }),
        h("button", { type: "submit", text: "Set" })),
      status);
  }

  function fillCard(card, it) {
    const n = it.occupancy == null ? null : it.occupancy;
    const cap = it.capacity == null ? null : it.capacity;
    const level = levelOf(n, cap);
    card.dataset.level = level;
    card.querySelector(".occupancy-value").textContent = n == null ? "–" : String(Math.round(n));
    card.querySelector(".occupancy-capacity").textContent = cap == null ? "" : `of ${cap}`;
    const pct = n != null && cap ? Math.min(100, (n / cap) * 100) : 0;
    card.querySelector(".bar-fill").style.width = `${pct}%`;
    card.querySelector(".level-label").textContent =
      LEVEL_TEXT[level] || (n == null ? "No data yet" : "No capacity set");
    const at = new Date(it.updated_at);
    card.querySelector(".card-updated").textContent =
      it.updated_at && !Number.isNaN(at.getTime()) ? `Updated ${S.fmt.sec.format(at)}` : "";
  }

  // ---------- camera health ----------
  function fmtAge(ms) {
    if (ms == null) return "no frame yet";
    if (ms < 10000) return `${(ms / 1000).toFixed(1)} s ago`;
    if (ms < MINUTE) return `${Math.round(ms / 1000)} s ago`;
    if (ms < 3600000) return `${Math.floor(ms / MINUTE)} min ago`;
    if (ms < 86400000) return `${Math.floor(ms / 3600000)} h ago`;
    return `${Math.floor(ms / 86400000)} d ago`;
  }

  function renderHealth(hd) {
    const cams = hd.cameras || [];
    $("health-body").replaceChildren(...cams.map((c) => h("tr", { data: { camera: c.camera } },
      h("th", { scope: "row", text: c.camera }),
      h("td", { class: "camera-state" }, h("span", { class: `state state-${c.state}`, text: c.state })),
      h("td", { class: "camera-reason", text: c.reason || "–" }),
      h("td", { class: "frame-age", text: fmtAge(c.last_frame_age_ms) }),
      h("td", { class: c.behind ? "analysis behind" : "analysis", text: c.analysis || "–" }),
      h("td", { class: "num frames", text: Number(c.frames_analysed || 0).toLocaleString("en-GB") }))));
    setEmpty("health-empty", cams.length ? "" : "No cameras are configured.");
    const st = $("site-status");
    st.textContent = hd.status ? `Site status: ${hd.status}` : "";
    st.dataset.status = hd.status || "";
  }

  // ---------- anomalies ----------
  function renderAnomalies(a) {
    const json = JSON.stringify(a.anomalies || []);
    if (json === S.anomaliesJson) return; // unchanged: keep the DOM (and focus) as it is
    S.anomaliesJson = json;
    S.anomalies = (a.anomalies || []).slice()
      .sort((x, y) => Date.parse(y.started_at) - Date.parse(x.started_at));
    drawAnomalies();
  }

  function drawAnomalies() {
    const active = document.activeElement;
    const focused = active && active.closest && active.closest("[data-anomaly-id]");
    const focusedId = focused ? focused.dataset.anomalyId : null;
    $("anomaly-list").replaceChildren(...S.anomalies.map(anomalyItem));
    setEmpty("anomalies-empty", S.anomalies.length ? "" : "No open anomalies");
    $("anomaly-count").textContent = S.anomalies.length ? `(${S.anomalies.length})` : "";
    // Rebuilding the list must not throw a keyboard user's focus away.
    if (focusedId) {
      const li = $("anomaly-list").querySelector(`[data-anomaly-id="${CSS.escape(focusedId)}"]`);
      const btn = li && li.querySelector("button.ack:not([hidden])");
      if (btn) btn.focus();
      else if (li) li.focus();
    }
  }

  function anomalyItem(x) {
    const id = String(x.id);
    const sev = String(x.severity || "info");
    const acked = x.acknowledged_at != null;
    const textId = `anomaly-${id}-text`;
    const btn = h("button", { type: "button", class: "ack", "aria-describedby": textId, hidden: acked, disabled: acked },
      "Acknowledge");
    btn.addEventListener("click", () => acknowledge(x, btn));
    return h("li", { class: `anomaly sev-${sev}`, tabindex: "-1", data: { anomalyId: id, type: x.type } },
      h("div", { class: "anomaly-head" },
        h("span", { class: `badge sev-${sev}`, text: human(sev) }),
        h("strong", { class: "anomaly-type", text: human(x.type) }),
        h("span", { class: "anomaly-subject", text: `${x.subject_type} ${x.subject}` })),
      h("p", { class: "anomaly-explanation", id: textId, text: x.explanation }),
      h("p", { class: "anomaly-meta" }, "Started ",
        h("time", { class: "anomaly-started", datetime: x.started_at, text: fmtWhen(x.started_at) })),
      acked ? h("p", { class: "acked", text: `Acknowledged by ${x.acknowledged_by || "someone"}` +
        (x.acknowledged_at ? ` (${fmtWhen(x.acknowledged_at)})` : "") }) : null,
      btn);
  }

  async function acknowledge(x, btn) {
    btn.disabled = true;
    btn.textContent = "Acknowledging…";
    $("anomalies-error").textContent = "";
    try {
      const updated = await api(`/api/v1/anomalies/${enc(x.id)}/ack`, { method: "POST" });
      const i = S.anomalies.findIndex((y) => y.id === x.id);
      if (i >= 0 && updated) S.anomalies[i] = updated;
      drawAnomalies();
      $("anomalies-status").textContent = `Acknowledged: ${human(x.type)} on ${x.subject}`;
    } catch (e) {
      if (e.status === 401) return;
      $("anomalies-error").textContent = `Could not acknowledge: ${e.message}`;
      btn.disabled = false;
      btn.textContent = "Acknowledge";
    }
  }

  // ---------- charts (fetched, at most once a minute) ----------
  async function refreshCharts(force) {
    if (!S.me) return;
    if (!force && (document.hidden || Date.now() - S.chartsAt < MINUTE - 2000)) return;
    S.chartsAt = Date.now();
    // today_start moves at the site's midnight, so re-read the description a day later.
    if (!S.dash || Date.now() - Date.parse(S.dash.today_start) >= 86400000) {
      try {
        await loadDashboard();
        $("page-error").textContent = "";
      } catch (e) {
        if (e.status !== 401) $("page-error").textContent = `Could not load the dashboard: ${e.message}`;
        if (!S.dash) return;
      }
    }
    const heat = force || Date.now() - S.heatAt >= HEATMAP_EVERY;
    await Promise.all([loadDay(), loadFlow(), heat ? loadHeatmap() : null]);
  }

  async function loadDay() {
    const subj = $("day-subject").value;
    const seq = ++S.seq.day;
    if (!subj) {
      S.dayData = null;
      $("day-svg").replaceChildren();
      setEmpty("day-empty", "No spaces or zones are configured.");
      return;
    }
    try {
      const bucket = bucketMsOf(subj) === 900000 ? "15m" : "5m";
      const d = await api(`/api/v1/occupancy/history?${subjectQuery(subj)}&from=${enc(S.dash.today_start)}&bucket=${bucket}`);
      if (seq !== S.seq.day) return;
      S.dayData = { subj, buckets: d.buckets || [] };
      drawDay();
    } catch (e) {
      if (seq === S.seq.day && e.status !== 401) setEmpty("day-empty", `Could not load today's occupancy: ${e.message}`);
    }
  }

  function niceStep(max) {
    const raw = max / 4;
    const p = 10 ** Math.floor(Math.log10(raw));
    return [1, 2, 5, 10].map((m) => m * p).find((v) => v >= raw);
  }

  function drawDay() {
    const box = $("day-svg");
    if (!S.dayData || !S.dash) return;
    const { subj, buckets } = S.dayData;
    const name = subjectName(subj);
    const width = bucketMsOf(subj);
    const W = Math.max(300, Math.round(box.clientWidth || 640));
    const H = 240, L = 40, R = 14, T = 14, B = 26;
    const t0 = Date.parse(S.dash.today_start), t1 = t0 + 86400000;
    const pts = buckets
      .filter((b) => b.mean_occupancy != null && b.samples !== 0)
      .map((b) => [Date.parse(b.start) + width / 2, b.mean_occupancy, b.max_occupancy])
      .filter(([t]) => t >= t0 && t <= t1);
    const cap = capacityOf(subj);
    const step = niceStep(Math.max(1, cap || 0, ...pts.map((p) => p[1])));
    const top = step * Math.ceil(Math.max(1, cap || 0, ...pts.map((p) => p[1])) / step);
    const x = (t) => r1(L + ((t - t0) / (t1 - t0)) * (W - L - R));
    const y = (v) => r1(T + (1 - v / top) * (H - T - B));
    const peak = pts.reduce((a, p) => (!a || p[1] > a[1] ? p : a), null);
    const last = pts[pts.length - 1];
    const summary = pts.length
      ? `${name} today: latest ${r1(last[1])} people (${width / 60000}-minute mean), peak ${r1(peak[1])} at ${S.fmt.time.format(new Date(peak[0] - width / 2))}` +
        (cap != null ? `, capacity ${cap}.` : ".")
      : `No occupancy recorded today for ${name} yet.`;
    const kids = [s("title", { id: "day-svg-title" }, summary)];
    for (let v = 0; v <= top; v += step) {
      kids.push(s("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }),
        s("text", { class: "axis", x: L - 6, y: y(v) + 4, "text-anchor": "end" }, String(v)));
    }
    const every = W < 520 ? 6 : 3;
    for (let k = 0; k <= 24; k += every) {
      const t = t0 + k * 3600000;
      kids.push(s("line", { class: "tick", x1: x(t), x2: x(t), y1: H - B, y2: H - B + 4 }));
      if (k < 24) kids.push(s("text", { class: "axis", x: x(t), y: H - 6, "text-anchor": "middle" }, S.fmt.time.format(new Date(t))));
    }
    // Split the series where buckets are missing, so gaps stay visible.
    const segs = [];
    for (const p of pts) {
      const seg = segs[segs.length - 1];
      if (seg && p[0] - seg[seg.length - 1][0] <= 2 * width) seg.push(p);
      else segs.push([p]);
    }
    for (const seg of segs) {
      const line = seg.map(([t, v]) => `${x(t)},${y(v)}`).join(" ");
      const a = x(seg[0][0]), b = x(seg[seg.length - 1][0]);
      kids.push(s("polygon", { class: "area", points: `${a},${y(0)} ${line} ${b},${y(0)}` }),
        seg.length > 1 ? s("polyline", { class: "mean", points: line })
          : s("circle", { class: "dot", cx: a, cy: y(seg[0][1]), r: 2.5 }));
    }
    if (cap != null) {
      kids.push(s("line", { class: "capacity", x1: L, x2: W - R, y1: y(cap), y2: y(cap) }),
        s("text", { class: "capacity-label", x: W - R - 4, y: y(cap) - 5, "text-anchor": "end" }, `capacity ${cap}`));
    }
    const now = Date.now();
    if (now > t0 && now < t1) kids.push(s("line", { class: "now", x1: x(now), x2: x(now), y1: T, y2: H - B }));
    kids.push(s("line", { class: "axis-line", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    box.replaceChildren(s("svg", {
      class: "daychart", viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-labelledby": "day-svg-title",
    }, kids));
    setEmpty("day-empty", pts.length ? "" : summary);
    $("day-summary").textContent = pts.length ? summary : "";
  }

  async function loadFlow() {
    const lines = S.dash.lines || [];
    const seq = ++S.seq.flow;
    $("flow-table").hidden = lines.length === 0;
    if (!lines.length) {
      $("flow-body").replaceChildren();
      setEmpty("flow-empty", "No counting lines are configured.");
      return;
    }
    const from = enc(S.dash.today_start);
    const results = await Promise.all(lines.map((l) =>
      api(`/api/v1/flow?line=${enc(l.line)}&from=${from}&bucket=1h`).catch((e) => e)));
    if (seq !== S.seq.flow || results.some((r) => r instanceof ApiError && r.status === 401)) return;
    const sum = (r, k) => (r[k] != null ? r[k] : (r.buckets || []).reduce((a, b) => a + (b[k] || 0), 0));
    $("flow-body").replaceChildren(...lines.map((l, i) => {
      const r = results[i];
      const bad = r instanceof Error;
      const cell = (k) => h("td", { class: `num ${k}`, text: bad ? "–" : String(sum(r, k)), title: bad ? r.message : null });
      return h("tr", { data: { line: l.line } },
        h("th", { scope: "row", text: l.line }), h("td", { text: l.camera }), cell("entries"), cell("exits"));
    }));
    const failed = results.filter((r) => r instanceof Error);
    setEmpty("flow-empty", failed.length ? `Could not load ${failed.length} line(s): ${failed[0].message}` : "");
    $("flow-updated").textContent = `Since midnight (site time); updated ${S.fmt.time.format(new Date())}`;
  }

  async function loadHeatmap() {
    const subj = $("heatmap-subject").value;
    const seq = ++S.seq.heat;
    S.heatAt = Date.now();
    if (!subj) {
      $("heatmap-table").replaceChildren();
      $("heatmap-legend").replaceChildren();
      setEmpty("heatmap-empty", "No spaces or zones are configured.");
      return;
    }
    try {
      const d = await api(`/api/v1/occupancy/heatmap?${subjectQuery(subj)}&weeks=4`);
      if (seq === S.seq.heat) drawHeatmap(subjectName(subj), d);
    } catch (e) {
      if (seq === S.seq.heat && e.status !== 401) setEmpty("heatmap-empty", `Could not load the heatmap: ${e.message}`);
    }
  }

  // Sequential light-to-dark blue scale; text is black or white, whichever contrasts more (>= 4.5:1).
  const HEAT = [[239, 246, 255], [191, 219, 254], [96, 165, 250], [37, 99, 235], [30, 58, 138]];
  function heatColour(f) {
    const pos = clamp01(f) * (HEAT.length - 1);
    const i = Math.min(HEAT.length - 2, Math.floor(pos));
    const rgb = HEAT[i].map((c, k) => Math.round(c + (HEAT[i + 1][k] - c) * (pos - i)));
    const lin = rgb.map((c) => { const v = c / 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    const lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
    const fg = 1.05 / (lum + 0.05) > (lum + 0.05) / 0.05 ? "#fff" : "#000";
    return [`rgb(${rgb.join(",")})`, fg];
  }
  const fmtMean = (v) => (v < 10 ? v.toFixed(1) : String(Math.round(v)));

  function drawHeatmap(name, d) {
    const cells = new Map((d.cells || []).filter((c) => c.mean_occupancy != null).map((c) => [c.day * 24 + c.hour, c]));
    const max = Math.max(1, ...[...cells.values()].map((c) => c.mean_occupancy));
    const hours = [...Array(24).keys()];
    const cell = (day, hour) => {
      const when = `${DAYS[day]} ${pad(hour)}:00`;
      const c = cells.get(day * 24 + hour);
      const label = c ? `${when}: ${c.mean_occupancy.toFixed(1)} people on average` : `${when}: no data`;
      const td = h("td", { data: { day: String(day), hour: String(hour) }, title: label, "aria-label": label });
      if (!c) {
        td.className = "nodata";
        return td;
      }
      const [bg, fg] = heatColour(c.mean_occupancy / max);
      td.style.backgroundColor = bg;
      td.style.color = fg;
      td.textContent = fmtMean(c.mean_occupancy);
      return td;
    };
    $("heatmap-table").replaceChildren(
      h("caption", { text: `Mean people in ${name} by weekday and hour (${d.timezone || S.dash.timezone}), last ${d.weeks || 4} weeks` }),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, h("span", { class: "visually-hidden", text: "Day" })),
        hours.map((hr) => h("th", { scope: "col", text: pad(hr) })))),
      h("tbody", {}, DAYS.map((day, di) => h("tr", {}, h("th", { scope: "row", text: day }), hours.map((hr) => cell(di, hr))))));
    const swatch = (bg, text, cls) => {
      const sw = h("span", { class: `swatch ${cls || ""}`, "aria-hidden": "true" });
      if (bg) sw.style.backgroundColor = bg;
      return h("li", {}, sw, text);
    };
    $("heatmap-legend").replaceChildren(
      ...[0, 0.25, 0.5, 0.75, 1].map((f) => swatch(heatColour(f)[0], fmtMean(f * max))),
      swatch(null, "no data", "nodata"));
    setEmpty("heatmap-empty", cells.size ? "" : `No occupancy history for ${name} in the last ${d.weeks || 4} weeks yet.`);
  }

  // ---------- zone and line editor (admin) ----------
  const keyOf = (it) => `${it.kind}:${it.name}`;
  const findItem = (key) => ED.items.find((it) => keyOf(it) === key);
  const fmtPts = (pts) => pts.map(([x, y]) => `${x.toFixed(3)},${y.toFixed(3)}`).join(" ");
  const geometryUrl = () => `/api/v1/cameras/${enc(ED.cam)}/geometry`;
  const snapshotUrl = () => `/api/v1/cameras/${enc(ED.cam)}/snapshot`;

  function fillCameras() {
    const sel = $("editor-camera");
    const keep = sel.value;
    const cams = S.dash.cameras || [];
    sel.replaceChildren(...cams.map((c) => h("option", { value: c, text: c })));
    if (cams.includes(keep)) sel.value = keep;
    sel.disabled = cams.length === 0;
    return sel.value || null;
  }

  function editorError(message) {
    $("editor-errors").replaceChildren(h("p", { text: message }));
  }
  function clearEditorErrors() {
    $("editor-errors").replaceChildren();
    $("shape-name").removeAttribute("aria-invalid");
    for (const e of $("shape-list").querySelectorAll(".field-error")) e.replaceChildren();
  }
  function markDirty(message) {
    ED.dirty = true;
    $("editor-status").textContent = message || "Unsaved changes";
  }
  function hint(text) {
    $("draw-hint").textContent = text;
  }

  function loadCamera(cam, note) {
    const discarded = ED.dirty && ED.cam && ED.cam !== cam;
    const before = ED.cam;
    cancelDraw();
    ED.cam = cam;
    loadSnapshot();
    return loadGeometry(discarded ? `Unsaved changes to ${before} were discarded` : note || "");
  }

  async function loadGeometry(note) {
    const seq = ++ED.seq;
    Object.assign(ED, { items: [], dirty: false, invalid: new Set(), sel: null });
    clearEditorErrors();
    $("editor-status").textContent = note || "";
    renderShapes();
    if (!ED.cam) return;
    try {
      const g = await api(geometryUrl());
      if (seq !== ED.seq) return;
      const pts = (list) => (list || []).map((p) => [Number(p[0]), Number(p[1])]);
      ED.items = [
        ...(g.zones || []).map((z) => ({ kind: "zone", name: z.name, pts: pts(z.polygon), capacity: z.capacity ?? null })),
        ...(g.lines || []).map((l) => ({ kind: "line", name: l.name, pts: pts(l.points), in: l.in === "right" ? "right" : "left" })),
      ];
      renderShapes();
    } catch (e) {
      if (seq === ED.seq && e.status !== 401) editorError(`Could not load the zones and lines of ${ED.cam}: ${e.message}`);
    }
  }

  function loadSnapshot(refresh) {
    const img = $("editor-snapshot");
    const note = $("snapshot-note");
    $("refresh-snapshot").hidden = !(S.dash && S.dash.snapshots);
    if (!refresh) {
      img.hidden = true;
      img.removeAttribute("src");
      $("editor-stage").style.aspectRatio = "16 / 9";
    }
    if (!ED.cam) {
      note.textContent = "";
      return;
    }
    if (!S.dash.snapshots) {
      note.textContent = "Snapshots are disabled (privacy.snapshots); drawing over a blank frame";
      return;
    }
    note.textContent = "Loading snapshot…";
    img.src = `${snapshotUrl()}?r=${Date.now()}`; // a new URL defeats the browser cache
  }

  function onSnapshotLoad() {
    const img = $("editor-snapshot");
    if (img.naturalWidth && img.naturalHeight) {
      $("editor-stage").style.aspectRatio = `${img.naturalWidth} / ${img.naturalHeight}`;
    }
    img.hidden = false;
    $("snapshot-note").textContent = "";
  }

  // An <img> cannot read the JSON error, so fetch the same route to say why.
  async function onSnapshotError() {
    const img = $("editor-snapshot");
    if (!img.getAttribute("src") || !ED.cam) return;
    const cam = ED.cam;
    img.hidden = true;
    $("editor-stage").style.aspectRatio = "16 / 9";
    let why = "the image could not be shown";
    try {
      await api(snapshotUrl());
    } catch (e) {
      if (e.status === 401) return;
      why = e.message;
    }
    if (cam === ED.cam) $("snapshot-note").textContent = `No snapshot: ${why}`;
  }

  // Parses "x,y x,y ..." (normalised); returns the points or an error message.
  function parsePts(text, kind) {
    const parts = text.trim().replace(/\s*,\s*/g, ",").split(/\s+/).filter(Boolean);
    const pts = [];
    for (const part of parts) {
      const xy = part.split(",");
      const nums = xy.map((v) => (v.trim() === "" ? NaN : Number(v)));
      if (nums.length !== 2 || !nums.every(Number.isFinite)) return `“${part}” is not an x,y pair such as 0.25,0.500`;
      if (!nums.every((v) => v >= 0 && v <= 1)) return `“${part}”: coordinates go from 0 to 1`;
      pts.push(nums.map(round3));
    }
    if (kind === "zone" && pts.length < 3) return `A zone needs at least 3 points (x,y separated by spaces); found ${pts.length}`;
    if (kind === "line" && pts.length !== 2) return `A line needs exactly 2 points (x,y x,y); found ${pts.length}`;
    return pts;
  }

  function fieldError(li, message) {
    const box = li.querySelector(".field-error");
    if (message) box.append(h("span", { text: message }));
    else box.replaceChildren();
  }

  function shapeItem(it) {
    const key = keyOf(it);
    const id = `shape-${it.kind}-${it.name}`; // names are letters, digits, _ and -: safe in ids
    const errId = `${id}-error`;
    const li = h("li", { class: `shape shape-${it.kind}`, data: { shape: key } });
    const setInvalid = (input, what, message) => {
      ED.invalid[message ? "add" : "delete"](`${key}/${what}`);
      if (message) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
      fieldError(li, "");
      if (message) fieldError(li, message);
    };
    const points = h("input", {
      id: `${id}-points`, class: "points", type: "text", value: fmtPts(it.pts), spellcheck: "false",
      autocomplete: "off", "aria-describedby": errId,
    });
    points.addEventListener("change", () => {
      const pts = parsePts(points.value, it.kind);
      if (typeof pts === "string") return setInvalid(points, "points", pts);
      setInvalid(points, "points", "");
      it.pts = pts;
      points.value = fmtPts(pts);
      renderCanvas();
      markDirty(`Points of ${it.kind} “${it.name}” changed; not saved yet`);
    });
    const extra = [];
    if (it.kind === "zone") {
      const capacity = h("input", {
        id: `${id}-capacity`, class: "capacity", type: "number", min: "1", step: "1", inputmode: "numeric",
        value: it.capacity ?? "", "aria-describedby": errId,
      });
      capacity.addEventListener("change", () => {
        const v = capacity.value.trim();
        const n = Number(v);
        if (v !== "" && !(Number.isInteger(n) && n >= 1)) return setInvalid(capacity, "capacity", "Capacity must be a whole number of at least 1, or empty");
        setInvalid(capacity, "capacity", "");
        it.capacity = v === "" ? null : n;
        markDirty(`Capacity of zone “${it.name}” changed; not saved yet`);
      });
      extra.push(h("label", { for: capacity.id, text: "Capacity (people, optional)" }), capacity);
    } else {
      const side = h("select", { id: `${id}-in`, class: "in-side", "aria-describedby": errId },
        h("option", { value: "left", text: "left" }), h("option", { value: "right", text: "right" }));
      side.value = it.in;
      side.addEventListener("change", () => {
        it.in = side.value;
        renderCanvas();
        markDirty(`“In” side of line “${it.name}” changed; not saved yet`);
      });
      extra.push(h("label", { for: side.id, text: "“In” side, facing from point 1 to point 2" }), side);
    }
    const remove = h("button", { type: "button", class: "remove", "aria-label": `Remove ${it.kind} ${it.name}` }, "Remove");
    remove.addEventListener("click", () => {
      const i = ED.items.indexOf(it);
      ED.items.splice(i, 1);
      for (const k of [...ED.invalid]) if (k.startsWith(`${key}/`)) ED.invalid.delete(k);
      renderShapes();
      markDirty(`${human(it.kind)} “${it.name}” removed; not saved yet`);
      const next = $("shape-list").querySelectorAll("button.remove")[Math.min(i, ED.items.length - 1)];
      (next || $("shape-name")).focus();
    });
    li.addEventListener("focusin", () => {
      if (ED.sel !== key) { ED.sel = key; renderCanvas(); }
    });
    li.append(
      h("div", { class: "shape-head" },
        h("span", { class: `badge kind-${it.kind}`, text: human(it.kind) }), h("strong", { text: it.name }), remove),
      h("label", { for: points.id, text: it.kind === "zone" ? "Corners: x,y x,y … (0 to 1)" : "End points: x,y x,y (0 to 1)" }),
      points, ...extra,
      h("p", { class: "field-error", id: errId }));
    return li;
  }

  function renderShapes() {
    $("shape-list").replaceChildren(...ED.items.map(shapeItem));
    setEmpty("shape-empty", ED.items.length ? "" : ED.cam ? "No zones or lines on this camera yet." : "No cameras are configured.");
    renderCanvas();
  }

  // The canvas is stretched (viewBox 0 0 1000 1000, preserveAspectRatio none), so
  // round marks and text are drawn in pixels and scaled back by ED.px.
  function measureStage() {
    const r = $("editor-stage").getBoundingClientRect();
    if (r.width && r.height) ED.px = { x: 1000 / r.width, y: 1000 / r.height };
  }
  const U = (v) => r1(v * 1000);
  function label(xu, yu, text, cls) {
    return s("text", { class: cls || "label", transform: `translate(${r1(xu)} ${r1(yu)}) scale(${ED.px.x} ${ED.px.y})`, "text-anchor": "middle" }, text);
  }
  function handle(key, i, [x, y], cls) {
    return s("ellipse", { class: cls || "handle", cx: U(x), cy: U(y), rx: 8 * ED.px.x, ry: 8 * ED.px.y, "data-ref": key, "data-vertex": i });
  }

  function zoneShape(it) {
    const key = keyOf(it);
    const cx = it.pts.reduce((a, p) => a + p[0], 0) / it.pts.length;
    const cy = it.pts.reduce((a, p) => a + p[1], 0) / it.pts.length;
    return s("g", { class: `zone${ED.sel === key ? " selected" : ""}`, "data-ref": key },
      s("polygon", { points: it.pts.map(([x, y]) => `${U(x)},${U(y)}`).join(" ") }),
      label(U(cx), U(cy), it.name),
      it.pts.map((p, i) => handle(key, i, p)));
  }

  function lineShape(it) {
    const key = keyOf(it);
    const [[x1, y1], [x2, y2]] = it.pts;
    const g = s("g", { class: `line${ED.sel === key ? " selected" : ""}`, "data-ref": key },
      s("line", { class: "line-body", x1: U(x1), y1: U(y1), x2: U(x2), y2: U(y2) }));
    // Work in screen pixels so the arrow is perpendicular on a stretched canvas.
    const W = 1000 / ED.px.x, H = 1000 / ED.px.y;
    const dx = (x2 - x1) * W, dy = (y2 - y1) * H;
    const len = Math.hypot(dx, dy);
    if (len > 1) {
      const ux = dx / len, uy = dy / len;
      // With y pointing down, "left" when facing from point 1 to point 2 is (uy, -ux).
      const [nx, ny] = it.in === "right" ? [-uy, ux] : [uy, -ux];
      const mx = ((x1 + x2) / 2) * W, my = ((y1 + y2) / 2) * H;
      const toU = (px, py) => [px * ED.px.x, py * ED.px.y];
      const [bx, by] = toU(mx + nx * 6, my + ny * 6);
      const [tx, ty] = toU(mx + nx * 34, my + ny * 34);
      const head = [[0, 0], [-10, 6], [-10, -6]].map(([a, b]) =>
        toU(mx + nx * (34 + a) + ux * b, my + ny * (34 + a) + uy * b).map(r1).join(","));
      const [lx, ly] = toU(mx + nx * 50, my + ny * 50 + 4);
      const [ox, oy] = toU(mx - nx * 18, my - ny * 18 + 4);
      const [sx, sy] = toU(x1 * W - ux * 14, y1 * H - uy * 14 + 4);
      g.append(s("line", { class: "arrow", x1: r1(bx), y1: r1(by), x2: r1(tx), y2: r1(ty) }),
        s("polygon", { class: "arrow-head", points: head.join(" ") }),
        label(lx, ly, "in", "label in-label"), label(ox, oy, it.name), label(sx, sy, "1", "label end-label"));
    }
    g.append(handle(key, 0, it.pts[0]), handle(key, 1, it.pts[1]));
    return g;
  }

  function renderCanvas() {
    const svg = $("editor-canvas");
    const kids = ED.items.map((it) => (it.kind === "zone" ? zoneShape(it) : lineShape(it)));
    const d = ED.draw;
    if (d) {
      const pts = d.pts.map(([x, y]) => `${U(x)},${U(y)}`).join(" ");
      kids.push(s("g", { class: "drawing" },
        d.kind === "zone" && d.pts.length >= 3 ? s("polygon", { points: pts }) : s("polyline", { points: pts }),
        d.pts.map((p, i) => handle("draft", i, p, "draft-vertex"))));
      if (ED.focus) {
        const [cx, cy] = ED.cursor;
        kids.push(s("g", { class: "cursor" },
          s("line", { x1: U(cx) - 14 * ED.px.x, x2: U(cx) + 14 * ED.px.x, y1: U(cy), y2: U(cy) }),
          s("line", { x1: U(cx), x2: U(cx), y1: U(cy) - 14 * ED.px.y, y2: U(cy) + 14 * ED.px.y })));
      }
    }
    svg.replaceChildren(...kids);
    svg.classList.toggle("is-drawing", !!d);
  }

  function drawHint() {
    const d = ED.draw;
    if (!d) return hint("");
    const need = d.kind === "zone" ? "at least 3 corners; Enter or “Finish shape” closes it" : "2 points";
    hint(`Drawing ${d.kind} “${d.name}”: click the image to add points (${need}); Escape cancels. ` +
      `Keyboard: focus the drawing area, move with the arrow keys, add a point with Space. Points so far: ${d.pts.length}.`);
  }

  function startDraw(kind) {
    clearEditorErrors();
    cancelDraw();
    const input = $("shape-name");
    const name = input.value.trim();
    let problem = "";
    if (!ED.cam) problem = "No camera is selected.";
    else if (!name) problem = `Enter a name for the new ${kind} first.`;
    else if (!NAME_RE.test(name)) problem = `“${name}” is not a valid name: use letters, digits, _ and - only.`;
    else if (findItem(`${kind}:${name}`)) problem = `There is already a ${kind} called “${name}” on ${ED.cam}.`;
    if (problem) {
      editorError(problem);
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    ED.draw = { kind, name, pts: [] };
    ED.cursor = [0.5, 0.5];
    drawHint();
    renderCanvas();
  }

  function cancelDraw(message) {
    if (!ED.draw) return;
    ED.draw = null;
    hint(message || "");
    renderCanvas();
  }

  function addVertex(p) {
    const d = ED.draw;
    d.pts.push(p);
    if (d.kind === "line" && d.pts.length === 2) finishDraw();
    else {
      drawHint();
      renderCanvas();
    }
  }

  function finishDraw() {
    const d = ED.draw;
    if (!d) return hint("Nothing is being drawn: enter a name, then press “New zone” or “New line”.");
    if (d.kind === "zone" && d.pts.length < 3) return editorError(`A zone needs at least 3 corners; “${d.name}” has ${d.pts.length}.`);
    if (d.kind === "line" && d.pts.length < 2) return editorError(`A line needs 2 points; “${d.name}” has ${d.pts.length}.`);
    const it = d.kind === "zone"
      ? { kind: "zone", name: d.name, pts: d.pts, capacity: null }
      : { kind: "line", name: d.name, pts: d.pts.slice(0, 2), in: "left" };
    // Zones stay before lines, as the API lists them.
    const firstLine = ED.items.findIndex((x) => x.kind === "line");
    if (it.kind === "zone" && firstLine >= 0) ED.items.splice(firstLine, 0, it);
    else ED.items.push(it);
    ED.draw = null;
    ED.sel = keyOf(it);
    $("shape-name").value = "";
    $("editor-errors").replaceChildren();
    hint("");
    renderShapes();
    markDirty(`${human(it.kind)} “${it.name}” added; not saved yet`);
  }

  function toNorm(e) {
    const r = $("editor-canvas").getBoundingClientRect();
    return [round3(clamp01((e.clientX - r.left) / r.width)), round3(clamp01((e.clientY - r.top) / r.height))];
  }

  function syncPoints(it) {
    const li = $("shape-list").querySelector(`li[data-shape="${CSS.escape(keyOf(it))}"]`);
    const input = li && li.querySelector("input.points");
    if (input) {
      input.value = fmtPts(it.pts);
      input.removeAttribute("aria-invalid");
      if (ED.invalid.delete(`${keyOf(it)}/points`)) fieldError(li, "");
    }
  }

  async function saveGeometry() {
    if (ED.draw) return editorError("Finish or cancel the shape being drawn first.");
    if (ED.invalid.size) return editorError("Fix the fields marked below before saving.");
    if (!ED.cam) return editorError("No camera is selected.");
    clearEditorErrors();
    const cam = ED.cam;
    const body = {
      zones: ED.items.filter((x) => x.kind === "zone").map((z) => ({ name: z.name, polygon: z.pts, capacity: z.capacity })),
      lines: ED.items.filter((x) => x.kind === "line").map((l) => ({ name: l.name, points: l.pts, in: l.in })),
    };
    const button = $("save-geometry");
    button.disabled = true;
    $("editor-status").textContent = "Saving…";
    try {
      await api(geometryUrl(), { method: "PUT", body });
      if (cam !== ED.cam) return;
      await loadGeometry("Saved and applied");
      // Zones and lines feed the subject lists and the flow table.
      loadDashboard().catch(() => {});
    } catch (e) {
      if (e.status === 401) return;
      $("editor-status").textContent = "Not saved";
      if (e.status === 422 && e.data && Array.isArray(e.data.errors)) showGeometryErrors(cam, e.data);
      else editorError(`Not saved: ${e.message}`);
    } finally {
      button.disabled = false;
    }
  }

  function showGeometryErrors(cam, data) {
    $("editor-errors").replaceChildren(
      h("p", { text: data.error || "The geometry was not saved" }),
      h("ul", {}, data.errors.map((er) => h("li", {}, h("code", { text: er.key }), `: ${er.message}`))));
    for (const li of $("shape-list").children) {
      const it = findItem(li.dataset.shape);
      const prefix = `cameras.${cam}.${it.kind}s.${it.name}`;
      for (const er of data.errors) {
        const k = String(er.key || "");
        if (k === prefix || k.startsWith(`${prefix}.`)) {
          const field = k.slice(prefix.length + 1);
          fieldError(li, field ? `${field}: ${er.message}` : er.message);
        }
      }
    }
  }

  function wireEditor() {
    const svg = $("editor-canvas");
    const img = $("editor-snapshot");
    img.addEventListener("load", onSnapshotLoad);
    img.addEventListener("error", onSnapshotError);
    $("editor-camera").addEventListener("change", (e) => loadCamera(e.target.value));
    $("refresh-snapshot").addEventListener("click", () => loadSnapshot(true));
    $("new-zone").addEventListener("click", () => startDraw("zone"));
    $("new-line").addEventListener("click", () => startDraw("line"));
    $("finish-shape").addEventListener("click", finishDraw);
    $("cancel-shape").addEventListener("click", () => cancelDraw("Drawing cancelled"));
    $("save-geometry").addEventListener("click", saveGeometry);
    $("reload-geometry").addEventListener("click", () => loadGeometry("Changes discarded; showing the saved zones and lines"));
    $("shape-name").addEventListener("input", (e) => e.target.removeAttribute("aria-invalid"));

    svg.addEventListener("click", (e) => {
      if (ED.draw) addVertex(toNorm(e));
    });
    svg.addEventListener("pointerdown", (e) => {
      if (ED.draw || e.button !== 0) return;
      const t = e.target.closest && e.target.closest(".handle");
      const it = t && findItem(t.getAttribute("data-ref"));
      if (!it) return;
      ED.drag = { it, i: Number(t.getAttribute("data-vertex")), id: e.pointerId, moved: false };
      ED.sel = keyOf(it);
      svg.setPointerCapture(e.pointerId);
      e.preventDefault();
    });
    svg.addEventListener("pointermove", (e) => {
      const d = ED.drag;
      if (!d || e.pointerId !== d.id) return;
      d.it.pts[d.i] = toNorm(e);
      d.moved = true;
      renderCanvas();
      syncPoints(d.it);
    });
    const endDrag = (e) => {
      const d = ED.drag;
      if (!d || e.pointerId !== d.id) return;
      ED.drag = null;
      if (d.moved) markDirty(`Moved a corner of ${d.it.kind} “${d.it.name}”; not saved yet`);
    };
    svg.addEventListener("pointerup", endDrag);
    svg.addEventListener("pointercancel", endDrag);
    svg.addEventListener("focus", () => { ED.focus = true; renderCanvas(); });
    svg.addEventListener("blur", () => { ED.focus = false; renderCanvas(); });
    // Keyboard drawing: arrows move a cross-hair, Space adds a point there.
    svg.addEventListener("keydown", (e) => {
      if (!ED.draw) return;
      const step = e.shiftKey ? 0.1 : 0.01;
      const move = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[e.key];
      if (move) {
        ED.cursor = ED.cursor.map((v, k) => round3(clamp01(v + move[k])));
        renderCanvas();
      } else if (e.key === " ") {
        addVertex(ED.cursor.slice());
      } else return;
      e.preventDefault();
    });
    document.addEventListener("keydown", (e) => {
      if (!ED.draw) return;
      if (e.key === "Escape") {
        e.preventDefault();
        cancelDraw("Drawing cancelled");
      } else if (e.key === "Enter") {
        // Leave Enter to buttons, selects and the shape fields.
        if (e.target.closest && e.target.closest("button, select, textarea, a, #shape-list")) return;
        e.preventDefault();
        finishDraw();
      }
    });
    new ResizeObserver(() => {
      measureStage();
      renderCanvas();
    }).observe($("editor-stage"));
  }

  // ---------- start ----------
  function wire() {
    for (const e of document.querySelectorAll(".empty")) S.emptyText.set(e.id, e.textContent);
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", logout);
    $("day-subject").addEventListener("change", () => loadDay());
    $("heatmap-subject").addEventListener("change", () => loadHeatmap());
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refreshCharts(false);
    });
    let width = 0;
    new ResizeObserver(([entry]) => {
      const w = Math.round(entry.contentRect.width);
      if (w !== width) {
        width = w;
        drawDay();
      }
    }).observe($("day-svg"));
    wireEditor();
    wireValidation();
    wireExport();
  }

  async function boot() {
    wire();
    let session;
    try {
      session = await api("/api/v1/session", { auth: false });
    } catch (e) {
      showLogin(e.status === 401 ? "" : `Could not check the session: ${e.message}`);
      return;
    }
    await enter(session);
  }

  boot();
})();
