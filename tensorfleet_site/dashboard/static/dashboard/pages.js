/* TensorFleet dashboard: the jobs list's compare-by-ticking and the datasets page's upload
   (an XHR to the datasets API with the session and its CSRF token, for the progress bar). */
(function () {
  "use strict";

  function compareTicks() {
    var form = document.getElementById("compare-form");
    if (!form) return;
    var max = Number(form.dataset.max || 8), button = document.getElementById("compare");
    var count = document.getElementById("compare-count");
    function ticked() { return document.querySelectorAll("input[name=jobs][form=compare-form]:checked").length; }
    function update() {
      var n = ticked();
      button.disabled = n < 2 || n > max;
      count.textContent = n < 2 ? "tick 2 to " + max + " jobs (" + n + " ticked)" :
        n > max ? n + " ticked; at most " + max : n + " jobs ticked";
    }
    document.addEventListener("change", function (e) {
      if (e.target.name === "jobs") update();
    });
    update();
  }

  function cookie(name) {
    var m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : "";
  }

  function messagesOf(status, body) {
    // The API's 4xx: {"field": ["message", ...]} or {"detail": "..."}; each as "field: message".
    if (!body || typeof body !== "object") return ["HTTP " + status];
    var out = [];
    Object.keys(body).forEach(function (field) {
      var value = body[field];
      (Array.isArray(value) ? value : [value]).forEach(function (m) {
        out.push((field === "detail" || field === "non_field_errors" ? "" : field + ": ") +
          (typeof m === "string" ? m : JSON.stringify(m)));
      });
    });
    return out.length ? out : ["HTTP " + status];
  }

  function upload() {
    var form = document.getElementById("upload-form");
    if (!form) return;
    var bar = document.getElementById("upload-bar"), label = document.getElementById("upload-progress");
    var errors = document.getElementById("upload-errors");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var data = new FormData(form);
      ["name", "format", "label_column", "image_size"].forEach(function (k) {
        if (data.has(k) && !String(data.get(k)).trim()) data.delete(k);  // the API's defaults
      });
      errors.innerHTML = "";
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.dataset.api);
      xhr.setRequestHeader("X-CSRFToken", cookie("csrftoken"));
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = function (e) {
        if (!e.lengthComputable) return;
        var p = Math.floor(100 * e.loaded / e.total);
        bar.style.width = p + "%";
        label.textContent = p < 100 ? "uploading " + p + "%" : "checking the file …";
      };
      xhr.onload = function () {
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (err) { body = null; }
        if (xhr.status === 201) {
          label.textContent = "uploaded " + body.name + " (version " + body.version + ")";
          window.location.assign(form.dataset.done + "?uploaded=" + encodeURIComponent(body.name + "@" + body.version));
          return;
        }
        bar.style.width = "0";
        label.textContent = "not uploaded";
        errors.innerHTML = messagesOf(xhr.status, body).map(function (m) {
          var p = document.createElement("p"); p.className = "error"; p.textContent = m; return p.outerHTML;
        }).join("");
      };
      xhr.onerror = function () { label.textContent = "the upload failed: no answer from the server"; };
      label.textContent = "uploading 0%";
      xhr.send(data);
    });
  }

  compareTicks();
  upload();
})();
