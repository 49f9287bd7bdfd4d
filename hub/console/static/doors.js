// The doors page, live: the server sends the page's parts (rendered as on the page) over
// /doors/stream whenever scans are stored or gates report in; each part is swapped in place.
// Without scripts the page still shows everything as of its loading.
"use strict";

(function () {
  const live = document.getElementById("doors-live");
  if (!live || !window.EventSource) {
    return;
  }
  const state = live.querySelector(".state");

  function show(mode, words) {
    live.dataset.state = mode;
    state.textContent = words;
  }

  const source = new EventSource(live.dataset.stream);
  source.addEventListener("doors", function (event) {
    const update = JSON.parse(event.data);
    for (const [name, html] of Object.entries(update.parts)) {
      const part = document.getElementById("doors-" + name);
      if (part) {
        part.innerHTML = html;
      }
    }
    live.dataset.version = String(update.version);
    show("live", "Live · updated " + update.now);
  });
  source.addEventListener("open", function () {
    show("live", "Live");
  });
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) {
      show("stopped", "Not updating: reload the page (or sign in again)");
    } else {
      show("reconnecting", "Reconnecting…");
    }
  });
})();
