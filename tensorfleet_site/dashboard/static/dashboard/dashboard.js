/* TensorFleet dashboard: the live parts. Pages are rendered by the server; this only
   polls the JSON API (session cookie) every 2 s and updates them in place. */
(function () {
  "use strict";
  var POLL_MS = 2000;
  var ACTIVE = { queued: true, running: true };

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) throw new Error(url + ": HTTP " + r.status);
      return r.json();
    });
  }
  function text(id, value) {
    var el = document.getElementById(id);
    if (el) el.textContent = value;
  }
  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function pct(p) { return Math.floor(p * 100) + "%"; }
  function fmt(x, n) { return x == null ? "–" : Number(x).toFixed(n); }
  // As dashboard/formatting.py writes them on the server.
  function accuracy(x) { return x == null ? "–" : (x * 100).toFixed(1) + " %"; }
  function seconds(s) {
    if (s < 10) return s.toFixed(1) + "s";
    s = Math.round(s);
    if (s < 60) return s + "s";
    var m = Math.floor(s / 60), pad = function (n) { return (n < 10 ? "0" : "") + n; };
    if (m < 60) return m + "m " + pad(s % 60) + "s";
    var h = Math.floor(m / 60);
    return h < 24 ? h + "h " + pad(m % 60) + "m" : Math.floor(h / 24) + "d " + pad(h % 24) + "h";
  }
  function duration(job) {
    if (!job.started_at) return "–";
    var end = job.finished_at ? new Date(job.finished_at) : new Date();
    return seconds(Math.max(0, (end - new Date(job.started_at)) / 1000));
  }
  function statusLabel(job) {  // an early stop says so instead of "cancelled" or "succeeded"
    if (job.status === "cancelled" && job.error === "early-stopped") return "early-stopped";
    if (job.status === "succeeded" && job.stop_reason) return "stopped early";
    return job.status;
  }
  function statusClass(job) { return statusLabel(job) === job.status ? job.status : "early"; }
  function poll(fn) {
    var stopped = false;
    function tick() {
      fn().then(function (again) {
        if (again !== false && !stopped) setTimeout(tick, POLL_MS);
      }).catch(function (err) {
        text("live-state", "live updates paused: " + err.message);
        if (!stopped) setTimeout(tick, POLL_MS * 2);
      });
    }
    setTimeout(tick, POLL_MS);
    return function () { stopped = true; };
  }

  function overview(opts) {
    var url = document.getElementById("cards").dataset.url;
    poll(function () {
      return getJSON(url).then(function (body) {
        ["running", "queued", "succeeded_24h", "workers_online"].forEach(function (k) {
          text("card-" + k, body.cards[k] == null ? "?" : body.cards[k]);
        });
        var rows = body.jobs.map(function (j) {
          return "<tr data-job=\"" + esc(j.id) + "\"><td><a href=\"" + opts.jobUrl + esc(j.id) + "/\">" +
            esc(j.name || j.id.slice(0, 24)) + "</a></td><td><span class=\"status " + esc(statusClass(j)) + "\">" +
            esc(statusLabel(j)) + "</span></td><td><div class=\"bar\"><div style=\"width: " + pct(j.progress) +
            "\"></div></div><small>" + pct(j.progress) + "</small></td>" +
            (opts.staff ? "<td>" + esc(j.owner) + "</td>" : "") + "<td>" + esc(j.model_type) + "</td><td>" +
            esc(j.dataset) + "</td><td>" + accuracy(j.metrics.best_val_accuracy) + "</td><td>" + duration(j) + "</td></tr>";
        });
        document.getElementById("recent").innerHTML = rows.join("") ||
          "<tr><td colspan=\"9\">No jobs yet.</td></tr>";
        text("live-state", "updated " + new Date().toLocaleTimeString());
      });
    });
  }

  function lineChart(canvas, datasets, yLabel) {
    if (!window.Chart || !canvas) return null;
    return new window.Chart(canvas, {
      type: "line",
      data: { datasets: datasets },
      options: {
        animation: false, parsing: false, responsive: true,
        scales: { x: { type: "linear", title: { display: true, text: "epoch" }, ticks: { precision: 0 } },
                  y: { title: { display: true, text: yLabel } } }
      }
    });
  }
  function points(metrics, key) {  // an epoch eval_every skipped has no validation metrics: no point
    return metrics.filter(function (m) { return m[key] != null; }).map(function (m) { return { x: m.epoch, y: m[key] }; });
  }

  function job(opts) {
    var metrics = JSON.parse(document.getElementById("metrics-data").textContent);
    var loss = lineChart(document.getElementById("loss-chart"), [
      { label: "train loss", data: points(metrics, "train_loss"), borderColor: "#3b82f6" },
      { label: "val loss", data: points(metrics, "val_loss"), borderColor: "#f97316" }
    ], "loss");
    var acc = lineChart(document.getElementById("acc-chart"), [
      { label: "val accuracy", data: points(metrics, "val_accuracy"), borderColor: "#16a34a" }
    ], "accuracy");
    window.TF.charts = { loss: loss, acc: acc };
    if (!opts.live || !opts.active) return;
    var base = "/api/v1/jobs/" + opts.id;
    var allTasks = function (url, acc) {
      return getJSON(url).then(function (page) {
        acc = acc.concat(page.results);
        return page.next ? allTasks(page.next, acc) : acc;
      });
    };
    var rowsUrl = document.getElementById("metrics-rows").dataset.url;
    var getRows = function () {  // the epochs table as the server renders it (times split queue/training)
      return fetch(rowsUrl, { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) throw new Error(rowsUrl + ": HTTP " + r.status);
        return r.text();
      });
    };
    poll(function () {
      return Promise.all([getJSON(base), getJSON(base + "/metrics"), allTasks(base + "/tasks", []), getRows()]).then(function (r) {
        var j = r[0], m = r[1], tasks = r[2];
        var st = document.getElementById("job-status");
        st.textContent = statusLabel(j); st.className = "status " + statusClass(j); st.dataset.status = j.status;
        text("job-epoch", j.completed_epochs); text("job-tasks", j.completed_tasks);
        text("job-best", accuracy(j.metrics.best_val_accuracy));
        document.getElementById("job-bar").style.width = pct(j.progress);
        text("job-progress", pct(j.progress));
        text("job-waiting", j.waiting_reason || "");
        if (loss && acc) {
          loss.data.datasets[0].data = points(m, "train_loss");
          loss.data.datasets[1].data = points(m, "val_loss");
          acc.data.datasets[0].data = points(m, "val_accuracy");
          loss.update(); acc.update();
        }
        document.getElementById("metrics-rows").innerHTML = r[3];
        var byRound = {}, order = [];  // one row per round of an epoch (per epoch without rounds)
        tasks.forEach(function (t) {
          var at = t.epoch * 1000000 + (t.round || 1);
          if (!byRound[at]) { byRound[at] = []; order.push(at); }
          byRound[at].push(t);
        });
        document.getElementById("task-grid").innerHTML = order.sort(function (a, b) { return a - b; })
          .map(function (at) {
            var e = Math.floor(at / 1000000), r = at % 1000000;
            var label = "epoch " + e + (j.sync_every_steps ? " · round " + r : "");
            return "<tr><th>" + label + "</th>" + byRound[at].map(function (t) {
              return "<td class=\"status " + esc(t.status) + "\" title=\"shard " + t.shard + " · " + esc(t.status) +
                "\">shard " + t.shard + "<br><small>" + esc(t.worker || "–") +
                (t.duration_s ? " · " + fmt(t.duration_s, 2) + " s" : "") + "</small></td>";
            }).join("") + "</tr>";
          }).join("") || "<tr><td>No tasks yet.</td></tr>";
        if (j.error) {
          document.getElementById("job-error").innerHTML = "<p class=\"error\"><strong>Error:</strong> " + esc(j.error) + "</p>";
        }
        if (!ACTIVE[j.status]) {  // finished: the server page has the checkpoints and buttons
          window.location.reload();
          return false;
        }
        return true;
      });
    });
  }

  function compare() {
    var series = JSON.parse(document.getElementById("compare-data").textContent);
    var colors = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
    window.TF.charts = { compare: lineChart(document.getElementById("compare-chart"), series.map(function (s, i) {
      return { label: s.label, data: s.points, borderColor: colors[i % colors.length] };
    }), "val accuracy") };
  }

  window.TF = { overview: overview, job: job, compare: compare };
})();
