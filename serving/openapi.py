"""The API page people use: the OpenAPI document of the project and a Swagger page without trackers.

BentoML generates the document from the pydantic models, but with its own title, version `None`, a
boilerplate description, no security scheme, no request examples and its own error schemas; its
index page loads a third-party tag manager. `ApiDocs` (an ASGI middleware) answers three paths
itself and leaves every other request to BentoML:

- `/docs.json`: BentoML's document with the project's title, version and description, an example
  for every request body, the bearer security scheme, the error responses the routes really give
  (`{"error": reason}`), and each health route once (BentoML's /livez, /healthz, /readyz stay
  served for orchestrators but are not listed next to /v1/health/*);
- `/docs`: Swagger UI from BentoML's bundled static files (no script from another host);
- `/`: a redirect to `/docs`.
"""

from __future__ import annotations

import copy
import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

TITLE = "grocery-recsys"
DESCRIPTION = """Personalisation for grocery loyalty programs: products (buy again, discover), similar
items and diet-safe substitutes, recipes with the products still to buy, budgeted discounts.

Diet and allergen exclusions are **fail-closed**: a product whose attribute is unknown is never
shown to a customer who excludes it. Every answer carries the model version and, when it is not
personalised, why (`fallback`).

**Keys.** Every endpoint but health needs `Authorization: Bearer <key>` (or `X-API-Key`) with its
scope: `read` for recommendations and profiles, `write` for checkout, feedback, consent and erasure,
`admin` for reload. Keys are configured as digests in `RECSYS_API_KEYS` (`recsys keys new`). Click
*Authorize* to try them here.

**Errors** come back as `{"error": reason}` with a 4xx status: 400 bad input (the reason names the
field and value), 401 no key, 403 wrong key or scope, 404 unknown id, 409 idempotency key reused for
another request, 413 body too large, 415 not JSON, 503 not ready or event store unavailable.
"""

#: one realistic body per route (Complete Journey household and product ids)
EXAMPLES: dict[str, dict[str, Any]] = {
    "/v1/products": {"customer_id": "1013", "k": 5, "diet": ["gluten-free"], "mode": "mixed"},
    "/v1/items/similar": {"item_id": "1082185", "k": 5},
    "/v1/items/substitutes": {"item_id": "995242", "k": 3, "diet": ["lactose-free"]},
    "/v1/recipes": {"customer_id": "1013", "k": 3, "max_steps": 6},
    "/v1/discounts": {"customer_id": "1013", "k": 3},
    "/v1/customers/profile": {"customer_id": "1013"},
    "/v1/checkout": {
        "customer_id": "1013",
        "store": "367",
        "idempotency_key": "till-7-2026-12-07-0042",
        "lines": [{"product_id": "995242", "quantity": 2, "price": 2.49}],
    },
    "/v1/feedback": {
        "events": [
            {
                "customer_id": "1013",
                "item_id": "995242",
                "event_type": "purchase",
                "recommendation_id": "4f9c0d5e6a7b48c1a2b3c4d5e6f70812",
            }
        ]
    },
    "/v1/customers/consent": {
        "customer_id": "1013",
        "consent_personalisation": True,
        "marketing_channels": ["email", "store"],
        "diet": ["vegan"],
    },
    "/v1/customers/erase": {"customer_id": "1013"},
    "/v1/admin/reload": {},
}
WRITE_ROUTES = (
    "/v1/checkout",
    "/v1/feedback",
    "/v1/customers/consent",
    "/v1/customers/erase",
    "/v1/admin/reload",
)
NOT_FOUND_ROUTES = ("/v1/items/similar", "/v1/items/substitutes", "/v1/discounts", "/v1/feedback")
HIDDEN = ("/healthz", "/livez", "/readyz")
SECURITY = {"bearer": {"type": "http", "scheme": "bearer", "description": "an API key (RECSYS_API_KEYS)"}}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what is wrong, naming the field or id"},
        "detail": {
            "type": "string",
            "description": "every problem of a malformed body, when there are several",
        },
    },
}
ERRORS = {
    "400": "bad input: malformed JSON, a field out of range, an unknown diet, category or product id",
    "401": "no API key",
    "403": "wrong API key or scope, or the server has no keys configured",
    "404": "unknown id (item, or no discount plan loaded)",
    "409": "the idempotency key was used for another request",
    "413": "request body larger than RECSYS_MAX_BODY_BYTES",
    "415": "request body is not application/json",
    "503": "not ready (warming up, event store unavailable)",
}


