// Collection page: what the catalog holds, which files failed and why, and indexing a folder
// as a background job whose progress streams in live (server-sent events).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const FAILURES = 50;
  let failuresOffset = 0;
  let stream = null;

  async function load() {
    const c = await ND.attempt(() => ND.api("GET", `/api/collection?offset=${failuresOffset}&limit=${FAILURES}`));
    if (!c) return;
    const shown = [["images", c.counts.images], ["indexed", c.counts.ok], ["failed", c.counts.failed]];
    for (const [key, value] of Object.entries(c.counts)) {
      if (!["images", "ok", "failed"].includes(key) && !key.includes(".")) shown.push([key, value]);
    }
    shown.push(["features", c.features.length]);
    $("counts").replaceChildren(...shown.map(([label, value]) =>
      ND.el("div", {}, ND.el("b", { text: Number(value).toLocaleString() }), ND.el("span", { text: label }))));
    $("roots").replaceChildren(...(c.roots.length ? c.roots : ["none yet"]).map((r) => ND.el("li", { text: r })));
    $("failed-count").textContent = `(${c.failures_total})`;
    $("failures").tBodies[0].replaceChildren(...(c.failures.length ? c.failures.map((f) =>
      ND.el("tr", {}, ND.el("td", { class: "mono", text: f.path }), ND.el("td", { text: f.reason })))
      : [ND.el("tr", {}, ND.el("td", { colspan: 2, class: "muted", text: "no file failed" }))]));
    const last = Math.min(failuresOffset + FAILURES, c.failures_total);
    $("failures-page").textContent = c.failures_total ? `${failuresOffset + 1}–${last} of ${c.failures_total}` : "";
    $("failures-prev").disabled = failuresOffset === 0;
    $("failures-next").disabled = last >= c.failures_total;
  }

  function show(job) {
    $("job").hidden = false;
    const stage = job.label || (job.stage > 1 ? "embedding" : "decoding and hashing");
    $("job-title").textContent = `${job.description}: ${job.state === "running" ? stage : job.state}`;
    $("job-progress").value = job.percent;
    $("job-percent").textContent = `${Math.round(job.percent)} %` + (job.total ? ` (${job.done} of ${job.total})` : "");
    if (job.state === "done") {
      const r = job.result;
      $("job-result").textContent = `Done in ${r.seconds.toFixed(1)} s: ${r.new} new, ${r.changed} changed, ` +
        `${r.unchanged} unchanged, ${r.moved} moved, ${r.removed} removed, ${r.failed} failed` +
        (r.redecoded ? `, ${r.redecoded} read again (an older neardup decoded them otherwise).` : ".");
    } else if (job.state === "failed") {
      $("job-result").textContent = `Failed: ${job.error}`;
    } else $("job-result").textContent = "";
  }

  function follow(job) {
    show(job);
    if (stream) stream.close();
    stream = new EventSource(`/api/jobs/${job.id}/events`);
    stream.addEventListener("progress", (e) => show(JSON.parse(e.data)));
    stream.addEventListener("end", (e) => {
      stream.close();
      stream = null;
      const done = JSON.parse(e.data);
      show(done);
      $("start-index").disabled = false;
      load();
    });
  }

  $("index-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const folder = $("folder").value.trim();
    if (!folder) return;
    $("start-index").disabled = true;
    const job = await ND.attempt(() => ND.api("POST", "/api/index", { paths: [folder] }));
    if (job) follow(job);
    else $("start-index").disabled = false;
  });
  $("failures-prev").addEventListener("click", () => { failuresOffset = Math.max(0, failuresOffset - FAILURES); load(); });
  $("failures-next").addEventListener("click", () => { failuresOffset += FAILURES; load(); });

  load();
  ND.attempt(async () => {
    const running = (await ND.api("GET", "/api/jobs")).find((j) => j.state === "running");
    if (running) { $("start-index").disabled = true; follow(running); }
  });
})();
