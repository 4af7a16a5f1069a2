// Butterfly: the one script of every page. Served by butterfly-router at /_console/console.js.
// Pages work without it (links, forms); it adds two things:
//  1. <button data-post="/url" data-body='{"k": "v"}' [data-confirm="…"] [data-then="/next"]>
//     POSTs the body as JSON (same-origin: the auth plugin's CSRF rule accepts it by its Origin,
//     and a cross-site form cannot send JSON), then refreshes the page's live parts.
//  2. <body data-refresh="5">: every 5 s, while the tab is visible, the page is fetched again
//     and each element marked data-live (by id) is replaced by its new server-rendered version.
"use strict";

(function () {
  const flash = (text, isError) => {
    const box = document.getElementById("flash");
    if (!box) return;
    box.textContent = text;
    box.classList.toggle("error", Boolean(isError));
    box.hidden = !text;
  };

  const setStatus = (text) => {
    const status = document.getElementById("live-status");
    if (status) status.textContent = text;
  };

  let refreshing = false;
  async function refreshLive() {
    const live = document.querySelectorAll("[data-live][id]");
    if (!live.length || refreshing) return false;
    refreshing = true;
    try {
      const reply = await fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
      if (!reply.ok || reply.redirected) throw new Error("HTTP " + reply.status);
      const fresh = new DOMParser().parseFromString(await reply.text(), "text/html");
      for (const element of live) {
        const next = fresh.getElementById(element.id);
        if (next) element.replaceWith(document.importNode(next, true));
      }
      setStatus("updated " + new Date().toLocaleTimeString());
      return true;
    } catch (error) {
      setStatus("refresh failed: " + error.message);
      return false;
    } finally {
      refreshing = false;
    }
  }

  async function post(button) {
    const data = button.dataset;
    if (data.confirm && !window.confirm(data.confirm)) return;
    button.disabled = true;
    try {
      const reply = await fetch(data.post, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        credentials: "same-origin",
        body: data.body || "{}",
      });
      const answer = await reply.json().catch(() => ({}));
      if (!reply.ok || (answer.stat && answer.stat !== "OK")) {
        const reason = reply.headers.get("x-reason") || answer.reason || answer.stat || "HTTP " + reply.status;
        flash((button.textContent || "action").trim() + " failed: " + reason, true);
        return;
      }
      if (data.then) {
        location.assign(data.then);
        return;
      }
      flash((button.textContent || "action").trim() + ": done", false);
      if (!(await refreshLive())) location.reload();
    } catch (error) {
      flash("request failed: " + error.message, true);
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-post]");
    if (button) {
      event.preventDefault();
      post(button);
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    const seconds = Number(document.body.dataset.refresh || 0);
    if (seconds > 0) {
      setInterval(() => {
        if (document.visibilityState === "visible") refreshLive();
      }, seconds * 1000);
    }
  });
})();
