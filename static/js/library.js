// The library and track pages: select-all, confirmations, and a reload once tracks being
// analysed are finished (unless the user has started selecting).
(() => {
  "use strict";
  const checkAll = document.getElementById("check-all");
  const boxes = () => Array.from(document.querySelectorAll("input[name=tracks]"));
  const counter = document.getElementById("selected-count");
  const count = () => {
    if (counter) counter.textContent = `${boxes().filter((b) => b.checked).length} selected`;
  };
  if (checkAll) {
    checkAll.addEventListener("change", () => {
      boxes().forEach((b) => { b.checked = checkAll.checked; });
      count();
    });
    boxes().forEach((b) => b.addEventListener("change", count));
  }

  const bulk = document.getElementById("library-form");
  if (bulk) {
    bulk.addEventListener("submit", (event) => {
      if (bulk.elements.action.value === "delete" && !window.confirm("Delete the selected tracks and their files?")) {
        event.preventDefault();
      }
    });
  }
  document.querySelectorAll("form[data-confirm]").forEach((f) => f.addEventListener("submit", (event) => {
    if (!window.confirm(f.dataset.confirm)) event.preventDefault();
  }));

  const busy = Array.from(document.querySelectorAll("[data-status=pending], [data-status=processing]"));
  if (!busy.length) return;
  const check = () => Promise.all(busy.map((el) =>
    fetch(el.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : { status: "gone" }))
      .catch(() => ({ status: el.dataset.status }))))
    .then((states) => {
      const finished = states.some((s) => !["pending", "processing"].includes(s.status));
      const selecting = boxes().some((b) => b.checked);
      if (finished && !selecting) window.location.reload();
      else setTimeout(check, 3000);
    });
  setTimeout(check, 3000);
})();
