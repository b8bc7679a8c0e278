// The web page's behaviour: live fragments, actions and forms through the /v1 API.
// Changes go to the same API as every other client (session cookie, same-origin), so the
// page shows exactly the API's validation errors, next to the field they name.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

function flash(message, kind = "ok") {
  const box = $("#flash");
  box.textContent = message;
  box.className = `flash-${kind}`;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { box.textContent = ""; box.className = ""; }, 6000);
}

// A call to the JSON API; resolves to {status, body}. Signed out: back to the sign-in page.
async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && !path.startsWith("/ui/session")) {
    location.assign(`/ui/signin?next=${encodeURIComponent(location.pathname + location.search)}`);
  }
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = { detail: text }; }
  return { status: response.status, body: parsed };
}

// The message of an error answer: FastAPI's list of field errors, or one detail.
function describe(body) {
  const detail = body && body.detail;
  if (Array.isArray(detail)) return detail.map((d) => `${fieldOf(d.loc)}: ${d.msg}`).join("; ");
  return typeof detail === "string" ? detail : "the request failed";
}

function fieldOf(loc) {
  const parts = (loc || []).filter((p) => p !== "body" && p !== "query");
  return parts.length ? String(parts[0]) : "_form";
}

// Show each error of a 422 next to the field it names; anything else at the top of the form.
function showErrors(form, body) {
  clearErrors(form);
  const detail = body && Array.isArray(body.detail) ? body.detail : [{ loc: [], msg: describe(body) }];
  let first = null;
  for (const error of detail) {
    const field = fieldOf(error.loc);
    const slot = $$("[data-error-for]", form).find((el) => el.dataset.errorFor.split(" ").includes(field))
      || $("[data-error-for='_form']", form);
    if (!slot) { flash(`${field}: ${error.msg}`, "error"); continue; }
    slot.textContent = slot.textContent ? `${slot.textContent}; ${error.msg}` : error.msg;
    const input = slot.id && $(`[aria-describedby~='${slot.id}']`, form);
    if (input) { input.setAttribute("aria-invalid", "true"); first = first || input; }
  }
  if (first) first.focus();
}

function clearErrors(form) {
  $$("[data-error-for]", form).forEach((el) => { el.textContent = ""; });
  $$("[aria-invalid]", form).forEach((el) => el.removeAttribute("aria-invalid"));
}

// Live regions: re-fetch the element's fragment and swap it in when it changed; stop once a
// fragment says it is final. Paused while the tab is hidden.
function startLive(element) {
  const every = Number(element.dataset.every || 3000);
  let last = element.innerHTML;
  const final = () => Boolean($("[data-final='true']", element));
  // One fetch and swap; also called at once after an action (see refreshLive).
  element.liveRefresh = async () => {
    try {
      const response = await fetch(element.dataset.live, { credentials: "same-origin" });
      if (response.status === 401) { location.reload(); return; }
      if (!response.ok) return;
      const html = await response.text();
      if (html === last) return;
      const focused = document.activeElement && document.activeElement.id;
      element.innerHTML = html;
      last = html;
      if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
    } catch { /* the next tick tries again */ }
  };
  const tick = async () => {
    if (!document.hidden) await element.liveRefresh();
    if (!final()) setTimeout(tick, every);
  };
  if (!final()) setTimeout(tick, every);
}

// A datetime-local value (the browser's wall clock) as an ISO instant.
function instant(value) {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toISOString();
}

const actions = {
  async run(el) {
    const r = await api("POST", `/v1/tasks/${el.dataset.task}/run`, {});
    if (r.status === 201) { flash(`Job ${r.body.job.name} created; it runs now.`); refreshLive(); }
    else flash(describe(r.body), "error");
  },
  async pause(el) { await toggle(el, "pause", "Paused: no new jobs are scheduled."); },
  async resume(el) { await toggle(el, "resume", "Resumed."); },
  async delete(el) {
    if (!confirm(`Delete task ${el.dataset.task}? Its schedule and planned jobs go; past jobs stay in Prefect.`)) return;
    const r = await api("DELETE", `/v1/tasks/${el.dataset.task}`);
    if (r.status === 204) location.assign("/ui/tasks");
    else flash(describe(r.body), "error");
  },
  async cancel(el) {
    if (!confirm("Cancel this job? A running job is stopped.")) return;
    const r = await api("POST", `/v1/jobs/${el.dataset.job}/cancel`);
    if (r.status === 200) { flash(`Job ${r.body.name} cancelled.`); refreshLive(); }
    else flash(describe(r.body), "error");
  },
  async schedule(form) {
    const r = await api("POST", `/v1/tasks/${form.dataset.task}/schedule`, { at: instant(form.elements.at.value) });
    if (r.status === 201) { clearErrors(form); flash(`Job ${r.body.job.name} scheduled.`); refreshLive(); }
    else showErrors(form, r.body);
  },
  async reschedule(form) {
    const r = await api("POST", `/v1/jobs/${form.dataset.job}/reschedule`, { at: instant(form.elements.at.value) });
    if (r.status === 200) {
      flash("Rescheduled: a new job replaces this one.");
      location.assign(`/ui/jobs/${r.body.job_id}`);
    } else showErrors(form, r.body);
  },
};

