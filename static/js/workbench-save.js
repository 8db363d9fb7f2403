/* What the workbench keeps safe while the labeler works: idle time, and the draft, saved to
   the server (POST …/draft, JSON) 800 ms after typing stops, when the tab is hidden and when
   the page goes away. The server renders a saved draft back into the form, so a reload, a
   closed tab or a logout loses nothing. */
(function () {
  "use strict";

  const Smiley = (window.Smiley = window.Smiley || {});
  const SAVE_DELAY_MS = 800;
  const IDLE_AFTER_MS = 60000;
  const RETRY_DELAYS_MS = [1000, 2000, 4000, 8000, 15000];
  // A keepalive request may carry at most 64 KiB; larger drafts rely on the regular saves.
  const KEEPALIVE_LIMIT = 60000;
  const NOT_DRAFTED = new Set(["csrf_token", "idempotency_key", "confirm_inconsistent"]);

  Smiley.retryDelay = (attempt) => RETRY_DELAYS_MS[Math.min(attempt, RETRY_DELAYS_MS.length - 1)];

  // Submit one of the workbench's htmx forms. A swapped-in form gets htmx's handlers only when
  // htmx settles the swap (a timer after it), while the workbench takes the new form at once:
  // a Ctrl+Enter in between was a plain browser POST and a whole page load. Processing the
  // form first (htmx does nothing on a form it has processed) makes it an htmx request always.
  Smiley.submitForm = (form) => {
    if (window.htmx) window.htmx.process(form);
    form.requestSubmit();
  };

  // Time away from the task: the tab hidden, or no input for over a minute (beyond that minute).
  Smiley.IdleClock = function IdleClock(startSeconds) {
    let idle = Math.max(0, Number(startSeconds) || 0) * 1000;
    let lastInput = performance.now();
    let hiddenAt = document.hidden ? performance.now() : null;
    return {
      input() {
        const now = performance.now();
        if (hiddenAt === null) idle += Math.max(0, now - lastInput - IDLE_AFTER_MS);
        lastInput = now;
      },
      hide() {
        if (hiddenAt !== null) return;
        const now = performance.now();
        idle += Math.max(0, now - lastInput - IDLE_AFTER_MS);
        hiddenAt = now;
      },
      show() {
        if (hiddenAt === null) return;
        const now = performance.now();
        idle += now - hiddenAt;
        hiddenAt = null;
        lastInput = now;
      },
      seconds() {
        const now = performance.now();
        const pending = hiddenAt !== null ? now - hiddenAt : Math.max(0, now - lastInput - IDLE_AFTER_MS);
        return Math.round((idle + pending) / 1000);
      },
    };
  };

  // The reason a save was refused: the JSON answer's message, or an error page's text.
  async function messageOf(response) {
    const text = await response.text();
    try {
      return JSON.parse(text).message || `error ${response.status}`;
    } catch (error) {
      const page = new DOMParser().parseFromString(text, "text/html");
      const found = page.querySelector('[data-testid="error-message"]');
      return found ? found.textContent : `error ${response.status}`;
    }
  }

  /* options: root (#workbench), form, csrfToken(), beforeSnapshot(), later(fn, ms) (a timer
     that does nothing once the page moved on), alive() */
  Smiley.Autosave = function Autosave(options) {
    const { root, form } = options;
    const status = root.querySelector(".wb-save");
    let revision = Number(root.dataset.revision || 0);
    let dirty = false;
    let saving = false;
    let again = false;
    let stopped = false;
    let attempt = 0;
    let timer = null;

    const say = (text) => {
      if (status) status.textContent = text;
    };

    function snapshot() {
      options.beforeSnapshot();
      const values = {};
      new FormData(form).forEach((value, name) => {
        if (typeof value !== "string" || NOT_DRAFTED.has(name)) return;
        const field = form.elements.namedItem(name);
        // An untouched rewrite is the response itself: no need to store it again.
        if (field instanceof HTMLTextAreaElement && field.dataset.original !== undefined && value === field.dataset.original) return;
        (values[name] = values[name] || []).push(value);
      });
      return { content: { form: values }, base_revision: revision };
    }

    function cancelTimer() {
      if (timer !== null) window.clearTimeout(timer);
      timer = null;
    }

    function markDirty() {
      if (stopped) return;
      dirty = true;
      cancelTimer();
      timer = options.later(() => {
        timer = null;
        save(false);
      }, SAVE_DELAY_MS);
    }

    async function save(keepalive) {
      if (stopped || !dirty) return;
      if (saving) {
        again = true;
        return;
      }
      const body = JSON.stringify(snapshot());
      saving = true;
      again = false;
      dirty = false;
      say("Saving…");
      let response = null;
      try {
        response = await fetch(root.dataset.draftUrl, {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": options.csrfToken() },
          body,
          credentials: "same-origin",
          // A redirect here can only be to the login page: the session has ended.
          redirect: "manual",
          keepalive: keepalive && body.length < KEEPALIVE_LIMIT,
        });
      } catch (error) {
        response = null;
      }
      saving = false;
      if (!options.alive()) return;
      const code = response ? response.status : 0;
      if (response && response.type === "opaqueredirect") {
        dirty = true;
        stopped = true;
        say("Not saved: you are logged out. Log in again in another tab; what was saved before is kept.");
      } else if (response && response.ok) {
        revision = (await response.json()).revision;
        attempt = 0;
        say("Draft saved");
        if (again || dirty) {
          dirty = true;
          save(false);
        }
      } else if (code === 409) {
        // Another tab saved meanwhile, or the task is closed: stop rather than overwrite.
        stopped = true;
        say("Not saved: " + (await messageOf(response)) + ".");
      } else if (code >= 400 && code < 500 && ![401, 408, 429].includes(code)) {
        say("Not saved: " + (await messageOf(response)) + ".");
      } else {
        dirty = true;
        say("Not saved — retrying");
        options.later(() => save(false), Smiley.retryDelay(attempt++));
      }
    }

    return {
      markDirty,
      // Now, even as the page goes away (keepalive).
      flush() {
        cancelTimer();
        return save(true);
      },
      // While a submit is on its way: its answer replaces the draft.
      pause() {
        cancelTimer();
        stopped = true;
      },
      resume() {
        stopped = false;
      },
      isDirty: () => dirty,
    };
  };
})();
