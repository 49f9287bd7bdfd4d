// The will-call list's Print button (the browser's own print works without it).
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  const button = document.getElementById("print-list");
  if (button) {
    button.addEventListener("click", function () {
      window.print();
    });
  }
});
