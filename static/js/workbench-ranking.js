/* The ranking list of a comparison: drag rows, move them by keyboard, tie neighbours, or fill
   it from the scores. The list's state lives in the page itself: the row order, a "tied with
   the row above" mark per row, and the place inputs (rank_A …) the form posts, which this
   keeps in step. Places are dense: A = B > C gives 1, 1, 2. */
(function () {
  "use strict";

  const Smiley = (window.Smiley = window.Smiley || {});

  Smiley.Ranking = function Ranking(root, onChange) {
    const list = root.querySelector(".wb-rank-list");
    const summary = root.querySelector(".wb-ranking-summary");
    const news = root.querySelector(".wb-ranking-news");
    const warnings = root.querySelector(".wb-live-warnings");
    const form = root.querySelector("#wb-form");
    const keepOrder = root.querySelector('[data-action="keep-order"]');
    if (!list || !form) return null;

    const rows = () => Array.from(list.querySelectorAll(".wb-rank-row"));
    const rowOf = (letter) => list.querySelector(`.wb-rank-row[data-letter="${letter}"]`);
    const placeInput = (row) => row.querySelector('input[type="number"]');
    const count = () => rows().length;

    function placeOf(row) {
      const raw = placeInput(row).value.trim();
      const value = Number(raw);
      return raw !== "" && Number.isInteger(value) && value >= 1 && value <= count() ? value : null;
    }

    function isComplete() {
      return rows().every((row) => placeOf(row) !== null);
    }

    function unacceptable() {
      const box = form.elements.namedItem("all_unacceptable");
      return Boolean(box && box.checked);
    }

    function scores() {
      const found = {};
      rows().forEach((row) => {
        const letter = row.dataset.letter;
        const checked = form.querySelector(`input[name="score_${letter}"]:checked`);
        found[letter] = checked ? Number(checked.value) : null;
      });
      return found;
    }

    // Writes places from the row order and tie marks, then tells the page it changed.
    function write(announce) {
      let place = 0;
      rows().forEach((row, index) => {
        const tied = index > 0 && row.classList.contains("wb-tied");
        if (!tied) place += 1;
        placeInput(row).value = String(place);
        const tie = row.querySelector('[data-action="tie"]');
        tie.hidden = index === 0;
        tie.setAttribute("aria-pressed", tied ? "true" : "false");
        if (index === 0) row.classList.remove("wb-tied");
      });
      refresh(announce);
      if (onChange) onChange();
    }

    function text() {
      if (!isComplete()) return "Not ranked yet.";
      return rows()
        .map((row, index) => (index === 0 ? "" : placeOf(row) === placeOf(rows()[index - 1]) ? " = " : " > ") + row.dataset.letter)
        .join("");
    }

    function conflicts() {
      if (unacceptable() || !isComplete()) return [];
      const given = scores();
      const found = [];
      rows().forEach((better) => {
        rows().forEach((worse) => {
          const a = better.dataset.letter;
          const b = worse.dataset.letter;
          if (placeOf(better) < placeOf(worse) && given[a] !== null && given[b] !== null && given[a] < given[b]) {
            found.push(`${a} is ranked above ${b} but scored lower (${given[a]} < ${given[b]}).`);
          }
        });
      });
      return found;
    }

    // Summary, the "use this order" button and the score/rank warnings, from the inputs.
    function refresh(announce) {
      const off = unacceptable();
      list.classList.toggle("wb-off", off);
      rows().forEach((row) => {
        placeInput(row).disabled = off;
        row.querySelector('[data-action="tie"]').disabled = off;
      });
      summary.textContent = off ? "No ranking: all responses are unacceptable." : text();
      // Said to screen readers: what changed, then the ranking as it now stands.
      if (announce && news) news.textContent = `${announce} ${summary.textContent}`;
      if (keepOrder) keepOrder.hidden = off || isComplete();
      warnings.replaceChildren();
      const found = conflicts();
      if (found.length) {
        const intro = document.createElement("p");
        intro.textContent = "Scores and ranking disagree (you may still submit):";
        const items = document.createElement("ul");
        found.forEach((line) => {
          const item = document.createElement("li");
          item.textContent = line;
          items.append(item);
        });
        warnings.append(intro, items);
      }
    }

    function move(letter, delta) {
      const row = rowOf(letter);
      if (!row || unacceptable()) return false;
      const all = rows();
      const index = all.indexOf(row);
      const target = index + delta;
      if (target < 0 || target >= all.length) return false;
      const hadFocus = document.activeElement === row;
      const oldNext = row.nextElementSibling;
      if (delta < 0) all[target].before(row);
      else all[target].after(row);
      settleAfterMove(row, oldNext);
      if (hadFocus) row.focus();
      const place = rows().indexOf(row) + 1;
      write(`${letter} moved to position ${place}.`);
      return true;
    }

    // A moved row leaves its ties behind: it, the row that was below it and the row now below
    // it start untied, so a move never ties two responses the labeler did not tie.
    function settleAfterMove(row, oldNext) {
      row.classList.remove("wb-tied");
      if (oldNext) oldNext.classList.remove("wb-tied");
      const next = row.nextElementSibling;
      if (next) next.classList.remove("wb-tied");
    }

    function toggleTie(letter) {
      const row = rowOf(letter);
      if (!row || unacceptable() || rows().indexOf(row) === 0) return false;
      row.classList.toggle("wb-tied");
      write(row.classList.contains("wb-tied") ? `${letter} tied with the response above.` : `${letter} untied.`);
      return true;
    }

    // Highest score first; equal scores tie. Returns the letters still unscored.
    function byScores() {
      if (unacceptable()) return [];
      const given = scores();
      const missing = Object.keys(given).filter((letter) => given[letter] === null);
      if (missing.length) return missing;
      const ordered = rows().sort((one, two) => {
        const difference = given[two.dataset.letter] - given[one.dataset.letter];
        return difference || one.dataset.letter.localeCompare(two.dataset.letter);
      });
      ordered.forEach((row, index) => {
        list.append(row);
        const tied = index > 0 && given[row.dataset.letter] === given[ordered[index - 1].dataset.letter];
        row.classList.toggle("wb-tied", tied);
      });
      write("Ranked by scores; you can still change it.");
      return [];
    }

    // Typed places: sort the rows by them once every response has a valid one.
    function fromInputs() {
      if (!isComplete()) {
        refresh();
        return;
      }
      const ordered = rows().sort((one, two) => placeOf(one) - placeOf(two) || one.dataset.letter.localeCompare(two.dataset.letter));
      ordered.forEach((row, index) => {
        list.append(row);
        row.classList.toggle("wb-tied", index > 0 && placeOf(row) === placeOf(ordered[index - 1]));
      });
      write();
    }

    // --- dragging, with pointer events (mouse, pen and touch alike) ---
    let dragged = null;
    let draggedNext = null;
    let moved = false;

    function onPointerDown(event) {
      const row = event.target.closest(".wb-rank-row");
      if (!row || event.button !== 0 || unacceptable()) return;
      if (event.target.closest("input, button, label, a")) return;
      event.preventDefault();
      dragged = row;
      draggedNext = row.nextElementSibling;
      moved = false;
      row.classList.add("wb-dragging");
      row.setPointerCapture(event.pointerId);
      row.focus();
    }

    function onPointerMove(event) {
      if (!dragged) return;
      const under = document.elementFromPoint(event.clientX, event.clientY);
      const over = under && under.closest(".wb-rank-row");
      if (!over || over === dragged || over.parentElement !== list) return;
      // Taking the place of the row under the pointer, from above or from below.
      if (dragged.compareDocumentPosition(over) & Node.DOCUMENT_POSITION_FOLLOWING) over.after(dragged);
      else over.before(dragged);
      moved = true;
    }

    function onPointerUp(event) {
      if (!dragged) return;
      const row = dragged;
      dragged = null;
      row.classList.remove("wb-dragging");
      if (row.hasPointerCapture(event.pointerId)) row.releasePointerCapture(event.pointerId);
      if (moved) {
        settleAfterMove(row, draggedNext);
        row.focus();
        write(`${row.dataset.letter} moved to position ${rows().indexOf(row) + 1}.`);
      }
    }

    function onClick(event) {
      const tie = event.target.closest('[data-action="tie"]');
      if (tie) toggleTie(tie.closest(".wb-rank-row").dataset.letter);
    }

    function onInputChange(event) {
      if (event.target.matches('.wb-rank-row input[type="number"]')) fromInputs();
      else refresh();
    }

    list.addEventListener("pointerdown", onPointerDown);
    list.addEventListener("pointermove", onPointerMove);
    list.addEventListener("pointerup", onPointerUp);
    list.addEventListener("pointercancel", onPointerUp);
    list.addEventListener("click", onClick);
    form.addEventListener("change", onInputChange);
    if (keepOrder) {
      keepOrder.addEventListener("click", () => {
        rows().forEach((row) => row.classList.remove("wb-tied"));
        write("This order is your ranking now.");
      });
    }
    refresh();

    return {
      move,
      toggleTie,
      byScores,
      conflicts,
      isComplete,
      unacceptable,
      scores,
      refresh,
      rowOf,
    };
  };
})();
