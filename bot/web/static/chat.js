// Kiezstimme web chat: plain JS, no build step. Talks to /webchat/api/messages.
(function () {
  "use strict";
  var config = window.KIEZSTIMME || {};
  var log = document.getElementById("log");
  var announcer = document.getElementById("announcer");
  var form = document.getElementById("composer");
  var input = document.getElementById("text");
  var startButton = document.getElementById("start");
  var languageButton = document.getElementById("language");
  var errorBox = document.getElementById("error");
  var POLL_MS = 20000;
  var MAX_ENTRIES = 300;     // the oldest go first; sessionStorage holds a few MB
  var ANNOUNCED_KEPT = 3;    // the live region keeps only the latest few messages,
  var ANNOUNCED_MS = 30000;  // each for this long

  // The conversation (the client id that the server knows this chat by, the
  // messages and the page's language) is kept in sessionStorage, not in
  // localStorage: it survives a reload and a lost connection, but it belongs to
  // this tab only and is gone when the tab is closed. On a shared computer (a
  // library, a youth centre) the next person who opens the page starts a new
  // chat; they neither see the previous resident's messages nor continue their
  // conversation (and so cannot ask for their DATA).
  var KEY = "kiezstimme.chat";
  try { localStorage.removeItem("kiezstimme.client_id"); } catch (e) { /* earlier versions kept the id there */ }

  function newId() {
    var bytes = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function load() {
    try {
      var saved = JSON.parse(sessionStorage.getItem(KEY));
      if (saved && saved.v === 1 && typeof saved.clientId === "string" && Array.isArray(saved.entries)) return saved;
    } catch (e) { /* nothing saved, storage off or unreadable: a new chat */ }
    return null;
  }
  var state = load() || {v: 1, clientId: newId(), ui: null, entries: [], retry: null};

  function save() {
    if (state.entries.length > MAX_ENTRIES) state.entries.splice(0, state.entries.length - MAX_ENTRIES);
    try { sessionStorage.setItem(KEY, JSON.stringify(state)); } catch (e) { /* full or off: the chat goes on */ }
  }

  // --- the page's language ------------------------------------------------------------
  // The page (header, labels, <html lang dir>) follows the resident's language as the
  // server reports it, never the language of a single message: a German fallback
  // announcement in an Arabic chat is shown left-to-right in its own bubble only.
  function uiLang() { return state.ui && state.ui.texts ? state.ui.lang : config.uiLang; }

  function applyUi(ui) {
    var root = document.documentElement;
    root.lang = ui.lang;
    root.dir = ui.dir || "ltr";
    if (!ui.texts) return;
    document.title = ui.texts.title;
    var parts = document.querySelectorAll("[data-ui]");
    for (var i = 0; i < parts.length; i++) {
      var text = ui.texts[parts[i].getAttribute("data-ui")];
      if (typeof text === "string") parts[i].textContent = text;
    }
  }

  function language(data) {
    if (!data.lang) return;  // no language chosen yet: the page stays as it is
    var texts = data.ui || (state.ui && state.ui.lang === data.lang ? state.ui.texts : null);
    state.ui = {lang: data.lang, dir: data.dir || "ltr", texts: texts};
    applyUi(state.ui);
  }

  // --- the conversation -------------------------------------------------------------------
  var bubbles = [];  // the element of each entry of state.entries
  var pending = 0;   // messages on their way to the server

  // Only the choices of the bot's latest question are live: those of the last bot
  // message with choices, unless the resident has answered since.
  function activeIndex() {
    for (var i = state.entries.length - 1; i >= 0; i--) {
      var e = state.entries[i];
      if (e.who === "me" && !e.pending) return -1;
      if (e.who === "bot" && e.choices && e.choices.length) return i;
    }
    return -1;
  }

  function refreshChoices() {
    var active = activeIndex();
    bubbles.forEach(function (div, i) {
      var buttons = div.querySelectorAll(".choices button");
      for (var j = 0; j < buttons.length; j++) {
        var b = buttons[j];
        b.disabled = i !== active;
        // while an answer is on its way the buttons keep their place (and the focus) but do nothing
        if (i === active && pending) b.setAttribute("aria-disabled", "true"); else b.removeAttribute("aria-disabled");
      }
    });
  }

  function render(entry) {
    var div = document.createElement("div");
    div.className = "msg " + entry.who;
    div.textContent = entry.text;  // never innerHTML: residents' text is data
    if (entry.lang) div.lang = entry.lang;
    div.dir = entry.dir || "auto";
    if (entry.choices && entry.choices.length) {
      var group = document.createElement("div");
      group.className = "choices";
      group.setAttribute("role", "group");
      entry.choices.forEach(function (choice) {
        var b = document.createElement("button");
        b.type = "button";
        b.textContent = choice.label;
        if (entry.chosen === choice.value) b.className = "chosen";
        b.addEventListener("click", function () { choose(entry, choice, b); });
        group.appendChild(b);
      });
      div.appendChild(group);
    }
    return div;
  }

  function add(entry) {
    state.entries.push(entry);
    var div = render(entry);
    bubbles.push(div);
    log.appendChild(div);
    if (state.entries.length > MAX_ENTRIES) bubbles.shift().remove();
    save();
    log.scrollTop = log.scrollHeight;
    return div;
  }

  function remove(entry) {
    var i = state.entries.indexOf(entry);
    if (i < 0) return;
    state.entries.splice(i, 1);
    bubbles.splice(i, 1)[0].remove();
    save();
  }

  function announce(entry) {
    var p = document.createElement("p");
    p.textContent = entry.text;
    if (entry.lang) p.lang = entry.lang;
    if (entry.dir) p.dir = entry.dir;
    announcer.appendChild(p);
    while (announcer.childNodes.length > ANNOUNCED_KEPT) announcer.removeChild(announcer.firstChild);
    // said once is enough: a reader going through the page later finds it in the conversation only
    // (removals are not announced: aria-relevant="additions")
    setTimeout(function () { p.remove(); }, ANNOUNCED_MS);
  }

  // The resident's data is erased (DELETE, or consent declined): so is this tab's copy of the
  // conversation, and the next message starts a new chat under a new id. Only the goodbye stays.
  function forget() {
    state.entries = [];
    state.clientId = newId();
    state.retry = null;
    bubbles.forEach(function (div) { div.remove(); });
    bubbles = [];
    announcer.textContent = "";
    state.fresh = true;  // the Start button stays on offer, also after a reload
    startButton.hidden = false;
    save();
  }

  // Messages from the server. ``answer``: the replies to what the resident just sent;
  // then the focus moves on to the new choices (or the text box). Messages that come
  // by polling are announced but leave the focus where the resident is.
  function receive(data, answer) {
    if (!data) return;
    if (data.erased) forget();
    language(data);
    var messages = data.messages || [];
    messages.forEach(function (m) {
      var entry = {who: "bot", text: m.text, lang: m.lang || null, dir: m.dir || null, choices: m.choices || []};
      add(entry);
      announce(entry);
    });
    refreshChoices();
    if (!answer || !messages.length) return;
    var active = activeIndex();
    var first = active >= 0 ? bubbles[active].querySelector(".choices button") : null;
    (first || input).focus();
  }

  function post(text, messageId) {
    var body = {client_id: state.clientId, text: text, message_id: messageId, ui_lang: uiLang()};
    if (config.lang) body.lang = config.lang;
    return fetch("/webchat/api/messages", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body)
    }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });
  }

  var queue = Promise.resolve();
  var sends = 0;  // messages sent from this page so far  // one message after the other, in the order they were sent

  // ``source``: the button pressed, if any (it gets the focus back when sending fails).
  function send(text, shown, source, chosen) {
    errorBox.hidden = true;
    startButton.hidden = true;
    // the same text again after a failure goes with the same id: sent at most once
    var messageId = state.retry && state.retry.text === text ? state.retry.id : newId();
    var entry = {who: "me", text: shown || text, pending: true};
    delete state.fresh;
    pending++;
    sends++;
    add(entry);
    refreshChoices();
    queue = queue.then(function () {
      return post(text, messageId).then(function (data) {
        pending--;
        delete entry.pending;
        state.retry = null;
        save();
        receive(data, true);
      }, function () {
        pending--;
        remove(entry);
        if (chosen) { delete chosen.entry.chosen; chosen.button.classList.remove("chosen"); save(); }
        state.retry = {text: text, id: messageId};
        save();
        refreshChoices();
        errorBox.hidden = false;
        if (!source && !input.value) input.value = text;
        if (!state.entries.length) startButton.hidden = false;
        (source && !source.disabled ? source : input).focus();
      });
    });
    return queue;
  }

  function choose(entry, choice, button) {
    if (pending || button.disabled) return;
    entry.chosen = choice.value;
    button.classList.add("chosen");
    send(choice.value, choice.label, button, {entry: entry, button: button});
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
  startButton.addEventListener("click", function () { send("START", startButton.textContent, startButton); });
  languageButton.addEventListener("click", function () {
    send("LANGUAGE", languageButton.querySelector("[data-ui]").textContent, languageButton);
  });

  // --- restore after a reload: shown, not announced again ----------------------------------
  state.entries.forEach(function (entry) {
    delete entry.pending;  // sent before the reload; its answer comes by polling if it is not here
    var div = render(entry);
    bubbles.push(div);
    log.appendChild(div);
  });
  if (state.ui) applyUi(state.ui);
  if (state.entries.length) {
    startButton.hidden = !state.fresh;
    refreshChoices();
    log.scrollTop = log.scrollHeight;
  }

  // --- messages that come later (reminders, announcements, answers a lost connection missed) ---
  function poll() {
    if (pending) return;  // the answer will bring them
    // a message sent while this poll was on its way: what the poll brings may be its answer
    // (the server hands each message out once), so the focus moves on as with an answer
    var sentBefore = sends;
    fetch("/webchat/api/messages?client_id=" + encodeURIComponent(state.clientId) +
          "&ui_lang=" + encodeURIComponent(uiLang() || ""))
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { receive(data, sends !== sentBefore); })
      .catch(function () { /* offline: try again later */ });
  }
  setInterval(poll, POLL_MS);
  window.addEventListener("online", poll);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) poll(); });
  if (state.entries.length) poll();  // whatever came while the page was away
})();
