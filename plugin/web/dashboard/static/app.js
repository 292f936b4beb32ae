// KOM's page inside the Saleor Dashboard. Plain JavaScript, no build step.
//
// AppBridge, as Saleor's app SDK speaks it: post {type:"notifyReady"} to the Dashboard, take
// the app token from its "handshake", follow "tokenRefresh" and "theme". Messages are
// accepted only from the parent window and only from the Dashboard's origin. Every call to
// KOM's API carries the token (Authorization-Bearer) and the Saleor API URL (Saleor-Api-Url).
// The page never receives a secret: saved credentials are shown as "set" with a hint.
"use strict";

(() => {
  const params = new URLSearchParams(window.location.search);
  const saleorApiUrl = params.get("saleorApiUrl") || "";
  const locale = (params.get("locale") || navigator.language || "en").replace("_", "-");
  const inFrame = window.parent !== window;
  const dashboardOrigin = (() => {
    // Like the SDK: the Dashboard is the page that framed us (document.referrer); a Dashboard
    // served from the API's own origin is the fallback.
    for (const candidate of [document.referrer, saleorApiUrl]) {
      try {
        if (candidate) return new URL(candidate).origin;
      } catch (_) { /* not a URL */ }
    }
    return null;
  })();

  const state = {
    token: null,
    me: null,
    tab: "activity",
    filter: "",
    page: 1,
    channel: "",
    settings: null,
    detailId: null,
  };

  const $ = (id) => document.getElementById(id);

  // -- tiny DOM builder: text is always text (no innerHTML with data) ---------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  // -- AppBridge ---------------------------------------------------------------------------
  let actionCounter = 0;
  function actionId() {
    actionCounter += 1;
    const random = window.crypto && crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2);
    return `kom-${actionCounter}-${random}`;
  }

  function postToDashboard(type, payload) {
    if (!inFrame || !dashboardOrigin) return;
    window.parent.postMessage({ type, payload: { actionId: actionId(), ...payload } }, dashboardOrigin);
  }

  function notify(status, title, text) {
    postToDashboard("notification", { status, title, text: text || undefined });
  }

  window.addEventListener("message", (event) => {
    if (event.source !== window.parent || event.origin !== dashboardOrigin) return;
    const data = event.data;
    if (!data || typeof data !== "object" || typeof data.type !== "string") return;
    const payload = data.payload && typeof data.payload === "object" ? data.payload : {};
    if (data.type === "handshake" || data.type === "tokenRefresh") {
      if (typeof payload.token !== "string" || !payload.token) return;
      const first = state.token === null;
      state.token = payload.token;
      if (first) start();
      else hideNotice("expired");
    } else if (data.type === "theme") {
      applyTheme(payload.theme);
    }
  });

  function applyTheme(theme) {
    if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  }

  // -- API ---------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message, fields) {
      super(message);
      this.status = status;
      this.fields = fields || {};
    }
  }

  async function api(method, path, body) {
    const headers = {
      Accept: "application/json",
      "Authorization-Bearer": state.token,
      "Saleor-Api-Url": saleorApiUrl,
    };
    const init = { method, headers, credentials: "omit", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (_) {
      throw new ApiError(0, "KOM did not answer. Check your connection and try again.");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_) { /* not JSON */ }
    if (!response.ok) {
      const message = (data && data.error) || `KOM answered HTTP ${response.status}.`;
      if (response.status === 401 && /expired/i.test(message)) {
        showNotice("expired", "warning", "Your session has expired.", "Reload the page to continue.");
      }
      throw new ApiError(response.status, message, data && data.fields);
    }
    return data;
  }

  // -- formatting --------------------------------------------------------------------------
  function money(minor, currency, exponent) {
    if (minor === null || minor === undefined) return "—";
    const value = minor / 10 ** exponent;
    try {
      return new Intl.NumberFormat(locale, {
        style: "currency",
        currency,
        minimumFractionDigits: exponent,
        maximumFractionDigits: exponent,
      }).format(value);
    } catch (_) {
      return `${value.toFixed(exponent)} ${currency}`;
    }
  }

  function when(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return iso;
    try {
      return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(date);
    } catch (_) {
      return date.toLocaleString();
    }
  }

  const STATES = {
    in_sync: ["In sync", "chip-success"],
    pending: ["Waiting", "chip-info"],
    needs_attention: ["Needs attention", "chip-critical"],
  };

  const EMPTY_FILTER = {
    needs_attention: "No order needs your attention right now.",
    pending: "No order is waiting for KOM right now.",
    in_sync: "No order is in sync yet.",
  };

  // Needs-attention findings (kom reconcile, the authorization clock), by kind.
  const FINDINGS = {
    shipment_not_captured: "Parcel not captured",
    refund_not_sent: "Refund not sent",
    tracking_not_sent: "Tracking not sent",
    release_pending: "Authorization not released",
    refused: "Refused by KOM",
    capture_elsewhere: "Capture made elsewhere",
    refund_elsewhere: "Refund made elsewhere",
    refund_misallocated: "Refund broke allocation",
    charge_drift: "Charged amounts differ",
    authorization_drift: "Authorized amount differs",
    refunded_drift: "Refunded amounts differ",
    authorization_left_open: "Authorization left open",
    authorization_expiring: "Authorization expiring",
    authorization_expired: "Authorization expired",
    unreadable: "Could not be read",
    not_configured: "Not configured",
  };
  const CRITICAL_FINDINGS = new Set(["refund_misallocated", "authorization_expired", "refused"]);

  function findingChip(kind) {
    return h("span", { class: `chip ${CRITICAL_FINDINGS.has(kind) ? "chip-critical" : "chip-warning"}` }, FINDINGS[kind] || kind);
  }

  function expiryText(authorization) {
    if (!authorization || !authorization.expires_at || authorization.state === "settled") return null;
    const tone = authorization.state === "expired" ? "expiry-over" : authorization.state === "warning" ? "expiry-soon" : "muted";
    const text = authorization.state === "expired" ? `Authorization expired ${when(authorization.expires_at)}` : `Authorization expires ${when(authorization.expires_at)}`;
    return h("div", { class: `meta ${tone}`, "data-expiry": authorization.state }, text);
  }

  // A refund made elsewhere broke the provider's allocation: KOM has nothing to do, but the
  // order is not "in sync" with what the shopper is owed.
  function stateChip(value, broken) {
    const [label, tone] = broken && value === "in_sync" ? ["Allocation broken", "chip-critical"] : STATES[value] || ["Unknown", ""];
    return h("span", { class: `chip ${tone}`, "data-status": broken && value === "in_sync" ? "allocation_broken" : value }, label);
  }

  // The provider's order status, in words.
  const PROVIDER_STATUS = {
    AUTHORIZED: "Authorized",
    PART_CAPTURED: "Partly captured",
    CAPTURED: "Captured",
    CANCELLED: "Cancelled",
    EXPIRED: "Expired",
    CLOSED: "Closed",
  };

  function settingsLink() {
    return h("button", { type: "button", class: "btn-link", "data-fix": "settings", onclick: () => selectTab("settings", true) }, "Open Settings");
  }

  // -- notices -----------------------------------------------------------------------------
  function callout(tone, title, text, meta) {
    return h(
      "div",
      { class: `callout callout-${tone}` },
      title ? h("strong", {}, title) : null,
      text ? h("span", {}, text) : null,
      meta ? h("div", { class: "meta" }, meta) : null,
    );
  }

  function showNotice(kind, tone, title, text) {
    const notice = $("notice");
    notice.replaceChildren(callout(tone, title, text));
    notice.dataset.kind = kind;
    notice.hidden = false;
  }

  function hideNotice(kind) {
    const notice = $("notice");
    if (!kind || notice.dataset.kind === kind) notice.hidden = true;
  }

  function gate(text, failed) {
    $("gate-text").textContent = text;
    $("gate").classList.toggle("failed", Boolean(failed));
  }

  // -- start -------------------------------------------------------------------------------
  async function start() {
    try {
      state.me = await api("GET", "/api/dashboard/me");
    } catch (error) {
      gate(error.message, true);
      return;
    }
    $("gate").hidden = true;
    $("main").hidden = false;
    document.getElementById("app").setAttribute("data-ready", "true");
    let tab = "activity";
    if (state.me.can.settings) {
      const loaded = await loadSettings("");
      if (loaded && !loaded.default_configured) {
        $("welcome").hidden = false;
        tab = "settings";
      }
    } else {
      denied("settings-denied", "settings-form", state.me.required.settings, "change KOM's settings");
    }
    if (!state.me.can.activity) {
      denied("activity-denied", "activity-list", state.me.required.activity, "see the orders KOM handled");
      if (state.me.can.settings) tab = "settings";
    } else {
      loadOrders();
    }
    selectTab(tab, false);
  }

  function denied(boxId, hideId, permissions, what) {
    const box = $(boxId);
    box.replaceChildren(
      h("div", { class: "empty-icon", "aria-hidden": "true" }),
      h("h2", {}, "No access"),
      h("p", {}, `To ${what}, your Saleor user needs the ${permissions.join(" and ")} permission${permissions.length > 1 ? "s" : ""}.`),
    );
    box.hidden = false;
    $(hideId).hidden = true;
  }

  // -- tabs (arrow keys move between them, as in the WAI-ARIA tabs pattern) ---------------
  const tabs = ["activity", "settings"];
  function selectTab(name, focus) {
    state.tab = name;
    for (const tab of tabs) {
      const button = $(`tab-${tab}`);
      const selected = tab === name;
      button.setAttribute("aria-selected", String(selected));
      button.tabIndex = selected ? 0 : -1;
      $(`panel-${tab}`).hidden = !selected;
      if (selected && focus) button.focus();
    }
  }
  for (const tab of tabs) {
    const button = $(`tab-${tab}`);
    button.addEventListener("click", () => {
      selectTab(tab, false);
      if (tab === "activity" && state.me && state.me.can.activity && state.detailId === null) loadOrders();
    });
    button.addEventListener("keydown", (event) => {
      const index = tabs.indexOf(tab);
      let next = null;
      if (event.key === "ArrowRight") next = tabs[(index + 1) % tabs.length];
      else if (event.key === "ArrowLeft") next = tabs[(index + tabs.length - 1) % tabs.length];
      else if (event.key === "Home") next = tabs[0];
      else if (event.key === "End") next = tabs[tabs.length - 1];
      if (next) {
        event.preventDefault();
        selectTab(next, true);
      }
    });
  }

  // -- activity ----------------------------------------------------------------------------
  async function loadOrders() {
    const query = new URLSearchParams({ page: String(state.page) });
    if (state.filter) query.set("state", state.filter);
    let data;
    try {
      data = await api("GET", `/api/dashboard/orders?${query}`);
    } catch (error) {
      showNotice("orders", "critical", "Could not load the orders.", error.message);
      return;
    }
    hideNotice("orders");
    renderOrders(data);
    renderFindings(data.findings || []);
  }

  function renderFindings(findings) {
    $("findings").hidden = findings.length === 0;
    $("findings-count").textContent = String(findings.length);
    $("findings-body").replaceChildren(
      ...findings.map((finding) => {
        const label = finding.order_number ? `#${finding.order_number}` : finding.order_id;
        const order = finding.tracked
          ? h("button", { type: "button", class: "btn-link", onclick: () => openOrder(finding.order_id) }, label)
          : h("span", { class: "mono" }, label);
        return h(
          "tr",
          { "data-finding": finding.kind, "data-order": finding.order_id },
          h("td", { class: "nowrap" }, order),
          h("td", { class: "reason" }, findingChip(finding.kind), h("div", {}, finding.detail)),
          h("td", { class: "reason muted" }, finding.suggested_action),
        );
      }),
    );
  }

  function renderOrders(data) {
    const total = Object.values(data.counts).reduce((a, b) => a + b, 0);
    for (const span of document.querySelectorAll("[data-count]")) {
      const key = span.dataset.count;
      span.textContent = String(key ? data.counts[key] || 0 : total);
    }
    for (const button of document.querySelectorAll(".chip-filter")) {
      button.setAttribute("aria-pressed", String(button.dataset.state === state.filter));
    }
    const body = $("orders-body");
    body.replaceChildren(...data.orders.map(orderRow));
    const empty = data.orders.length === 0;
    $("orders-table").hidden = empty;
    $("orders-empty").hidden = !empty;
    if (empty) {
      const fresh = total === 0;
      $("orders-empty-title").textContent = fresh ? "No orders yet" : "Nothing here";
      $("orders-empty-text").textContent = fresh
        ? "As soon as you fulfil an order paid with Klarna or Kustom, KOM captures it as its own invoice and lists it here."
        : EMPTY_FILTER[state.filter] || "No order in this state right now.";
    }
    const first = (data.page - 1) * data.page_size + 1;
    const last = first + data.orders.length - 1;
    $("pager").hidden = empty && data.page === 1;
    $("pager-text").textContent = empty ? "" : `${first}–${last} of ${data.total}`;
    $("prev").disabled = data.page <= 1;
    $("next").disabled = !data.has_next;
    document.querySelector(".pager-buttons").hidden = data.page <= 1 && !data.has_next;
  }

  function orderRow(order) {
    const label = order.number ? `#${order.number}` : order.id;
    const details = h("td", { class: "reason" });
    if (order.reason) details.append(h("div", {}, order.reason));
    else if (order.state === "in_sync" && order.findings) details.append(h("span", { class: "muted" }, "KOM has nothing left to do; see what to check above."));
    else details.append(h("span", { class: "muted" }, order.state === "in_sync" ? "Captures and refunds match Saleor." : "Waiting for KOM's worker."));
    if (order.correlation_id) details.append(h("div", { class: "meta" }, "Correlation id ", h("span", { class: "mono" }, order.correlation_id)));
    if (order.fix_in_settings) details.append(h("div", { class: "meta" }, "Check the credentials: ", settingsLink()));
    if (order.allocation_broken && order.state === "in_sync") details.append(h("div", { class: "meta" }, "A refund made outside KOM broke the allocation: open the order."));
    const expiry = expiryText(order.authorization);
    if (expiry) details.append(expiry);
    if (order.findings) details.append(h("div", { class: "meta" }, h("span", { class: "chip chip-warning" }, `${order.findings} to check`)));
    const actions = h("td", { class: "actions" });
    if (order.state === "needs_attention" && state.me.can.retry) {
      actions.append(h("button", { type: "button", class: "btn btn-secondary btn-small", "aria-label": `Retry order ${label} now`, onclick: (event) => retry(order.id, event.currentTarget) }, "Retry now"));
    }
    return h(
      "tr",
      { "data-order": order.id },
      h("td", { class: "nowrap" }, h("button", { type: "button", class: "btn-link", onclick: () => openOrder(order.id) }, label)),
      h("td", {}, stateChip(order.state, order.allocation_broken)),
      details,
      h("td", { class: "nowrap muted" }, when(order.updated_at)),
      actions,
    );
  }

  async function retry(orderId, button) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      await api("POST", `/api/dashboard/orders/${encodeURIComponent(orderId)}/retry`);
      notify("success", "Retry scheduled", "KOM will process the order again in a moment.");
      showNotice("retry", "success", "Retry scheduled.", "KOM processes the order again within seconds; refresh to see the result.");
    } catch (error) {
      showNotice("retry", "critical", "Could not retry the order.", error.message);
    } finally {
      button.removeAttribute("aria-busy");
      button.disabled = false;
    }
    if (state.detailId === orderId) openOrder(orderId);
    else loadOrders();
  }

  for (const button of document.querySelectorAll(".chip-filter")) {
    button.addEventListener("click", () => {
      state.filter = button.dataset.state;
      state.page = 1;
      loadOrders();
    });
  }
  $("refresh").addEventListener("click", () => loadOrders());
  $("prev").addEventListener("click", () => {
    state.page = Math.max(1, state.page - 1);
    loadOrders();
  });
  $("next").addEventListener("click", () => {
    state.page += 1;
    loadOrders();
  });

  // -- one order: the allocation view ------------------------------------------------------
  async function openOrder(orderId) {
    state.detailId = orderId;
    const detail = $("order-detail");
    $("activity-list").hidden = true;
    detail.hidden = false;
    detail.setAttribute("aria-busy", "true");
    detail.replaceChildren(backLink(), h("p", { class: "muted" }, "Loading the order…"));
    let view;
    try {
      view = await api("GET", `/api/dashboard/orders/${encodeURIComponent(orderId)}`);
    } catch (error) {
      detail.replaceChildren(backLink(), callout("critical", "Could not load the order.", error.message));
      detail.removeAttribute("aria-busy");
      return;
    }
    if (state.detailId !== orderId) return;
    detail.replaceChildren(...renderOrder(view));
    detail.removeAttribute("aria-busy");
    const heading = detail.querySelector("h2");
    if (heading) heading.focus();
  }

  function closeOrder() {
    state.detailId = null;
    $("order-detail").hidden = true;
    $("order-detail").replaceChildren();
    $("activity-list").hidden = false;
    loadOrders();
  }

  function backLink() {
    return h("button", { type: "button", class: "btn-link back", onclick: closeOrder }, "← All orders");
  }

  function renderOrder(view) {
    const order = view.order;
    const provider = view.provider;
    const label = order.number ? `Order #${order.number}` : `Order ${order.id}`;
    const currency = provider && provider.currency;
    const exponent = provider ? provider.exponent : 2;
    const m = (minor) => money(minor, currency, exponent);
    const out = [backLink()];

    const metaParts = [];
    const providerName = (provider && provider.name) || "Provider";
    state.providerName = providerName;
    if (provider && provider.order_id) metaParts.push(`${providerName} order ${provider.order_id}`);
    if (view.channel) metaParts.push(`Channel ${view.channel}`);
    if (provider && provider.status) metaParts.push(PROVIDER_STATUS[provider.status] || "Status unknown");
    const actions = h("div", { class: "detail-actions" });
    if (order.state === "needs_attention" && state.me.can.retry) {
      actions.append(h("button", { type: "button", class: "btn btn-secondary", onclick: (event) => retry(order.id, event.currentTarget) }, "Retry now"));
    }
    if (provider && provider.portal_url) {
      actions.append(h("a", { class: "btn btn-secondary", href: provider.portal_url, target: "_blank", rel: "noopener noreferrer", "data-external": true }, `Open in ${providerName} portal ↗`));
    }
    out.push(
      h(
        "div",
        { class: "detail-head" },
        h("div", {}, h("h2", { tabindex: "-1" }, label, stateChip(order.state, view.allocation_broken)), h("p", { class: "meta" }, metaParts.join(" · "))),
        actions,
      ),
    );
    if (order.state === "needs_attention" && order.reason) {
      const box = callout("critical", "KOM needs your attention", order.reason, order.correlation_id ? `Correlation id ${order.correlation_id}` : null);
      if (order.fix_in_settings) box.append(h("div", { class: "meta" }, settingsLink()));
      out.push(box);
    }
    for (const warning of view.warnings) {
      const tone = warning.kind === "not_linked" ? "info" : "warning";
      const title = {
        misallocated: `A refund broke ${providerName === "Provider" ? "the provider" : providerName}'s allocation`,
        mismatch: "Amounts differ from the provider's",
        provider_unreadable: "The provider order could not be read",
        platform_unreadable: "The Saleor order could not be read",
        not_configured: "Not configured",
        not_linked: "Nothing to show",
      }[warning.kind] || "Note";
      out.push(callout(tone, title, warning.message, warning.correlation_id ? `Correlation id ${warning.correlation_id}` : null));
    }
    const findingKinds = new Set((view.findings || []).map((f) => f.kind));
    for (const finding of view.findings || []) {
      // The allocation warning above already says this, with the provider's own figures.
      if (finding.kind === "refund_misallocated" && view.warnings.some((w) => w.kind === "misallocated")) continue;
      const tone = CRITICAL_FINDINGS.has(finding.kind) ? "critical" : "warning";
      out.push(callout(tone, FINDINGS[finding.kind] || finding.kind, finding.detail, `What to do: ${finding.suggested_action}`));
    }
    const clock = view.authorization;
    if (clock && (clock.state === "warning" || clock.state === "expired") && !findingKinds.has(`authorization_${clock.state === "expired" ? "expired" : "expiring"}`)) {
      const extend = clock.extend && clock.state === "warning" ? "Automatic extension is on: KOM extends it on its next pass." : "Ship the remaining items in time, or turn on automatic extension under Settings.";
      out.push(callout(clock.state === "expired" ? "critical" : "warning", clock.state === "expired" ? "Authorization expired" : "Authorization expiring", clock.message, extend));
    }
    if (!provider || provider.captured_amount === undefined) return out;

    out.push(
      h(
        "div",
        { class: "stats", role: "group", "aria-label": "Order totals" },
        stat("Authorized", m(provider.order_amount)),
        stat("Captured", m(provider.captured_amount)),
        stat("Refunded", m(provider.refunded_amount)),
        stat("Not captured yet", m(provider.remaining_authorized_amount)),
        stat("Authorization expires", provider.expires_at ? when(provider.expires_at) : "—"),
      ),
    );

    out.push(h("h3", { class: "section-title" }, "Invoices", h("span", { class: "muted" }, `${view.captures.length} capture${view.captures.length === 1 ? "" : "s"}`)));
    if (view.captures.length === 0) {
      out.push(h("div", { class: "card empty-inline" }, "No captures yet: KOM captures each parcel when you fulfil it."));
    } else {
      out.push(h("div", { class: "invoices" }, view.captures.map((capture) => invoiceCard(capture, m))));
    }

    out.push(h("h3", { class: "section-title" }, "Refunds", h("span", { class: "muted" }, `${view.refunds.length}`)));
    if (view.refunds.length === 0) {
      out.push(h("div", { class: "card empty-inline" }, "No refunds on this order."));
    } else {
      out.push(h("div", { class: "card" }, refundTable(view.refunds, view.captures, m)));
    }
    return out;
  }

  function stat(label, value) {
    return h("div", { class: "stat" }, h("p", { class: "label" }, label), h("div", { class: "value" }, value));
  }

  function invoiceCard(capture, m) {
    const title = `Invoice ${capture.parcel}`;
    const meta = h("div", { class: "invoice-meta" });
    if (capture.klarna_reference) meta.append(h("span", {}, "Ref ", h("span", { class: "mono" }, capture.klarna_reference)));
    if (capture.fulfillment) meta.append(h("span", {}, `Fulfillment #${capture.fulfillment}`));
    if (capture.captured_at) meta.append(h("span", {}, when(capture.captured_at)));
    if (capture.tracking) {
      const text = [capture.tracking.company, capture.tracking.number].filter(Boolean).join(" ");
      meta.append(
        h("span", {}, "Tracking ", capture.tracking.uri
          ? h("a", { href: capture.tracking.uri, target: "_blank", rel: "noopener noreferrer", "data-external": true }, text)
          : h("span", { class: "mono" }, text)),
      );
    }
    const origin = capture.made_by === "kom" ? h("span", { class: "chip chip-plain" }, "By KOM") : h("span", { class: "chip chip-warning" }, "Made elsewhere");
    const rows = capture.lines.map((line) =>
      h(
        "tr",
        {},
        h("td", {}, h("div", {}, line.name), h("div", { class: "mono line-ref small" }, line.reference || "—")),
        h("td", { class: "num" }, `× ${line.quantity}`),
        h("td", { class: "num" }, m(line.total_amount)),
        h(
          "td",
          { class: `num refunded-cell${line.refunded_amount ? " some" : ""}` },
          line.refunded_amount ? `−${m(line.refunded_amount)}${line.refunded_quantity ? ` (${line.refunded_quantity})` : ""}` : "—",
        ),
      ),
    );
    return h(
      "article",
      { class: "card invoice", "aria-label": title, "data-parcel": capture.parcel },
      h("div", { class: "invoice-head" }, h("div", { class: "invoice-title" }, h("h3", {}, title), origin), meta),
      h(
        "table",
        { class: "table compact" },
        h("caption", { class: "sr-only" }, `Lines of ${title}`),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Item"), h("th", { scope: "col", class: "num" }, "Qty"), h("th", { scope: "col", class: "num" }, "Amount"), h("th", { scope: "col", class: "num" }, "Refunded"))),
        h("tbody", {}, rows),
      ),
      h(
        "div",
        { class: "invoice-foot" },
        h("div", {}, h("p", { class: "label" }, "Captured"), h("div", { class: "value" }, m(capture.captured_amount))),
        h("div", {}, h("p", { class: "label" }, "Refunded"), h("div", { class: "value" }, m(capture.refunded_amount))),
        h("div", { class: "left" }, h("p", { class: "label" }, "Left"), h("div", { class: "value" }, m(capture.left))),
      ),
    );
  }

  // A refund of KOM's is listed by the Saleor refund it was made for (amount, reason), with
  // the provider's refund id beside it; one made elsewhere by the provider's id only.
  function refundCell(refund, m) {
    const platform = refund.platform_refund;
    const providerId = h("div", { class: "small muted" }, `${state.providerName || "Provider"} refund `, h("span", { class: "mono" }, refund.refund_id || "—"));
    if (!platform) {
      return h("td", {}, h("div", {}, refund.made_by === "kom" ? "By KOM" : "Made outside KOM"), providerId);
    }
    const amount = platform.amount !== null && platform.amount !== undefined ? ` · ${m(platform.amount)}` : "";
    return h(
      "td",
      {},
      h("div", {}, `${platform.label}${amount}`),
      platform.reason ? h("div", { class: "small" }, `Reason: ${platform.reason}`) : null,
      providerId,
    );
  }

  function refundTable(refunds, captures, m) {
    const rows = refunds.map((refund) => {
      let booked;
      if (refund.booked_on) {
        const ref = refund.booked_on_invoice ? ` · ${refund.booked_on_invoice}` : "";
        booked = h("span", { class: "chip chip-success" }, `Invoice ${refund.booked_on}${ref}`);
      } else {
        booked = h("div", {}, h("span", { class: "chip chip-critical" }, "Not allocated"), refund.not_allocated_reason ? h("div", { class: "small muted" }, refund.not_allocated_reason) : null);
      }
      const lines = refund.lines.length
        ? h("ul", { class: "lines-list" }, refund.lines.map((line) => h("li", {}, h("span", { class: "mono" }, line.reference || "—"), ` × ${line.quantity}`)))
        : h("span", { class: "muted small" }, "No lines (amount only)");
      return h(
        "tr",
        { "data-refund": refund.refund_id },
        refundCell(refund, m),
        h("td", { class: "nowrap muted" }, when(refund.refunded_at)),
        h("td", {}, lines),
        h("td", { class: "num" }, m(refund.refunded_amount)),
        h("td", {}, booked),
      );
    });
    return h(
      "table",
      { class: "table" },
      h("caption", { class: "sr-only" }, "Refunds and the invoice each was booked on"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Refund"), h("th", { scope: "col" }, "Date"), h("th", { scope: "col" }, "Lines"), h("th", { scope: "col", class: "num" }, "Amount"), h("th", { scope: "col" }, "Booked on"))),
      h("tbody", {}, rows),
    );
  }

  // -- settings ----------------------------------------------------------------------------
  const form = $("settings-form");
  const FIELDS = ["provider", "environment", "region", "credential_type", "username", "api_key", "base_url", "capture_mode", "shipping_fee", "unknown_origin", "extend_authorization", "payments_enabled", "payment_categories", "payment_locale", "purchase_countries"];

  async function loadSettings(channel) {
    let data;
    try {
      data = await api("GET", `/api/dashboard/settings?channel=${encodeURIComponent(channel)}`);
    } catch (error) {
      showNotice("settings", "critical", "Could not load the settings.", error.message);
      return null;
    }
    hideNotice("settings");
    fillSettings(data);
    return data;
  }

  function radio(name, value) {
    for (const input of form.querySelectorAll(`input[name="${name}"]`)) input.checked = input.value === value;
  }

  function radioValue(name) {
    const checked = form.querySelector(`input[name="${name}"]:checked`);
    return checked ? checked.value : null;
  }

  function fillSettings(data) {
    state.channel = data.channel;
    state.settings = data;
    const select = $("channel");
    const channels = new Set(data.channels.filter((c) => c));
    if (data.channel) channels.add(data.channel);
    select.replaceChildren(
      h("option", { value: "" }, data.default_configured || !data.channel ? "All channels (default)" : "All channels (default, not set up)"),
      ...[...channels].sort().map((c) => h("option", { value: c }, `Channel ${c}${data.channels.includes(c) ? "" : " (new)"}`)),
      h("option", { value: "__new__" }, "Add settings for a channel…"),
    );
    select.value = data.channel;
    $("new-channel-field").hidden = true;
    $("inherit-note").hidden = !(data.channel && !data.configured);
    $("delete-channel").hidden = !(data.channel && data.configured);
    const s = data.settings;
    radio("provider", s.provider);
    radio("environment", s.environment);
    radio("region", s.region);
    radio("credential_type", s.credential_type);
    radio("capture_mode", s.capture_mode);
    radio("shipping_fee", s.shipping_fee);
    radio("unknown_origin", s.unknown_origin);
    $("extend_authorization").checked = Boolean(s.extend_authorization);
    $("payments_enabled").checked = Boolean(s.payments_enabled);
    const offered = new Set(s.payment_categories || []);
    form.querySelectorAll('input[name="payment_categories"]').forEach((box) => { box.checked = offered.has(box.value); });
    $("payment_locale").value = s.payment_locale || "";
    $("purchase_countries").value = s.purchase_countries || "";
    $("username").value = s.username || "";
    $("api_key").value = "";
    $("base_url").value = s.base_url || "";
    $("advanced").open = Boolean(s.base_url);
    clearErrors();
    $("connection-result").hidden = true;
    $("save-status").textContent = "";
    syncForm();
  }

  function syncForm() {
    const kustom = radioValue("provider") === "kustom";
    $("region-field").hidden = kustom;
    $("kustom-region-note").hidden = !kustom;
    const userPass = radioValue("credential_type") === "username_password";
    $("username-field").hidden = !userPass;
    $("api_key-label").textContent = userPass ? "Password" : "API key";
    const s = state.settings && state.settings.settings;
    const storedKind = s && s.api_key_set ? s.credential_type : null;
    const help = $("help-api_key");
    const input = $("api_key");
    if (storedKind && storedKind === radioValue("credential_type")) {
      const hint = s.api_key_hint && s.api_key_hint !== "…" ? ` ending ${s.api_key_hint}` : "";
      help.textContent = `A ${userPass ? "password" : "key"}${hint} is saved. Leave empty to keep it.`;
      input.placeholder = "••••••••••••";
    } else {
      help.textContent = userPass
        ? "The username and password from the provider's merchant portal."
        : "From the provider's merchant portal: Settings → API credentials.";
      input.placeholder = "";
    }
  }

  form.addEventListener("change", (event) => {
    if (event.target && event.target.name && event.target.type === "radio") syncForm();
  });
  // An edit makes an earlier "Saved" or "Not saved" stale.
  form.addEventListener("input", (event) => {
    if (event.target && event.target.id !== "new-channel") $("save-status").textContent = "";
  });

  function formValue() {
    const value = {
      provider: radioValue("provider"),
      environment: radioValue("environment"),
      region: radioValue("provider") === "kustom" ? "eu" : radioValue("region"),
      credential_type: radioValue("credential_type"),
      username: $("username").value,
      base_url: $("base_url").value,
      capture_mode: radioValue("capture_mode"),
      shipping_fee: radioValue("shipping_fee"),
      unknown_origin: radioValue("unknown_origin"),
      extend_authorization: $("extend_authorization").checked,
      payments_enabled: $("payments_enabled").checked,
      payment_categories: [...form.querySelectorAll('input[name="payment_categories"]:checked')].map((box) => box.value),
      payment_locale: $("payment_locale").value,
      purchase_countries: $("purchase_countries").value,
    };
    const key = $("api_key").value;
    if (key.trim()) value.api_key = key;
    return value;
  }

  function clearErrors() {
    for (const name of FIELDS) setError(name, null);
  }

  function setError(name, message) {
    const error = $(`err-${name}`);
    if (!error) return;
    error.textContent = message || "";
    error.hidden = !message;
    const target = $(name) || form.querySelector(`input[name="${name}"]`)?.closest("fieldset");
    if (target) {
      if (message) target.setAttribute("aria-invalid", "true");
      else target.removeAttribute("aria-invalid");
    }
  }

  function showErrors(fields) {
    clearErrors();
    let first = null;
    for (const [name, message] of Object.entries(fields || {})) {
      setError(name, message);
      if (name === "base_url") $("advanced").open = true;
      if (!first) first = name;
    }
    if (first) {
      const target = $(first) || form.querySelector(`input[name="${first}"]:checked, input[name="${first}"]`);
      if (target && !target.closest("[hidden]")) target.focus();
    }
  }

  // The last connection test, for the form exactly as it was tested.
  let lastTest = null;
  function formKey() {
    return JSON.stringify({ channel: state.channel, ...formValue() });
  }

  // Saving what Test connection just refused asks first (inline: the sandbox allows no dialogs).
  function confirmSave() {
    const status = $("save-status");
    const cancel = h("button", { type: "button", class: "btn btn-secondary btn-small", onclick: () => { status.replaceChildren(); $("save").focus(); } }, "Cancel");
    const save = h("button", { type: "button", class: "btn btn-primary btn-small", "data-confirm": "save", onclick: () => { status.replaceChildren(); save_(true); } }, "Save anyway");
    status.replaceChildren(`The connection test failed with these settings (${lastTest.title}). Save them anyway? `, save, " ", cancel);
    cancel.focus();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    save_(false);
  });

  async function save_(confirmed) {
    if (!confirmed && lastTest && !lastTest.ok && lastTest.key === formKey()) {
      confirmSave();
      return;
    }
    const button = $("save");
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    $("save-status").textContent = "Saving…";
    try {
      const data = await api("PUT", `/api/dashboard/settings?channel=${encodeURIComponent(state.channel)}`, formValue());
      fillSettings(data);
      $("welcome").hidden = true;
      const where = data.channel ? `channel ${data.channel}` : "all channels";
      $("save-status").textContent = `Saved for ${where}.`;
      notify("success", "Settings saved", `KOM's settings for ${where} are saved.`);
    } catch (error) {
      $("save-status").textContent = error.fields && Object.keys(error.fields).length ? "Not saved: check the fields marked below." : `Not saved: ${error.message}`;
      showErrors(error.fields);
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  $("test-connection").addEventListener("click", async () => {
    const button = $("test-connection");
    const result = $("connection-result");
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    result.hidden = false;
    result.replaceChildren(callout("info", null, "Testing the connection…"));
    try {
      const data = await api("POST", `/api/dashboard/test-connection?channel=${encodeURIComponent(state.channel)}`, formValue());
      clearErrors();
      const titles = {
        ok: "Connection works",
        unreachable: "Endpoint unreachable",
        wrong_credentials: "Wrong credentials",
        wrong_region: "Wrong region",
        rate_limited: "Rate limited",
        unavailable: "Provider unavailable",
        not_order_management: "Not an Order Management API",
        rejected: "Request refused",
      };
      const meta = [];
      if (data.status) meta.push(`HTTP ${data.status}${data.error_code ? ` ${data.error_code}` : ""}`);
      if (data.correlation_id) meta.push(`correlation id ${data.correlation_id}`);
      const title = titles[data.outcome] || "Test failed";
      lastTest = { key: formKey(), ok: data.ok, title };
      result.replaceChildren(callout(data.ok ? "success" : "critical", title, data.message, meta.join(" · ") || null));
      result.dataset.outcome = data.outcome;
      if (data.suggested_region) {
        result.firstChild.append(
          h("div", { class: "meta" }, h("button", { type: "button", class: "btn btn-secondary btn-small", onclick: () => { radio("region", data.suggested_region); syncForm(); result.hidden = true; $(`region-${data.suggested_region}`).focus(); } }, "Use this region")),
        );
      }
    } catch (error) {
      result.replaceChildren(callout("critical", "Cannot test yet", error.fields && Object.keys(error.fields).length ? "Fix the fields marked below first." : error.message));
      result.dataset.outcome = "invalid";
      showErrors(error.fields);
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  });

  $("channel").addEventListener("change", () => {
    const value = $("channel").value;
    if (value === "__new__") {
      $("new-channel-field").hidden = false;
      $("new-channel").focus();
      return;
    }
    loadSettings(value);
  });

  function addChannel() {
    const slug = $("new-channel").value.trim();
    if (!/^[\w-]{1,255}$/u.test(slug)) {
      setError("new-channel", "A channel is its slug: letters, digits, '-' and '_'.");
      $("new-channel").focus();
      return;
    }
    setError("new-channel", null);
    $("new-channel").value = "";
    loadSettings(slug);
  }
  $("add-channel").addEventListener("click", addChannel);
  $("new-channel").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      addChannel();
    }
  });

  // Sandboxed like the Dashboard's iframe, the page may not open dialogs: confirm inline.
  $("delete-channel").addEventListener("click", () => {
    const channel = state.channel;
    if (!channel) return;
    const status = $("save-status");
    const keep = h("button", { type: "button", class: "btn btn-secondary btn-small", onclick: () => { status.replaceChildren(); $("delete-channel").focus(); } }, "Keep");
    const remove = h("button", { type: "button", class: "btn btn-ghost-danger btn-small", onclick: () => removeChannel(channel) }, "Remove");
    status.replaceChildren(`Channel ${channel} will use the default settings. `, remove, " ", keep);
    keep.focus();
  });

  async function removeChannel(channel) {
    try {
      await api("DELETE", `/api/dashboard/settings?channel=${encodeURIComponent(channel)}`);
      notify("success", "Channel settings removed", `Channel ${channel} uses the default settings again.`);
      await loadSettings("");
      $("save-status").textContent = `Channel ${channel} now uses the default settings.`;
    } catch (error) {
      $("save-status").textContent = error.message;
    }
  }

  // Links out (provider portal, carrier tracking): the Dashboard's sandbox allows no popups,
  // so ask the Dashboard to open them, as AppBridge's "redirect" action does.
  document.addEventListener("click", (event) => {
    const link = event.target instanceof Element ? event.target.closest("a[data-external]") : null;
    if (!link || !inFrame) return;
    event.preventDefault();
    postToDashboard("redirect", { to: link.href, newContext: true });
  });

  // -- go ----------------------------------------------------------------------------------
  if (!inFrame) {
    gate("Open this page from the Saleor Dashboard: Apps → Klarna & Kustom Order Management.", true);
    return;
  }
  if (!saleorApiUrl || !dashboardOrigin) {
    gate("The Saleor Dashboard did not say which Saleor this is (saleorApiUrl is missing).", true);
    return;
  }
  postToDashboard("notifyReady", {});
  window.setTimeout(() => {
    if (state.token === null) gate("Still waiting for the Saleor Dashboard. Reload the page if this persists.", true);
  }, 10000);
})();
