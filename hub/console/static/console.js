// The console's shared script: small progressive enhancements only; every page works without it.
"use strict";

// The CSRF token for fetch() calls: send it as the X-CSRF-Token header.
window.consoleCsrf = function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
};

// Switching venue submits at once when scripts run (the button stays for keyboards without).
document.addEventListener("change", function (event) {
  if (event.target && event.target.id === "venue-select") {
    event.target.form.submit();
  }
});
