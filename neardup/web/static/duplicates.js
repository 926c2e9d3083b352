// Duplicates page: groups a page at a time, one group in view, keepers chosen by hand,
// two members compared side by side, and a clean-up planned, applied and undone from here.
"use strict";

(() => {
  const PAGE = 20;
  const $ = (id) => document.getElementById(id);
  const state = {
    offset: 0, total: 0, generation: null, groups: [], current: 0,
    chosen: {},     // group index -> image id a person chose as keeper (this generation only)
    compare: null,  // [image id, image id]
    meta: {},       // image id -> GET /api/images/{id}
    plan: null, run: null,
  };

  async function loadPage(offset, pick = 0) {
    const page = await ND.attempt(() => ND.api("GET", `/api/duplicates?offset=${offset}&limit=${PAGE}`));
    if (!page) return;
    if (page.generation !== state.generation) state.chosen = {};
    Object.assign(state, { offset, total: page.total, generation: page.generation, groups: page.groups });
    state.current = Math.max(0, Math.min(pick, page.groups.length - 1));
    renderList();
    showGroup();
  }

  function keeperOf(group) {
    const id = state.chosen[group.index] ?? group.keeper;
    return { id, reason: id === group.keeper ? group.reason : "chosen by you" };
  }

  function renderList() {
    const last = Math.min(state.offset + PAGE, state.total);
    $("page-info").textContent = state.total ? `${state.offset + 1}–${last} of ${state.total}` : "no groups";
    $("prev-page").disabled = state.offset === 0;
    $("next-page").disabled = last >= state.total;
    $("group-list").replaceChildren(...state.groups.map((g, i) => ND.el("li", {
      class: i === state.current ? "current" : null, onclick: () => { state.current = i; renderList(); showGroup(); } },
      ND.el("img", { src: ND.thumb(keeperOf(g).id, 64), alt: "" }),
      ND.el("span", { text: `#${g.index + 1} · ${g.members.length} images` }))));
  }

  function showGroup() {
    const group = state.groups[state.current];
    $("compare").hidden = !group;
    $("clean").hidden = !group;
    if (!group) {
      $("group-title").textContent = "No duplicate groups";
      $("keeper-reason").textContent = "Index a folder on the Collection page, or the catalog has no copies.";
      $("members").replaceChildren();
      return;
    }
    const keeper = keeperOf(group);
    $("group-title").textContent = `Group ${group.index + 1} of ${state.total}`;
    $("keeper-reason").textContent = `Keeper: ${ND.name(group.members.find((m) => m.id === keeper.id).path)} — ${keeper.reason}.`;
    $("members").replaceChildren(...group.members.map((m, i) => memberCard(m, i, keeper)));
    const others = group.members.filter((m) => m.id !== keeper.id);
    if (!state.compare || !state.compare.every((id) => group.members.some((m) => m.id === id))) {
      state.compare = [keeper.id, others[0].id];
    }
    compare();
    for (const m of group.members) describe(m.id);
  }

  function memberCard(m, i, keeper) {
    const isKeeper = m.id === keeper.id;
    const compared = state.compare && state.compare.includes(m.id);
    return ND.el("li", {
      class: ["member", isKeeper ? "keeper" : "", compared ? "compared" : ""].join(" "), "data-id": m.id,
      onclick: () => { state.compare = [state.compare[0] === m.id ? state.compare[1] : state.compare[0], m.id]; showGroup(); } },
      ND.el("div", { class: "thumb" }, ND.el("img", { src: ND.thumb(m.id, 256), alt: ND.name(m.path) }),
        ND.el("span", { class: "n", text: String(i + 1) })),
      ND.el("div", { class: "body" },
        isKeeper ? ND.el("span", { class: "badge", title: keeper.reason, text: "keeper" }) : null,
        m.exact_copy ? ND.el("span", { class: "chip", text: "exact copy" }) : null),
      ND.el("dl", { id: `meta-${m.id}` }, metaRows(m, state.meta[m.id])),
      ND.el("div", { class: "actions" },
        isKeeper ? null : ND.el("button", { type: "button", class: "make-keeper", text: `make keeper (${i + 1})`,
          onclick: (e) => { e.stopPropagation(); chooseKeeper(m.id); } }),
        ND.el("a", { href: `/api/images/${m.id}/file`, target: "_blank", text: "open", onclick: (e) => e.stopPropagation() })));
  }

  function metaRows(m, meta) {
    const rows = [
      ["resolution", m.width && m.height ? `${m.width} × ${m.height}` : "?"],
      ["size", ND.bytes(m.size)],
      ["format", m.format || "?"],
      ["date", meta ? meta.taken || "—" : "…"],
      ["camera", meta ? meta.camera || "—" : "…"],
      ["path", ND.tail(m.path)],
    ];
    return rows.flatMap(([k, v]) => [ND.el("dt", { text: k }), ND.el("dd", { text: v, title: k === "path" ? m.path : v })]);
  }

  async function describe(id) {
    if (!state.meta[id]) {
      const meta = await ND.attempt(() => ND.api("GET", `/api/images/${id}`));
      if (!meta) return;
      state.meta[id] = meta;
    }
    const box = document.getElementById(`meta-${id}`);
    const member = state.groups[state.current]?.members.find((m) => m.id === id);
    if (box && member) box.replaceChildren(...metaRows(member, state.meta[id]));
  }

  function compare() {
    const group = state.groups[state.current];
    const [a, b] = state.compare.map((id) => group.members.find((m) => m.id === id));
    $("compare-a").textContent = ND.name(a.path);
    $("compare-b").textContent = ND.name(b.path);
    Compare.load(a, b);
  }

  function chooseKeeper(id) {
    const group = state.groups[state.current];
    if (id === group.keeper) delete state.chosen[group.index];
    else state.chosen[group.index] = id;
    showGroup();
    renderList();
  }

  async function notDuplicate() {
    const [a, b] = state.compare;
    const done = await ND.attempt(() => ND.api("POST", "/api/duplicates/not-duplicate", { a, b }));
    if (done === null) {
      ND.toast("Recorded: these two are not duplicates.");
      await loadPage(state.offset, state.current);
    }
  }

  function step(delta) {
    const next = state.current + delta;
    if (next >= 0 && next < state.groups.length) {
      state.current = next;
      renderList();
      showGroup();
    } else if (delta > 0 && state.offset + PAGE < state.total) loadPage(state.offset + PAGE, 0);
    else if (delta < 0 && state.offset > 0) loadPage(Math.max(0, state.offset - PAGE), PAGE - 1);
  }

  async function makePlan(event) {
    event.preventDefault();
    const group = state.groups[state.current];
    const body = {
      action: $("action").value,
      to: $("action").value === "move" ? $("to").value.trim() || null : null,
      keepers: $("scope-group").checked ? (state.chosen[group.index] ? [state.chosen[group.index]] : [])
                                         : Object.values(state.chosen),
      groups: $("scope-group").checked ? [group.members[0].id] : null,
    };
    const plan = await ND.attempt(() => ND.api("POST", "/api/plans", body));
    if (!plan) return;
    state.plan = plan;
    $("plan").hidden = false;
    $("applied").hidden = true;
    $("plan-summary").textContent = `Plan: ${plan.files} files to ${plan.action} (${ND.bytes(plan.bytes)}) ` +
      `in ${plan.groups_total} group${plan.groups_total === 1 ? "" : "s"}. Nothing has changed yet.`;
    $("plan-files").replaceChildren(...plan.groups.flatMap((g) => [
      ND.el("li", { class: "mono", text: `keep ${g.keeper.path} (${g.keeper.reason})` }),
      ...g.members.map((m) => ND.el("li", { class: "mono", text: m.acted
        ? `${m.action} ${m.path}${m.destination ? " → " + m.destination : ""}` : `keep ${m.path} (${m.reason})` })),
    ]));
    $("plan-file").href = `/api/plans/${plan.id}/file`;
    $("apply-plan").disabled = plan.files === 0;
  }

  async function applyPlan() {
    const plan = state.plan;
    if (!plan || !window.confirm(`${plan.action} ${plan.files} files? Undo puts them back.`)) return;
    const report = await ND.attempt(() => ND.api("POST", `/api/plans/${plan.id}/apply`, { yes: false }));
    if (!report) return;
    state.run = report.run_id;
    $("plan").hidden = true;
    $("applied").hidden = false;
    const skipped = report.skipped.length ? `, ${report.skipped.length} skipped: ` +
      report.skipped.map((s) => `${ND.name(s.path)} (${s.reason})`).join("; ") : "";
    const done = { trash: "trashed", move: "moved", hardlink: "hard-linked", symlink: "symlinked", delete: "deleted" };
    $("applied-summary").textContent = `Run ${report.run_id}: ${report.acted} files ${done[report.action]}, ` +
      `${ND.bytes(report.bytes_reclaimed)} reclaimed${skipped}.`;
    $("undo").disabled = false;
    await loadPage(state.offset, state.current);
  }

  async function undo() {
    const report = await ND.attempt(() => ND.api("POST", "/api/undo", { run: state.run }));
    if (!report) return;
    $("applied-summary").textContent = `Run ${report.run_id} ${report.complete ? "undone" : "partly undone"}: ` +
      `${report.restored} files put back` + (report.skipped.length ? `, ${report.skipped.length} not: ` +
      report.skipped.map((s) => `${ND.name(s.path)} (${s.reason})`).join("; ") : "") + ".";
    $("undo").disabled = true;
    await loadPage(state.offset, state.current);
  }

  document.addEventListener("keydown", (e) => {
    if (ND.typing(e) || e.ctrlKey || e.metaKey || e.altKey || !state.groups.length) return;
    const group = state.groups[state.current];
    if (e.key === "ArrowRight" || e.key === "j") step(1);
    else if (e.key === "ArrowLeft" || e.key === "k") step(-1);
    else if (/^[1-9]$/.test(e.key) && group.members[Number(e.key) - 1]) chooseKeeper(group.members[Number(e.key) - 1].id);
    else if (e.key === "x") notDuplicate();
    else if (e.key === "d") Compare.toggleDiff();
    else if (e.key === "+" || e.key === "=") Compare.zoom(1.25);
    else if (e.key === "-") Compare.zoom(0.8);
    else if (e.key === "0") Compare.reset();
    else return;
    e.preventDefault();
  });
  $("prev-group").addEventListener("click", () => step(-1));
  $("next-group").addEventListener("click", () => step(1));
  $("prev-page").addEventListener("click", () => loadPage(Math.max(0, state.offset - PAGE)));
  $("next-page").addEventListener("click", () => loadPage(state.offset + PAGE));
  $("not-dup").addEventListener("click", notDuplicate);
  $("plan-form").addEventListener("submit", makePlan);
  $("apply-plan").addEventListener("click", applyPlan);
  $("undo").addEventListener("click", undo);
  $("action").addEventListener("change", () => { $("to-label").hidden = $("action").value !== "move"; });
  loadPage(0);
})();