async function toggle(el, verb, message) {
  const r = await api("POST", `/v1/tasks/${el.dataset.task}/${verb}`);
  if (r.status === 200) { flash(message); setTimeout(() => location.reload(), 600); }
  else flash(describe(r.body), "error");
}

function refreshLive() {
  // Wake the live regions now rather than at their next tick.
  $$("[data-live]").forEach((el) => el.liveRefresh && el.liveRefresh());
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (button && actions[button.dataset.action]) {
    event.preventDefault();
    button.disabled = true;
    actions[button.dataset.action](button).finally(() => { button.disabled = false; });
  }
});

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-action]");
  if (form && actions[form.dataset.action]) {
    event.preventDefault();
    actions[form.dataset.action](form);
  }
});

// ---- sign in and out ----------------------------------------------------------------------

function setUpSignIn() {
  const form = $("#signin-form");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const r = await api("POST", "/ui/session", { token: form.elements.token.value });
    if (r.status === 200) location.assign(form.dataset.next || "/ui/tasks");
    else showErrors(form, { detail: [{ loc: ["token"], msg: describe(r.body) }] });
  });
}

function setUpSignOut() {
  const button = $("#sign-out");
  if (!button) return;
  button.addEventListener("click", async () => {
    await fetch("/ui/signout", { method: "POST", credentials: "same-origin" });
    location.assign("/ui/signin");
  });
}

// ---- code view and task form ----------------------------------------------------------------

function editor(textarea, readOnly) {
  if (!window.CodeMirror) return null;  // the plain textarea still works
  const cm = CodeMirror.fromTextArea(textarea, {
    mode: "python",
    lineNumbers: true,
    indentUnit: 4,
    readOnly,
    viewportMargin: Infinity,
    screenReaderLabel: textarea.getAttribute("aria-label") || (textarea.labels[0] && textarea.labels[0].textContent) || "code",
    extraKeys: {
      Tab: (c) => c.execCommand(c.somethingSelected() ? "indentMore" : "insertSoftTab"),
      "Shift-Tab": "indentLess",
      // Leave the editor by keyboard: Esc, then Tab moves on as anywhere else.
      Esc: (c) => { c.getInputField().blur(); textarea.closest("form, section").querySelector("#f-entry, button")?.focus(); },
    },
  });
  cm.getWrapperElement().setAttribute("data-editor", textarea.id);
  return cm;
}

const PLACEHOLDERS = {
  none: ["", "No schedule: run now or at a time from the task's page."],
  cron: ["0 9 * * 1-5", "Five fields: minute hour day-of-month month day-of-week, in the zone."],
  every: ["15m", "An interval: 30s, 15m, 1h30m, 1d."],
  at: ["2027-01-01T09:00:00", "One run, at this wall-clock time in the zone."],
  rrule: ["FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0", "An RFC 5545 RRULE, in the zone."],
};

