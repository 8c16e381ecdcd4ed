// A tag batch's page: the progress bar follows the batch, and the page reloads when it is done.
(() => {
  "use strict";
  const box = document.getElementById("batch-progress");
  if (!box || ["done", "failed"].includes(box.dataset.state)) return;
  const bar = box.querySelector(".progress span");
  const count = document.getElementById("batch-count");
  const poll = () => fetch(box.dataset.progressUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
    .then((r) => r.json())
    .then((p) => {
      bar.style.width = `${p.total ? Math.round((100 * p.processed) / p.total) : 0}%`;
      count.textContent = `${p.processed} of ${p.total}`;
      if (p.finished) window.location.reload();
      else setTimeout(poll, 1500);
    })
    .catch(() => setTimeout(poll, 5000));
  setTimeout(poll, 1000);
})();
