// The enrolment page: the code's time left, counted down each second from what the hub said
// (the hub's clock decides; this machine's clock may be off), and a notice once it expired.
"use strict";

(function () {
  const expiry = document.getElementById("enrol-expiry");
  if (!expiry) {
    return;
  }
  const left = expiry.querySelector(".left");
  const expired = document.getElementById("enrol-expired");
  const ends = performance.now() + Number(expiry.dataset.secondsLeft) * 1000;

  function tick() {
    const seconds = Math.max(0, Math.round((ends - performance.now()) / 1000));
    left.textContent = "in " + Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
    expiry.dataset.state = seconds <= 60 ? "soon" : "ok";
    if (seconds === 0) {
      expiry.hidden = true;
      expired.hidden = false;
      document.querySelector(".enrolment .qr").hidden = true;
      return;
    }
    window.setTimeout(tick, 1000);
  }
  tick();
})();