def project_version() -> str:
    try:
        return version("grocery-recsys")
    except PackageNotFoundError:  # a bento without the package metadata
        return "0+unknown"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def patch_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The project's OpenAPI document from BentoML's (a new dict; the input is left as it was)."""
    spec = copy.deepcopy(spec)
    spec["openapi"] = "3.1.0"  # BentoML's schemas use 3.1 keywords (anyOf with null) under a 3.0.2 label
    spec["info"] = {
        "title": TITLE,
        "version": project_version(),
        "description": DESCRIPTION,
    }
    spec["tags"] = [
        {"name": "Recommendations", "description": "products, items, recipes, discounts, profiles"},
        {"name": "Customers and feedback", "description": "write endpoints: need an API key"},
        {"name": "Operations", "description": "health, metrics, reload"},
    ]
    components = spec.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY)
    schemas = components.setdefault("schemas", {})
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):
        schemas.pop(name, None)
    schemas["Error"] = ERROR_SCHEMA
    for path in HIDDEN:
        spec["paths"].pop(path, None)
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            _patch_operation(path, method, op)
    return spec


def _patch_operation(path: str, method: str, op: dict[str, Any]) -> None:
    write = path in WRITE_ROUTES
    if path.startswith("/v1/health") or path in ("/metrics", "/v1/admin/reload"):
        op["tags"] = ["Operations"]
    else:
        op["tags"] = ["Customers and feedback" if write else "Recommendations"]
    if method != "post":
        return
    # every route needs a key with its scope (reads can be opened with RECSYS_READ_REQUIRES_KEY=false)
    op["security"] = [{"bearer": []}]
    if "requestBody" in op:
        op["requestBody"]["required"] = True
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body is not None and path in EXAMPLES:
        body["example"] = EXAMPLES[path]
    responses = {str(k): v for k, v in op.get("responses", {}).items() if not str(k).startswith(("4", "5"))}
    codes = ["400", "401", "403", *(["404"] if path in NOT_FOUND_ROUTES else []), "413", "415", "503"]
    if path == "/v1/checkout":
        codes.insert(3, "409")
    responses.update({code: _error(ERRORS[code]) for code in codes})
    op["responses"] = responses


SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>{title} API</title>
  <link rel="stylesheet" type="text/css" href="/static_content/swagger-ui.css" />
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/static_content/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "/docs.json", dom_id: "#swagger-ui", deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"}});
  </script>
</body>
</html>
"""


class ApiDocs:
    """ASGI middleware answering `/`, `/docs` and `/docs.json`; everything else goes to BentoML."""

    def __init__(self, app: Any, service: Any) -> None:
        self.app = app
        self.service = service
        self._spec: bytes | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == "/":
            await _send(send, 307, b"", "text/plain", [(b"location", b"/docs")])
        elif path in ("/docs", "/docs/"):
            await _send(send, 200, SWAGGER_PAGE.format(title=TITLE).encode(), "text/html; charset=utf-8")
        elif path == "/docs.json":
            if self._spec is None:
                self._spec = json.dumps(patch_spec(self.service.openapi_spec.asdict())).encode()
            await _send(send, 200, self._spec, "application/json")
        else:
            await self.app(scope, receive, send)


async def _send(
    send: Any, status: int, body: bytes, media_type: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    raw = [(b"content-type", media_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": raw + (headers or [])})
    await send({"type": "http.response.body", "body": body})
