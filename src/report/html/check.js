// Render self-check: opens every collapsed section for a moment, checks that every plot has
// a size and something drawn in it and that the page fetched nothing, then records the
// outcome on <body> (data-render="ok" or "failed", data-plots = number of plots). Problems
// also go to the console. Nothing is fetched and nothing visible changes.
(function () {
  "use strict";
  var problems = [];
  var closed = Array.prototype.slice.call(document.querySelectorAll("details:not([open])"));
  closed.forEach(function (d) { d.open = true; });
  var plots = document.querySelectorAll("figure.plot");
  Array.prototype.forEach.call(plots, function (figure) {
    var name = figure.getAttribute("data-plot");
    var svg = figure.querySelector("svg");
    if (!svg) { problems.push(name + ": no svg"); return; }
    var box = svg.getBoundingClientRect();
    if (!(box.width > 0 && box.height > 0)) { problems.push(name + ": no size"); return; }
    if (!svg.querySelector("polyline, line, circle")) { problems.push(name + ": nothing drawn"); }
  });
  closed.forEach(function (d) { d.open = false; });
  var fetched = performance.getEntriesByType("resource").length;
  if (fetched > 0) { problems.push(fetched + " resources fetched"); }
  document.body.setAttribute("data-plots", String(plots.length));
  document.body.setAttribute("data-render", problems.length ? "failed" : "ok");
  if (problems.length) { console.error("render check: " + problems.join("; ")); }
})();
