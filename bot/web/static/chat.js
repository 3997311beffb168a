// Kiezstimme web chat: plain JS, no build step. Talks to /webchat/api/messages.
(function () {
  "use strict";
  var log = document.getElementById("log");
  var form = document.getElementById("composer");
  var input = document.getElementById("text");
  var startButton = document.getElementById("start");
  var languageButton = document.getElementById("language");
  var errorBox = document.getElementById("error");
  var STORE = "kiezstimme.client_id";

  function newId() {
    var bytes = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  var clientId = null;
  try { clientId = localStorage.getItem(STORE); } catch (e) { /* private mode */ }
  if (!clientId) {
    clientId = newId();
    try { localStorage.setItem(STORE, clientId); } catch (e) { /* private mode */ }
  }

  function disableOldChoices() {
    var old = log.querySelectorAll(".choices button");
    for (var i = 0; i < old.length; i++) old[i].disabled = true;
  }

  function show(text, who, lang, dir, choices) {
    var div = document.createElement("div");
    div.className = "msg " + who;
    div.textContent = text;  // never innerHTML: residents' text is data
    if (lang) div.lang = lang;
    if (dir) div.dir = dir;
    if (choices && choices.length) {
      var group = document.createElement("div");
      group.className = "choices";
      group.setAttribute("role", "group");
      choices.forEach(function (choice) {
        var b = document.createElement("button");
        b.type = "button";
        b.textContent = choice.label;
        b.addEventListener("click", function () { send(choice.value, choice.label); });
        group.appendChild(b);
      });
      div.appendChild(group);
    }
    log.appendChild(div);
    log.scrollTop = log.scrollHeight;
    return div;
  }

  function receive(data) {
    var messages = (data && data.messages) || [];
    var lastButton = null;
    messages.forEach(function (m) {
      if (m.lang) {
        document.documentElement.lang = m.lang;
        document.documentElement.dir = m.dir || "ltr";
      }
      var div = show(m.text, "bot", m.lang, m.dir, m.choices);
      var first = div.querySelector(".choices button");
      if (first) lastButton = first;
    });
    if (lastButton) lastButton.focus(); else if (messages.length) input.focus();
  }

  function send(text, shown) {
    errorBox.hidden = true;
    disableOldChoices();
    startButton.hidden = true;
    show(shown || text, "me");
    var body = {client_id: clientId, text: text, message_id: newId()};
    if (window.KIEZSTIMME.lang) body.lang = window.KIEZSTIMME.lang;
    return fetch("/webchat/api/messages", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body)
    }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(receive).catch(function () { errorBox.hidden = false; });
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    send(text);
  });
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
  });
  startButton.addEventListener("click", function () { send("START", startButton.textContent); });
  languageButton.addEventListener("click", function () { send("LANGUAGE", languageButton.textContent); });

  function poll() {
    fetch("/webchat/api/messages?client_id=" + encodeURIComponent(clientId))
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) receive(data); })
      .catch(function () { /* offline: try again later */ });
  }
  setInterval(poll, 20000);
})();
