// neardup web app: what every page shares (API calls with the CSRF header, small DOM helpers).
"use strict";

const ND = {
  csrf: document.querySelector('meta[name="csrf-token"]').content,

  // Call the REST API; a JSON error ({error, detail, hint}) becomes a thrown Error with its detail.
  async api(method, url, body) {
    const options = { method, headers: { "X-CSRF-Token": ND.csrf }, credentials: "same-origin" };
    if (body instanceof FormData) options.body = body;
    else if (body !== undefined) {
      options.body = JSON.stringify(body);
      options.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(url, options);
    if (response.status === 204) return null;
    const data = await response.json().catch(() => ({ detail: response.statusText }));
    if (!response.ok) {
      const error = new Error(data.detail + (data.hint ? ` (${data.hint})` : ""));
      error.status = response.status;
      throw error;
    }
    return data;
  },

  thumb(id, size = 256) { return `/api/images/${id}/thumbnail?size=${size}`; },

  el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  },

  bytes(n) {
    if (n === null || n === undefined) return "?";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
    return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
  },

  name(path) { return path.split("/").pop(); },

  // The end of a long path, which is what tells files apart: "…/photos/edits/a.jpg".
  tail(path, parts = 3) {
    const names = path.split("/");
    return names.length > parts + 1 ? `…/${names.slice(-parts).join("/")}` : path;
  },

  toast(message, kind = "info") {
    const box = document.getElementById("toast");
    box.textContent = message;
    box.className = kind;
    box.hidden = false;
    clearTimeout(ND._toastTimer);
    ND._toastTimer = setTimeout(() => { box.hidden = true; }, kind === "error" ? 8000 : 3500);
  },

  // Run an async action, showing its error to the person instead of failing silently.
  async attempt(action) {
    try { return await action(); } catch (error) { ND.toast(error.message, "error"); return undefined; }
  },

  typing(event) {
    const tag = (event.target.tagName || "").toLowerCase();
    return tag === "input" || tag === "select" || tag === "textarea" || event.target.isContentEditable;
  },
};
