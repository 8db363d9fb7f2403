// Starts Swagger UI on the API docs page (templates/api_docs.html). FastAPI's own docs page does
// this in an inline <script>, which the Content-Security-Policy (script-src 'self') refuses to
// run; the schema's address comes from the page's data-openapi-url instead.
(function () {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis],
    // The online validator would send the schema to validator.swagger.io.
    validatorUrl: null,
  });
})();
