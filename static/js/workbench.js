/* The labeler's workbench (templates/workbench/task.html): the lease countdown, a submit that
   is never lost nor doubled, and the demonstration editor. Autosave and idle time are in
   workbench-save.js, the ranking list in workbench-ranking.js, the shortcuts in
   workbench-keys.js, the guideline search in workbench-guideline.js. The page works without this file
   (plain form posts); with it, submitting swaps in the next task through htmx.

   Nothing here builds HTML from text: untrusted content is rendered by the server, and this
   file only moves existing elements and sets textContent / values. */
(function () {
  "use strict";

  const Smiley = (window.Smiley = window.Smiley || {});

  if (window.htmx) {
    // Going back to an earlier task reloads it from the server rather than from htmx's copy,
    // which would show a form that was already submitted.
    window.htmx.config.refreshOnHistoryMiss = true;
    window.htmx.config.historyCacheSize = 0;
  }

  let bench = null;
  // Always the instance of the #workbench on the page now, even between an htmx swap and
  // its settling, so a key pressed at once acts on the new task.
  Smiley.workbench = () => {
    start();
    return bench;
  };

  function Workbench(root) {
    const form = root.querySelector("#wb-form");
    const kind = root.dataset.kind;
    const sendStatus = root.querySelector(".wb-sending");
    const clientError = root.querySelector(".wb-client-error");
    const timers = new Set();
    const cleanups = [];
    let sendAttempt = 0;
    let resending = false;
    let awaitingResend = false;
    let current = null;
    let saver = null;
    let editor = null;
    const idleInput = form ? form.elements.namedItem("idle_seconds") : null;
    const clock = Smiley.IdleClock(idleInput ? idleInput.value : 0);

    const alive = () => root.isConnected && bench === api;

    function later(fn, ms) {
      const id = window.setTimeout(() => {
        timers.delete(id);
        if (alive()) fn();
      }, ms);
      timers.add(id);
      return id;
    }

    function listen(target, type, fn, options) {
      target.addEventListener(type, fn, options);
      cleanups.push(() => target.removeEventListener(type, fn, options));
    }

    function showError(text, focusTarget) {
      if (!clientError) return;
      clientError.textContent = text;
      clientError.hidden = !text;
      if (text && focusTarget) {
        focusTarget.focus();
        focusTarget.scrollIntoView({ block: "nearest" });
      }
    }

    // --- lease countdown ----------------------------------------------------------------
    function startCountdown() {
      const shown = root.querySelector(".wb-lease-left");
      if (!shown || root.dataset.state !== "open") return;
      const deadline = performance.now() + Number(root.dataset.secondsLeft || 0) * 1000;
      const tick = () => {
        const left = Math.max(0, Math.round((deadline - performance.now()) / 1000));
        const minutes = Math.floor(left / 60);
        shown.textContent = `${minutes}:${String(left % 60).padStart(2, "0")} left`;
        shown.closest(".wb-lease").classList.toggle("wb-lease-low", left < 120);
        if (left === 0) {
          expired();
          return;
        }
        later(tick, 1000);
      };
      tick();
    }

    function expired() {
      root.dataset.state = "expired";
      const banner = root.querySelector(".wb-expired");
      if (banner) banner.hidden = false;
      const lease = root.querySelector(".wb-lease");
      if (lease) lease.textContent = "Lease expired";
      if (saver) saver.flush();
    }

    // --- submitting ---------------------------------------------------------------------
    function problems() {
      if (kind === "demonstration") {
        const empty = Array.from(form.querySelectorAll('textarea[name="turn"]')).find((field) => !field.value.trim());
        return empty ? ["Write every turn before submitting (or remove the turns you added).", empty] : null;
      }
      const ranking = api.ranking;
      const given = ranking.scores();
      const unscored = Object.keys(given).filter((letter) => given[letter] === null);
      if (unscored.length) {
        return [`Give ${unscored.join(", ")} a score from 1 to 7.`, form.querySelector(`#response-${unscored[0]}`)];
      }
      for (const letter of Object.keys(given)) {
        const other = form.querySelector(`input[name="flag_${letter}"][value="other"]`);
        const note = form.elements.namedItem(`note_${letter}`);
        if (other && other.checked && note && !note.value.trim()) {
          note.closest("details").open = true;
          return [`Say what “other” means for ${letter}.`, note];
        }
      }
      if (!ranking.unacceptable() && !ranking.isComplete()) {
        return ["The ranking is incomplete: place every response (or tick “All responses are unacceptable”).", root.querySelector(".wb-rank-row")];
      }
      return null;
    }

    function confirmConflicts(found, proceed) {
      const dialog = root.querySelector("#wb-confirm");
      const list = dialog.querySelector(".wb-confirm-list");
      list.replaceChildren(
        ...found.map((line) => {
          const item = document.createElement("li");
          item.textContent = line;
          return item;
        })
      );
      const yes = dialog.querySelector('[data-action="confirm-submit"]');
      const no = dialog.querySelector('[data-action="confirm-cancel"]');
      const close = (go) => {
        yes.onclick = null;
        no.onclick = null;
        dialog.close();
        if (go) proceed();
      };
      yes.onclick = () => close(true);
      no.onclick = () => close(false);
      dialog.showModal();
      no.focus();
    }

    function markConfirmed() {
      let field = form.elements.namedItem("confirm_inconsistent");
      if (!(field instanceof HTMLInputElement)) {
        field = document.createElement("input");
        field.type = "hidden";
        field.name = "confirm_inconsistent";
        form.append(field);
      }
      field.value = "1";
    }

    function beforeSend() {
      if (idleInput) idleInput.value = String(clock.seconds());
      saver.pause();
      if (sendStatus) sendStatus.textContent = "Sending…";
    }

    function onConfirm(event) {
      if (event.target !== form) return;
      if (resending) {
        resending = false;
        beforeSend();
        return;
      }
      const problem = problems();
      if (problem) {
        event.preventDefault();
        showError(problem[0], problem[1]);
        return;
      }
      showError("");
      const submitter = event.detail.triggeringEvent && event.detail.triggeringEvent.submitter;
      const vouched = submitter && submitter.name === "confirm_inconsistent";
      const found = kind === "comparison" && !vouched ? api.ranking.conflicts() : [];
      if (found.length && !form.elements.namedItem("confirm_inconsistent")) {
        event.preventDefault();
        confirmConflicts(found, () => {
          markConfirmed();
          beforeSend();
          event.detail.issueRequest(true);
        });
        return;
      }
      beforeSend();
    }

    // The answer never came: send the very same form again (same idempotency key) until one
    // does. A label that did reach the server is then answered as a replay, not stored twice.
    function resend(reason, delayMs) {
      const delay = delayMs === undefined ? Smiley.retryDelay(sendAttempt++) : delayMs;
      awaitingResend = true;
      if (sendStatus) sendStatus.textContent = `${reason} Trying again in ${Math.round(delay / 1000)} s…`;
      later(() => {
        awaitingResend = false;
        resending = true;
        Smiley.submitForm(form);
      }, delay);
    }

    // A 503 with Retry-After: the server is busy (or its database away) and kept nothing of
    // this submit, so the same form goes again after the seconds it asked for; other 5xx
    // answers back off as after a network failure.
    function resendAfterServerError(xhr) {
      const asked = xhr.status === 503 ? Number.parseInt(xhr.getResponseHeader("Retry-After") || "", 10) : NaN;
      if (asked >= 0) resend("The server is busy; your work is safe here.", Math.min(asked, 30) * 1000);
      else resend(`The server did not answer (${xhr.status}).`);
    }

    // The element that sent the request. htmx fires beforeSwap on the swap target (#workbench),
    // whose detail.elt is then that target; requestConfig.elt is the form either way.
    function sourceOf(event) {
      const config = event.detail.requestConfig;
      return (config && config.elt) || event.detail.elt;
    }

    function fromOurForms(event) {
      const source = sourceOf(event);
      return source && root.contains(source) && source.tagName === "FORM" && source.getAttribute("hx-target") === "#workbench";
    }

    function onSendError(event) {
      if (!fromOurForms(event)) return;
      if (sourceOf(event) === form) resend("Not sent: the network failed.");
      else showSkipError("Not sent: the network failed. Try again.");
    }

    function onBeforeSwap(event) {
      if (!fromOurForms(event)) return;
      const code = event.detail.xhr.status;
      if (code === 422 || code === 409) {
        event.detail.shouldSwap = true;
        event.detail.isError = false;
      } else if (code === 502 || code === 503 || code === 504) {
        event.detail.shouldSwap = false;
        if (sourceOf(event) === form) resendAfterServerError(event.detail.xhr);
        else showSkipError(`Not sent: the server is busy (${code}). Try again in a moment.`);
      } else if (code >= 400) {
        event.detail.shouldSwap = false;
        const page = new DOMParser().parseFromString(event.detail.xhr.responseText, "text/html");
        const found = page.querySelector('[data-testid="error-message"]');
        const text = found ? found.textContent : `The server answered ${code}.`;
        if (sourceOf(event) === form) {
          if (sendStatus) sendStatus.textContent = "";
          showError(text, clientError);
        } else showSkipError(text);
      }
    }

    function onAfterRequest(event) {
      if (!fromOurForms(event) || !alive()) return;
      if (event.detail.failed && !awaitingResend) {
        // Refused for good (e.g. not found): typing may go on and is saved again.
        saver.resume();
      }
    }

    function showSkipError(text) {
      const skip = root.querySelector("#wb-skip form");
      if (!skip) return;
      let line = skip.querySelector(".wb-skip-client-error");
      if (!line) {
        line = document.createElement("p");
        line.className = "field-error wb-skip-client-error";
        line.setAttribute("role", "alert");
        skip.append(line);
      }
      line.textContent = text;
    }

    function onSkipConfirm(event) {
      const skip = root.querySelector("#wb-skip form");
      if (event.target !== skip) return;
      const reason = skip.querySelector('input[name="reason"]:checked');
      const note = skip.elements.namedItem("skip_note");
      if (!reason) {
        event.preventDefault();
        showSkipError("Choose a reason for skipping.");
        skip.querySelector('input[name="reason"]').focus();
      } else if (reason.value === "other" && !note.value.trim()) {
        event.preventDefault();
        showSkipError("Say why when the reason is “Other”.");
        note.focus();
      } else {
        saver.pause();
      }
    }

    // --- wiring -------------------------------------------------------------------------
    function onClick(event) {
      const button = event.target.closest("[data-action]");
      if (!button || !root.contains(button)) return;
      const action = button.dataset.action;
      if (action === "help") openHelp();
      else if (action === "rank-by-scores") rankByScores();
      else if (editor && action === "add-pair") editor.addPair();
      else if (editor && action === "remove-pair") editor.removePair(button);
      else if (editor && action === "use-draft") editor.useDraft();
    }

    function rankByScores() {
      if (!api.ranking) return;
      const missing = api.ranking.byScores();
      if (missing.length) showError(`Score ${missing.join(", ")} first, then rank by scores.`, form.querySelector(`#response-${missing[0]}`));
      else showError("");
    }

    function openHelp() {
      const help = root.querySelector("#wb-help");
      if (help && !help.open) help.showModal();
    }

    function setCurrent(letter) {
      if (!letter || letter === current) return;
      current = letter;
      root.querySelectorAll(".wb-response").forEach((card) => card.classList.toggle("wb-current", card.dataset.letter === letter));
      root.querySelectorAll(".wb-rank-row").forEach((row) => row.classList.toggle("wb-current", row.dataset.letter === letter));
    }

    function onFocusIn(event) {
      const holder = event.target.closest("[data-letter]");
      if (holder && root.contains(holder)) setCurrent(holder.dataset.letter);
    }

    async function onRenew(event) {
      if (!event.target.matches(".wb-renew") || !saver || !saver.isDirty()) return;
      event.preventDefault();
      await saver.flush();
      event.target.submit();
    }

    function focusStart() {
      // After a refused submit: the message about the whole form, else the first field at fault.
      const general = root.querySelector("[data-testid='form-error'], [data-testid='inconsistency']");
      const field = root.querySelector(".field-error");
      if (general) {
        general.tabIndex = -1;
        general.focus();
        general.scrollIntoView({ block: "center" });
        return;
      }
      if (field) {
        const near = field.closest("fieldset, details, .wb-turn, .wb-turn-pair, .wb-ranking, form");
        const control = near && near.querySelector("input:not([type=hidden]), textarea, .wb-rank-row");
        if (control && control.closest("details")) control.closest("details").open = true;
        (control || field).focus();
        field.scrollIntoView({ block: "center" });
        return;
      }
      if (kind === "comparison") {
        const first = root.querySelector(".wb-response");
        if (first) first.focus();
      } else if (form) {
        // The prompt, not the answer box: the single-key shortcuts ("?", w, d, s, g) work from
        // here, where a focused box would take the first key as text. w moves into the answer.
        const prompt = root.querySelector(".wb-prompt");
        prompt.tabIndex = -1;
        prompt.focus();
      } else {
        const next = root.querySelector("[data-testid='next-task'], [data-testid='back-home']");
        if (next) next.focus();
      }
    }

    const api = {
      root,
      form,
      kind,
      ranking: null,
      current: () => current,
      setCurrent,
      openHelp,
      rankByScores,
      addPair: () => editor && editor.addPair(),
      useDraft: () => editor && editor.useDraft(),
      submit() {
        if (form) Smiley.submitForm(form);
      },
      destroy() {
        timers.forEach((id) => window.clearTimeout(id));
        timers.clear();
        cleanups.forEach((undo) => undo());
      },
    };

    if (form) {
      saver = Smiley.Autosave({
        root,
        form,
        csrfToken,
        later,
        alive,
        beforeSnapshot() {
          if (idleInput) idleInput.value = String(clock.seconds());
        },
      });
      api.ranking = kind === "comparison" ? Smiley.Ranking(root, saver.markDirty) : null;
      editor = kind === "demonstration" ? Smiley.Editor(root, saver.markDirty) : null;
      listen(form, "input", saver.markDirty);
      listen(form, "change", saver.markDirty);
    }
    listen(root, "click", onClick);
    listen(root, "focusin", onFocusIn);
    listen(root, "submit", onRenew);
    listen(document, "htmx:confirm", onConfirm);
    listen(document, "htmx:confirm", onSkipConfirm);
    listen(document, "htmx:sendError", onSendError);
    listen(document, "htmx:beforeSwap", onBeforeSwap);
    listen(document, "htmx:afterRequest", onAfterRequest);
    ["keydown", "pointerdown", "wheel", "input"].forEach((type) => listen(document, type, clock.input, { passive: true }));
    listen(document, "visibilitychange", () => {
      if (document.hidden) {
        clock.hide();
        if (saver) saver.flush();
      } else clock.show();
    });
    listen(window, "pagehide", () => saver && saver.flush());
    const firstCard = root.querySelector(".wb-response");
    if (firstCard) setCurrent(firstCard.dataset.letter);
    bench = api;
    startCountdown();
    focusStart();
    // For people and tests alike: keys and clicks now do what the page says.
    root.dataset.ready = "true";
    return api;
  }

  function csrfToken() {
    const field = document.querySelector('#workbench input[name="csrf_token"]');
    if (field) return field.value;
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || "";
    } catch (error) {
      return "";
    }
  }

  function start() {
    const root = document.getElementById("workbench");
    if (bench && bench.root === root) return;
    if (bench) bench.destroy();
    bench = null;
    if (root) Workbench(root);
  }

  document.addEventListener("htmx:afterSwap", start);
  document.addEventListener("htmx:afterSettle", start);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
