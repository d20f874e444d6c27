// Commerce admin: the few behaviours htmx does not cover.
// - "Test all" posts to the sweep endpoint and reads its SSE stream, swapping
//   each server's badge cell (by id) as its result arrives.
// - Errors from htmx requests are shown in a toast instead of being dropped.
(function () {
  "use strict";

  // "Trust this certificate": pin the fingerprint the test just showed. The
  // admin still saves the form, after reading it.
  document.addEventListener("click", function (e) {
    var b = e.target.closest ? e.target.closest("[data-trust-sha256]") : null;
    if (!b) return;
    var mode = document.getElementById("tls_mode");
    var pin = document.getElementById("tls_sha256");
    if (!mode || !pin) return;
    mode.value = "pinned";
    pin.value = b.getAttribute("data-trust-sha256");
    b.textContent = "Pinned: save the server to keep it";
    b.disabled = true;
  });

  function csrfToken() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  }

  function toast(message) {
    var t = document.getElementById("toast");
    if (!t) return;
    t.textContent = message;
    t.hidden = false;
  }

  // One SSE event block ("event: x\ndata: ...\n") into {event, data}.
  function parseEvent(block) {
    var ev = { event: "message", data: [] };
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event:") === 0) ev.event = line.slice(6).trim();
      else if (line.indexOf("data:") === 0) ev.data.push(line.slice(5).replace(/^ /, ""));
    });
    ev.data = ev.data.join("\n");
    return ev;
  }

  function swapCell(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html.trim();
    var cell = tpl.content.firstElementChild;
    if (!cell || !cell.id) return;
    var old = document.getElementById(cell.id);
    if (old) {
      old.replaceWith(cell);
      if (window.htmx) window.htmx.process(cell);
    }
  }

  async function sweep(button) {
    var status = document.getElementById("sweep-status");
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    document.querySelectorAll('[data-health][data-enabled="true"]').forEach(function (td) {
      td.classList.add("checking");
    });
    if (status) status.textContent = "Testing every enabled server…";
    try {
      var resp = await fetch(button.dataset.sweep, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrfToken(), "Accept": "text/event-stream", "HX-Request": "true" }
      });
      var redirect = resp.headers.get("HX-Redirect");
      if (redirect) { window.location.href = redirect; return; }
      if (!resp.ok || !resp.body) {
        toast("Test all failed (HTTP " + resp.status + "). Reload the page and try again.");
        return;
      }
      var reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      var buffer = "";
      var done = 0;
      for (;;) {
        var chunk = await reader.read();
        if (chunk.done) break;
        buffer += chunk.value.replace(/\r\n/g, "\n");
        var at;
        while ((at = buffer.indexOf("\n\n")) >= 0) {
          var ev = parseEvent(buffer.slice(0, at));
          buffer = buffer.slice(at + 2);
          if (ev.event === "health") {
            swapCell(ev.data);
            done += 1;
            if (status) status.textContent = "Tested " + done + " servers…";
          } else if (ev.event === "done" && status) {
            status.textContent = ev.data;
            status.dataset.done = "true";
          }
        }
      }
    } catch (e) {
      toast("Test all was interrupted: " + e + ". Reload the page to see the stored results.");
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  document.addEventListener("click", function (e) {
    var b = e.target.closest("[data-sweep]");
    if (b) { e.preventDefault(); sweep(b); }
  });

  document.addEventListener("htmx:beforeRequest", function (e) {
    var cellId = e.detail.elt && e.detail.elt.dataset ? e.detail.elt.dataset.healthCell : null;
    var cell = cellId ? document.getElementById(cellId) : null;
    if (cell) cell.classList.add("checking");
    if (e.detail.elt && e.detail.elt.id === "test-connection") {
      var r = document.getElementById("test-result");
      if (r) r.innerHTML = '<p aria-busy="true">Testing the connection…</p>';
    }
  });

  // An admin error answers htmx with its toast fragment (escaped by the
  // server's template, marked by the Commerce-Fragment header); anything else
  // (a proxy's page, say) gets a generic message.
  document.addEventListener("htmx:responseError", function (e) {
    var xhr = e.detail.xhr;
    var t = document.getElementById("toast");
    if (t && xhr.getResponseHeader("Commerce-Fragment") === "error") {
      t.innerHTML = xhr.responseText;
      t.hidden = false;
      return;
    }
    toast("The request failed (HTTP " + xhr.status + "). Reload the page and try again.");
  });

  document.addEventListener("htmx:sendError", function () {
    toast("Could not reach Commerce. Check your connection, then try again.");
  });
})();
