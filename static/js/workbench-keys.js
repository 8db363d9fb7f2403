/* Keyboard shortcuts of the workbench, listed in its "?" dialog (templates/workbench/
   _dialogs.html). None fires while the labeler types in a text field, except Ctrl+Enter
   (submit) and Esc (leave the field); none fires while a dialog is open. */
(function () {
  "use strict";

  const Smiley = (window.Smiley = window.Smiley || {});
  const NOT_TEXT = new Set(["radio", "checkbox", "button", "submit", "reset", "range", "color", "file", "image"]);

  function typing(element) {
    if (!element || element === document.body) return false;
    if (element.isContentEditable) return true;
    if (element.tagName === "TEXTAREA" || element.tagName === "SELECT") return true;
    return element.tagName === "INPUT" && !NOT_TEXT.has(element.type);
  }

  function letters(bench) {
    return Array.from(bench.root.querySelectorAll(".wb-response")).map((card) => card.dataset.letter);
  }

  function focusCard(bench, letter) {
    const card = bench.root.querySelector(`#response-${letter}`);
    if (!card) return;
    bench.setCurrent(letter);
    card.focus();
    card.scrollIntoView({ block: "nearest" });
  }

  function step(bench, delta) {
    const all = letters(bench);
    if (!all.length) return;
    const index = all.indexOf(bench.current());
    const next = all[(index + delta + all.length) % all.length];
    focusCard(bench, next);
  }

  function score(bench, value) {
    const letter = bench.current();
    const radio = letter && bench.form.querySelector(`input[name="score_${letter}"][value="${value}"]`);
    if (!radio) return;
    radio.checked = true;
    radio.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function openAndFocus(details, target) {
    if (!details || !target) return;
    details.open = true;
    target.focus();
    target.scrollIntoView({ block: "nearest" });
  }

  function moveInRanking(bench, delta) {
    const letter = bench.current();
    if (!letter || !bench.ranking) return;
    const hadRowFocus = document.activeElement && document.activeElement.classList.contains("wb-rank-row");
    bench.ranking.move(letter, delta);
    if (hadRowFocus) bench.ranking.rowOf(letter).focus();
  }

  const comparisonKeys = {
    j: (bench) => step(bench, 1),
    k: (bench) => step(bench, -1),
    "[": (bench) => moveInRanking(bench, -1),
    "]": (bench) => moveInRanking(bench, 1),
    "=": (bench) => bench.current() && bench.ranking.toggleTie(bench.current()),
    r: (bench) => bench.rankByScores(),
    o: (bench) => {
      const keep = bench.root.querySelector('[data-action="keep-order"]');
      if (keep && !keep.hidden) keep.click();
    },
    u: (bench) => bench.form.elements.namedItem("all_unacceptable").click(),
    c: (bench) => bench.form.elements.namedItem("comment").focus(),
    f: (bench) => {
      const card = bench.root.querySelector(`#response-${bench.current()}`);
      if (card) openAndFocus(card.querySelector(".wb-flags"), card.querySelector('.wb-flags input[type="checkbox"]'));
    },
    e: (bench) => {
      const card = bench.root.querySelector(`#response-${bench.current()}`);
      if (card) openAndFocus(card.querySelector(".wb-rewrite"), card.querySelector(".wb-rewrite textarea"));
    },
  };

  const demonstrationKeys = {
    w: (bench) => {
      const editor = bench.form.querySelector("#turn-0");
      editor.focus();
      // At the end of what is there (a draft kept from before a reload): write on.
      editor.setSelectionRange(editor.value.length, editor.value.length);
      editor.scrollIntoView({ block: "nearest" });
    },
    d: (bench) => bench.useDraft(),
    t: (bench) => bench.addPair(),
  };

  const commonKeys = {
    s: (bench) => {
      const skip = bench.root.querySelector("#wb-skip");
      if (skip) openAndFocus(skip, skip.querySelector('input[name="reason"]'));
    },
    g: (bench) => {
      const search = bench.root.querySelector("#wb-guideline-search");
      if (search) {
        search.focus();
        search.scrollIntoView({ block: "nearest" });
      }
    },
    "?": (bench) => bench.openHelp(),
    m: (bench) => {
      const read = bench.root.querySelector('[data-testid="mark-read"]');
      if (read) read.click();
    },
    l: (bench) => {
      const renew = bench.root.querySelector('[data-testid="renew"]');
      if (renew && bench.root.dataset.state === "expired") renew.click();
    },
  };

  // Esc from a text field: back to the response it belongs to (or nowhere), so the
  // single-key shortcuts work again.
  function leaveField(bench, element) {
    const card = element.closest(".wb-response");
    element.blur();
    if (card) focusCard(bench, card.dataset.letter);
  }

  document.addEventListener("keydown", (event) => {
    const bench = Smiley.workbench && Smiley.workbench();
    if (!bench || !bench.form || event.isComposing) return;
    if (document.querySelector("dialog[open]")) return;
    const target = event.target;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      if (target !== document.body && !bench.root.contains(target)) return;
      event.preventDefault();
      const skip = target.closest && target.closest("#wb-skip form");
      if (skip) Smiley.submitForm(skip);
      else bench.submit();
      return;
    }
    if (event.key === "Escape") {
      if (!bench.root.contains(target)) return;
      const skip = target.closest("#wb-skip");
      if (skip && skip.open) {
        event.preventDefault();
        skip.open = false;
        skip.querySelector("summary").focus();
      } else if (typing(target) || target.closest(".wb-response")) {
        event.preventDefault();
        leaveField(bench, target);
      }
      return;
    }
    if (event.defaultPrevented || typing(target)) return;
    if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
      if (bench.ranking) {
        event.preventDefault();
        moveInRanking(bench, event.key === "ArrowUp" ? -1 : 1);
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key;
    if (bench.kind === "comparison" && /^[1-7]$/.test(key)) {
      event.preventDefault();
      score(bench, key);
      return;
    }
    const table = bench.kind === "comparison" ? comparisonKeys : demonstrationKeys;
    const action = table[key] || commonKeys[key];
    if (!action) return;
    event.preventDefault();
    action(bench);
  });
})();
