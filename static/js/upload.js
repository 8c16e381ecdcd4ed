// The upload page: each file is sent with XMLHttpRequest (for upload progress), then its
// analysis is followed by polling the track's status URL until it is done or failed.
(() => {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = document.getElementById("file-input");
  const zone = document.getElementById("dropzone");
  const list = document.getElementById("upload-list");
  const template = document.getElementById("upload-item");
  const csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  const maxBytes = Number(form.dataset.maxBytes);
  const STEPS = ["uploading", "queued", "decoding", "analysing", "tagging", "done"];
  const PARALLEL = 2;
  const POLL_MS = 1000;
  const queue = [];
  let active = 0;

  const megabytes = (n) => `${(n / 1048576).toFixed(1)} MB`;

  function show(item, state, fraction, message) {
    item.dataset.state = state;
    const reached = STEPS.indexOf(state);
    item.querySelectorAll(".steps li").forEach((li) => {
      const index = STEPS.indexOf(li.dataset.step);
      li.classList.toggle("reached", reached >= 0 && index < reached);
      li.classList.toggle("current", index === reached);
    });
    const bar = item.querySelector(".progress span");
    bar.style.width = `${Math.round(Math.min(1, Math.max(0, fraction)) * 100)}%`;
    if (message !== undefined) item.querySelector(".ui-message").textContent = message;
  }

  function fail(item, message) {
    item.dataset.state = "failed";
    item.querySelector(".ui-message").textContent = message;
    item.querySelector(".ui-result").innerHTML = '<span class="badge badge-failed">failed</span>';
  }

  function finish(item, track) {
    const result = item.querySelector(".ui-result");
    const link = document.createElement("a");
    link.href = track.url;
    link.className = "ui-genre";
    const top = track.genres[0];
    link.textContent = track.uncertain || !top
      ? "uncertain · open"
      : `${top.label} ${Math.round(top.confidence * 100)}% · open`;
    result.replaceChildren(link);
    show(item, "done", 1, track.error || (track.genres_after.length
      ? `Tags now: ${track.genres_after.join(", ")}` : "No genre tag was written."));
  }

  function poll(item, url) {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((response) => {
        if (!response.ok) throw new Error(`status ${response.status}`);
        return response.json();
      })
      .then((track) => {
        if (track.status === "done") return finish(item, track);
        if (track.status === "failed") return fail(item, track.error);
        const stage = track.status === "pending" ? "queued" : track.stage;
        show(item, stage, track.progress, `${stage[0].toUpperCase()}${stage.slice(1)}…`);
        setTimeout(() => poll(item, url), POLL_MS);
      })
      .catch(() => setTimeout(() => poll(item, url), POLL_MS * 3));
  }

  function send(job) {
    return new Promise((resolve) => {
      const { file, item } = job;
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRFToken", csrf);
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) {
          const pct = Math.round((event.loaded / event.total) * 100);
          show(item, "uploading", event.loaded / event.total, `Uploading… ${pct}%`);
        }
      });
      xhr.addEventListener("load", () => {
        let body;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          body = { error: `The server answered ${xhr.status} ${xhr.statusText}.` };
        }
        if (xhr.status >= 400) {
          fail(item, body.error || "The upload was refused.");
        } else if (body.duplicate && body.status === "done") {
          finish(item, body);
          item.querySelector(".ui-message").textContent = "Already in your library.";
        } else {
          show(item, "queued", 0, body.duplicate ? "Already in your library." : "Queued…");
          poll(item, body.status_url);
        }
        resolve();
      });
      xhr.addEventListener("error", () => { fail(item, "The upload was interrupted."); resolve(); });
      const data = new FormData();
      data.append("file", file);
      data.append("tag_policy", form.elements.tag_policy.value);
      xhr.send(data);
    });
  }

  function pump() {
    while (active < PARALLEL && queue.length) {
      active += 1;
      send(queue.shift()).then(() => { active -= 1; pump(); });
    }
  }

  function add(files) {
    for (const file of files) {
      const item = template.content.firstElementChild.cloneNode(true);
      item.querySelector(".ui-name").textContent = file.name;
      item.querySelector(".ui-size").textContent = megabytes(file.size);
      list.append(item);
      if (file.size > maxBytes) {
        fail(item, `${file.name} is ${megabytes(file.size)}; the limit is ${megabytes(maxBytes)}.`);
        continue;
      }
      show(item, "uploading", 0, "Waiting to upload…");
      queue.push({ file, item });
    }
    pump();
  }

  input.addEventListener("change", () => { add(Array.from(input.files)); input.value = ""; });
  form.addEventListener("submit", (event) => { event.preventDefault(); });
  ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, () => {
    zone.classList.remove("over");
  }));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    add(Array.from(event.dataTransfer.files));
  });
})();