function setUpTaskForm() {
  const form = $("#task-form");
  if (!form) return;
  const code = editor($("#f-code"), false);
  const kindOf = () => form.elements.kind.value;
  const sourceOf = () => form.elements.source.value;

  const showKind = () => {
    const kind = kindOf();
    const [placeholder, hint] = PLACEHOLDERS[kind];
    const input = $("#f-schedule");
    input.placeholder = placeholder;
    input.disabled = kind === "none";
    $("#schedule-label").textContent = kind === "none" ? "Expression" : { cron: "Cron expression", every: "Every", at: "Run once at", rrule: "RRULE" }[kind];
    $("#hint-schedule").textContent = hint;
    preview();
  };
  const showSource = () => {
    $$("[data-source]", form).forEach((el) => { el.hidden = el.dataset.source !== sourceOf(); });
    if (code) code.refresh();
  };

  let timer = null;
  let asked = 0;
  const preview = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const kind = kindOf();
      const list = $("#preview");
      const text = $("#preview-text");
      const slot = $("#err-schedule");
      const value = $("#f-schedule").value.trim();
      if (kind === "none" || !value) {
        list.innerHTML = ""; text.textContent = kind === "none" ? "Runs only when started or scheduled." : ""; slot.textContent = "";
        return;
      }
      const params = new URLSearchParams({ [kind]: value, timezone: $("#f-timezone").value || "UTC", count: "5" });
      for (const f of ["start", "end"]) if (form.elements[f].value) params.set(f, form.elements[f].value);
      const mine = ++asked;
      const r = await api("GET", `/v1/schedules/preview?${params}`);
      if (mine !== asked) return;  // a newer preview is on its way
      ["err-schedule", "err-timezone", "err-start", "err-end"].forEach((id) => { $(`#${id}`).textContent = ""; });
      $$("[aria-invalid]", form).forEach((el) => el.removeAttribute("aria-invalid"));
      list.innerHTML = "";
      if (r.status !== 200) { text.textContent = ""; showErrors(form, r.body); return; }
      text.textContent = r.body.next.length ? `${r.body.schedule}:` : `${r.body.schedule}: no run ahead.`;
      const zone = r.body.timezone;
      const fmt = new Intl.DateTimeFormat(undefined, {
        timeZone: zone, weekday: "short", year: "numeric", month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
      });
      r.body.next.forEach((utc, i) => {
        const li = document.createElement("li");
        const time = document.createElement("time");
        time.dateTime = utc;
        time.textContent = fmt.format(new Date(utc));
        time.title = r.body.next_local[i];
        li.append(time, ` (${relative(new Date(utc))})`);
        list.append(li);
      });
    }, 250);
  };

  $$("input[name=kind]", form).forEach((el) => el.addEventListener("change", showKind));
  $$("input[name=source]", form).forEach((el) => el.addEventListener("change", showSource));
  ["#f-schedule", "#f-timezone", "#f-start", "#f-end"].forEach((s) => $(s).addEventListener("input", preview));
  showKind();
  showSource();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (code) code.save();
    const editing = form.dataset.mode === "edit";
    const body = collect(form, editing);
    if (body === null) return;
    const r = editing
      ? await api("PATCH", `/v1/tasks/${form.dataset.task}`, body)
      : await api("POST", "/v1/tasks", body);
    if (r.status === 200 || r.status === 201) location.assign(`/ui/tasks/${r.body.name}`);
    else showErrors(form, r.body);
  });
}

// The form as the API's JSON; null (with the error shown) when parameters are not JSON.
function collect(form, editing) {
  const value = (name) => form.elements[name].value.trim();
  const optional = (name) => (value(name) === "" ? null : value(name));
  let parameters;
  try {
    parameters = JSON.parse(value("parameters") || "{}");
  } catch (error) {
    showErrors(form, { detail: [{ loc: ["body", "parameters"], msg: `not valid JSON: ${error.message}` }] });
    return null;
  }
  const body = {
    name: value("name"),
    description: value("description"),
    parameters,
    timezone: value("timezone") || "UTC",
    start: optional("start"),
    end: optional("end"),
    retries: value("retries") === "" ? 0 : Number(value("retries")),
    retry_delay: value("retry_delay") || "10s",
    timeout: optional("timeout"),
    concurrency: value("concurrency") === "" ? null : Number(value("concurrency")),
    concurrency_policy: value("concurrency_policy"),
    pool: optional("pool"),
    tags: value("tags").split(",").map((t) => t.trim()).filter(Boolean),
  };
  if (form.elements.source.value === "code") {
    body.code = form.elements.code.value;
    body.entry = value("entry") || "main";
  } else {
    body.entrypoint = value("entrypoint");
  }
  const kind = form.elements.kind.value;
  if (kind !== "none") body[kind] = value("schedule");
  else if (editing) Object.assign(body, { cron: null, every: null, at: null, rrule: null });
  if (!editing) for (const key of Object.keys(body)) if (body[key] === null) delete body[key];
  return body;
}

function relative(date) {
  const seconds = Math.round((date.getTime() - Date.now()) / 1000);
  const units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size || unit === "second") return rtf.format(Math.round(seconds / size), unit);
  }
  return "";
}

document.addEventListener("DOMContentLoaded", () => {
  setUpSignIn();
  setUpSignOut();
  setUpTaskForm();
  $$("[data-code-view]").forEach((el) => editor(el, true));
  $$("[data-live]").forEach(startLive);
});
