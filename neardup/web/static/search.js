// Search page: drop (or pick) an image, see the catalog's most similar images with their evidence.
"use strict";

(() => {
  const form = document.getElementById("search-form");
  const drop = document.getElementById("drop");
  const picker = document.getElementById("file");
  const preview = document.getElementById("query-preview");
  const results = document.getElementById("results");
  const summary = document.getElementById("summary");
  const k = document.getElementById("k");
  const by = document.getElementById("by");
  let last = null;

  ND.attempt(async () => {
    const health = await ND.api("GET", "/api/health");
    for (const feature of health.features.filter((f) => f !== "auto")) {
      by.append(ND.el("option", { value: feature, text: feature }));
    }
    summary.textContent = `${health.images.toLocaleString()} images in the catalog.`;
  });

  async function search(file) {
    last = file;
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    summary.textContent = `Searching for ${file.name} …`;
    const body = new FormData();
    body.append("file", file);
    const url = `/api/search?k=${encodeURIComponent(k.value)}&by=${encodeURIComponent(by.value)}`;
    const answer = await ND.attempt(() => ND.api("POST", url, body));
    if (answer) show(answer, `${file.name}`);
    else summary.textContent = "";
  }

  async function similar(id, path) {
    const url = `/api/images/${id}/similar?k=${encodeURIComponent(k.value)}&by=${encodeURIComponent(by.value)}`;
    const answer = await ND.attempt(() => ND.api("GET", url));
    if (answer) {
      preview.src = ND.thumb(id, 256);
      show(answer, ND.name(path));
    }
  }

  function show(answer, label) {
    summary.textContent = answer.results.length
      ? `${answer.results.length} most similar to ${label}, best first.`
      : `Nothing in the catalog is like ${label}.`;
    results.replaceChildren(...answer.results.map((r, i) => card(r, i + 1)));
  }

  function card(r, rank) {
    const evidence = Object.entries(r.evidence).filter(([, v]) => v > 0).map(([kind, value]) =>
      ND.el("span", { class: value >= 0.5 ? "chip strong" : "chip", title: "confidence of this evidence",
                      text: `${label(kind)} ${(value * 100).toFixed(0)}%` }));
    return ND.el("li", { class: "card result", "data-id": r.id },
      ND.el("a", { class: "thumb", href: `/api/images/${r.id}/file`, target: "_blank", title: "open the file" },
        ND.el("img", { src: ND.thumb(r.id, 256), alt: ND.name(r.path), loading: "lazy" })),
      ND.el("div", { class: "body" },
        ND.el("div", {}, ND.el("span", { class: "score", text: `${rank}. ${(r.score * 100).toFixed(1)}%` }),
          ND.el("span", { class: "muted", text: ` by ${r.by}` })),
        ND.el("div", { class: "chips" }, evidence),
        ND.el("div", { class: "path mono", title: r.path, text: ND.tail(r.path, 2) }),
        ND.el("a", { href: "#", class: "small", text: "find similar", onclick: (e) => { e.preventDefault(); similar(r.id, r.path); } })));
  }

  function label(kind) {
    return { hashes: "hashes", cnn: "CNN", geometry: "keypoints", autoencoder: "autoencoder" }[kind] || kind;
  }

  picker.addEventListener("change", () => { if (picker.files[0]) search(picker.files[0]); });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => { if (e.dataTransfer.files[0]) search(e.dataTransfer.files[0]); });
  drop.addEventListener("click", (e) => { if (e.target.tagName !== "LABEL") picker.click(); });
  form.addEventListener("keydown", (e) => { if (e.key === "Enter" && !ND.typing(e)) picker.click(); });
  for (const control of [k, by]) control.addEventListener("change", () => { if (last) search(last); });
  form.addEventListener("submit", (e) => e.preventDefault());
})();
