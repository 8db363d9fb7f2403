/* Searching the guideline in the workbench's side panel: blocks that do not match are hidden
   and matches are marked. Text only: the guideline's HTML (sanitized by the server) is never
   rebuilt from strings; matches are wrapped by splitting text nodes. */
(function () {
  "use strict";

  const BLOCKS = "p, li, h1, h2, h3, h4, h5, h6, pre, blockquote, tr";

  function unmark(body) {
    body.querySelectorAll("mark.wb-match").forEach((mark) => {
      mark.replaceWith(document.createTextNode(mark.textContent));
    });
    body.normalize();
    body.querySelectorAll(".wb-unmatched").forEach((block) => block.classList.remove("wb-unmatched"));
  }

  function markText(block, needle) {
    const walker = document.createTreeWalker(block, NodeFilter.SHOW_TEXT);
    const nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    nodes.forEach((node) => {
      let rest = node;
      let at = rest.data.toLowerCase().indexOf(needle);
      while (at !== -1) {
        const hit = rest.splitText(at);
        rest = hit.splitText(needle.length);
        const mark = document.createElement("mark");
        mark.className = "wb-match";
        hit.replaceWith(mark);
        mark.append(hit);
        at = rest.data.toLowerCase().indexOf(needle);
      }
    });
  }

  function search(field) {
    const panel = field.closest(".wb-guideline");
    const body = panel && panel.querySelector(".wb-guideline-body");
    const said = panel && panel.querySelector('[data-testid="guideline-matches"]');
    if (!body) return;
    unmark(body);
    const needle = field.value.trim().toLowerCase();
    if (!needle) {
      said.textContent = "";
      return;
    }
    // Innermost blocks only, so a list item is judged apart from the list around it.
    const blocks = Array.from(body.querySelectorAll(BLOCKS)).filter((block) => !block.querySelector(BLOCKS));
    let found = 0;
    blocks.forEach((block) => {
      if (block.textContent.toLowerCase().includes(needle)) {
        found += 1;
        markText(block, needle);
      } else block.classList.add("wb-unmatched");
    });
    said.textContent = found === 1 ? "1 matching paragraph" : `${found} matching paragraphs`;
    const first = body.querySelector("mark.wb-match");
    if (first) first.scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("input", (event) => {
    if (event.target.id === "wb-guideline-search") search(event.target);
  });
})();
