/* A demonstration's editor: start from the model's draft, and continue the conversation with
   a user turn and an answer (removable). The preview beside it is rendered by the server
   (POST /work/preview, through htmx), so the page never turns typed text into HTML. */
(function () {
  "use strict";

  const Smiley = (window.Smiley = window.Smiley || {});

  Smiley.Editor = function Editor(root, onChange) {
    const form = root.querySelector("#wb-form");

    // Labels follow their fields, so every textarea keeps a name a screen reader can say.
    function renumber() {
      form.querySelectorAll('textarea[name="turn"]').forEach((field, index) => {
        field.id = `turn-${index}`;
        const label = field.previousElementSibling;
        if (label && label.tagName === "LABEL") label.htmlFor = field.id;
      });
    }

    function changed() {
      renumber();
      form.dispatchEvent(new CustomEvent("wb-turns-changed", { bubbles: true }));
      onChange();
    }

    return {
      addPair() {
        const template = root.querySelector("#wb-pair-template");
        if (!template) return;
        const pair = template.content.firstElementChild.cloneNode(true);
        template.before(pair);
        changed();
        pair.querySelector("textarea").focus();
      },
      removePair(button) {
        const pair = button.closest(".wb-turn-pair");
        const previous = pair.previousElementSibling;
        const fields = previous ? previous.querySelectorAll("textarea") : [];
        pair.remove();
        changed();
        (fields.length ? fields[fields.length - 1] : form.querySelector("#turn-0")).focus();
      },
      useDraft() {
        const source = root.querySelector("#wb-model-draft");
        const editor = form.querySelector("#turn-0");
        if (!source || !editor) return;
        const draft = JSON.parse(source.textContent);
        if (editor.value.trim() && editor.value !== draft && !window.confirm("Replace what you wrote with the model's draft?")) return;
        editor.value = draft;
        form.elements.namedItem("origin").value = "edited_draft";
        const note = root.querySelector('[data-testid="origin-note"]');
        if (note) note.hidden = false;
        editor.focus();
        editor.setSelectionRange(0, 0);
        editor.dispatchEvent(new Event("input", { bubbles: true }));
      },
    };
  };
})();
