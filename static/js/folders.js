// The folders page: a folder being scanned, or whose files are being analysed, shows its
// counts live (polled every two seconds until it is idle).
(() => {
  "use strict";
  const follow = (row) => {
    const poll = () => fetch(row.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((r) => r.json())
      .then((live) => {
        row.querySelectorAll("[data-count]").forEach((cell) => { cell.textContent = live[cell.dataset.count]; });
        row.dataset.busy = live.busy ? "true" : "";
        if (live.busy) setTimeout(poll, 2000);
      })
      .catch(() => setTimeout(poll, 5000));
    setTimeout(poll, 1000);
  };
  document.querySelectorAll("tr[data-status-url]").forEach((row) => {
    if (row.dataset.busy) follow(row);
    // "Scan now" posts and comes back to this page, busy: followed from there.
  });
})();
