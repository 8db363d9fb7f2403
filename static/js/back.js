// "Go back" links on error pages: a javascript: URL would be blocked by the
// Content-Security-Policy, so the link points home and this script goes back instead
// when there is a page to go back to.
document.addEventListener("click", (event) => {
  const link = event.target instanceof Element ? event.target.closest("a[data-history-back]") : null;
  if (link && window.history.length > 1) {
    event.preventDefault();
    window.history.back();
  }
});
