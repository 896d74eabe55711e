// Live updates for a feed page: the server says when the feed changed (server-sent
// events); the rows are fetched again with the page's own filter. The console's own
// script, from its own origin: nothing else is loaded.
(function () {
  "use strict";
  var status = document.getElementById("live-status");
  var rows = document.getElementById("feed-rows");
  if (!status || !rows || !window.EventSource) { return; }
  var text = status.querySelector(".live-text");
  var rowsUrl = status.getAttribute("data-rows") + window.location.search;
  var source = new EventSource(status.getAttribute("data-events"));
  source.addEventListener("open", function () {
    status.classList.add("on");
    text.textContent = "Live: new deliveries appear as they arrive, each one verified.";
  });
  source.addEventListener("error", function () {
    status.classList.remove("on");
    text.textContent = "Reconnecting…";
  });
  source.addEventListener("feed", function () {
    fetch(rowsUrl, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) { if (html !== null) { rows.innerHTML = html; } });
  });
})();
