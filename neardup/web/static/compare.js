// Side-by-side compare of two images: one zoom and pan for both panes, and a difference view.
"use strict";

const Compare = (() => {
  const panes = [document.getElementById("pane-a"), document.getElementById("pane-b")];
  const images = [document.getElementById("img-a"), document.getElementById("img-b")];
  const canvas = document.getElementById("diff-canvas");
  const diffBox = document.getElementById("diff");
  const view = { scale: 1, x: 0, y: 0 };
  let base = { w: 1, h: 1 };
  let drag = null;

  // Both images are laid out at one base width (fitted to the pane by the first image), so a
  // transform shows the same part of each, whatever their pixel sizes.
  function layout() {
    const pane = panes[0];
    const a = images[0];
    if (!a.naturalWidth) return;
    const aspect = a.naturalHeight / a.naturalWidth;
    const w = Math.min(pane.clientWidth, pane.clientHeight / aspect);
    base = { w, h: w * aspect };
    for (const img of images) img.style.width = `${w}px`;
    canvas.style.width = `${w}px`;
    reset();
  }

  function apply() {
    const t = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
    for (const node of [...images, canvas]) node.style.transform = t;
  }

  function reset() {
    view.scale = 1;
    view.x = (panes[0].clientWidth - base.w) / 2;
    view.y = (panes[0].clientHeight - base.h) / 2;
    apply();
  }

  function zoom(factor, cx, cy) {
    const pane = panes[0];
    cx = cx ?? pane.clientWidth / 2;
    cy = cy ?? pane.clientHeight / 2;
    const scale = Math.min(32, Math.max(0.2, view.scale * factor));
    const f = scale / view.scale;
    view.x = cx - (cx - view.x) * f;
    view.y = cy - (cy - view.y) * f;
    view.scale = scale;
    apply();
  }

  function difference() {
    const [a, b] = images;
    if (!a.naturalWidth || !b.naturalWidth) return;
    const w = a.naturalWidth;
    const h = a.naturalHeight;
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(b, 0, 0, w, h);
    const pb = ctx.getImageData(0, 0, w, h);
    ctx.drawImage(a, 0, 0, w, h);
    const pa = ctx.getImageData(0, 0, w, h);
    const out = ctx.createImageData(w, h);
    for (let i = 0; i < pa.data.length; i += 4) {
      // the largest channel difference, amplified: small re-encoding noise stays dark
      const d = Math.max(Math.abs(pa.data[i] - pb.data[i]), Math.abs(pa.data[i + 1] - pb.data[i + 1]),
                         Math.abs(pa.data[i + 2] - pb.data[i + 2]));
      const v = Math.min(255, d * 4);
      out.data[i] = v; out.data[i + 1] = v * 0.6; out.data[i + 2] = 0; out.data[i + 3] = 255;
    }
    ctx.putImageData(out, 0, 0);
  }

  function showDiff(on) {
    diffBox.checked = on;
    if (on) difference();
    canvas.hidden = !on;
    images[1].style.visibility = on ? "hidden" : "visible";
  }

  function loaded(img) {
    return img.complete && img.naturalWidth ? Promise.resolve() : new Promise((resolve) => {
      img.addEventListener("load", resolve, { once: true });
      img.addEventListener("error", resolve, { once: true });
    });
  }

  async function load(a, b) {
    images[0].src = ND.thumb(a.id, 1024);
    images[1].src = ND.thumb(b.id, 1024);
    images[0].alt = a.path;
    images[1].alt = b.path;
    await Promise.all(images.map(loaded));
    layout();
    showDiff(diffBox.checked);
  }

  for (const pane of panes) {
    pane.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = pane.getBoundingClientRect();
      zoom(e.deltaY < 0 ? 1.2 : 1 / 1.2, e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    pane.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY };
      pane.setPointerCapture(e.pointerId);
    });
    pane.addEventListener("pointermove", (e) => {
      if (!drag) return;
      view.x += e.clientX - drag.x;
      view.y += e.clientY - drag.y;
      drag = { x: e.clientX, y: e.clientY };
      apply();
    });
    pane.addEventListener("pointerup", () => { drag = null; });
  }
  diffBox.addEventListener("change", () => showDiff(diffBox.checked));
  document.getElementById("zoom-in").addEventListener("click", () => zoom(1.25));
  document.getElementById("zoom-out").addEventListener("click", () => zoom(0.8));
  document.getElementById("zoom-reset").addEventListener("click", reset);
  window.addEventListener("resize", layout);

  return { load, zoom, reset, toggleDiff: () => showDiff(!diffBox.checked), view };
})();
