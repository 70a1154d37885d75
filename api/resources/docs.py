"""/openapi.yaml, /openapi.json, /docs (Swagger UI) and /redoc, with vendored assets (no CDN)."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import falcon
import yaml

from api.openapi import doc

STATIC = Path(__file__).resolve().parent.parent / "static"

SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hair Stylist Scheduler API</title>
<link rel="stylesheet" href="/static/swagger-ui/swagger-ui.css">
<link rel="icon" href="/static/swagger-ui/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/static/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/static/swagger-ui/swagger-ui-standalone-preset.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "BaseLayout",
  validatorUrl: null, persistAuthorization: true});
</script></body></html>
"""

REDOC_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hair Stylist Scheduler API</title></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="/static/redoc/redoc.standalone.js"></script></body></html>
"""


class OpenApiYaml:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec  # completed by the app factory after the routes are known

    @cached_property
    def text(self) -> str:
        return yaml.safe_dump(self.spec, sort_keys=False, allow_unicode=True)

    @doc(
        "This OpenAPI 3.1 document (YAML)",
        tag="docs",
        content_type="application/yaml",
        responses={200: None},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "application/yaml"
        resp.text = self.text


class OpenApiJson:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    @cached_property
    def text(self) -> str:
        return json.dumps(self.spec)

    @doc("This OpenAPI 3.1 document (JSON)", tag="docs", responses={200: None})
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.text = self.text


class HtmlPage:
    def __init__(self, html: str) -> None:
        self.html = html

    @doc(
        "Interactive API documentation", tag="docs", content_type="text/html", responses={200: None}
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.text = self.html
