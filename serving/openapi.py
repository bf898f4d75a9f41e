"""The API page people use: the OpenAPI document of the project and a Swagger page without trackers.

BentoML generates the document from the pydantic models, but with its own title, version `None`, a
boilerplate description, no security scheme, no request examples and its own error schemas; its
index page loads a third-party tag manager; it writes optional fields without their null and lists
one method of a path served both by a mounted app and an API. `ApiDocs` (an ASGI middleware)
answers three paths itself, and methods a documented path does not have with a 405 whose `Allow`
lists the document's; it leaves every other request to BentoML:

- `/docs.json`: BentoML's document with the project's title, version and description, an example
  for every request body, the bearer security scheme, the error responses the routes really give
  (`{"error": reason}`), optional fields that admit null, both methods of /v1/customers/profile,
  and each health route once (BentoML's /livez, /healthz, /readyz stay served for orchestrators but
  are not listed next to /v1/health/*);
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
NOT_FOUND_ROUTES = (
    "/v1/products",  # an unknown store
    "/v1/recipes",
    "/v1/items/similar",
    "/v1/items/substitutes",
    "/v1/discounts",
    "/v1/feedback",
    "/v1/checkout",
    "/v1/customers/profile",
)
#: routes answered by a mounted app AND a BentoML API: BentoML lists only the mounted app's method
BOTH_METHODS = {"/v1/customers/profile": ("ProfileRequestIODescriptor", "ProfileResponseIODescriptor")}
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
    "404": "unknown id (item, store, customer without a history, or no discount plan loaded)",
    "409": "the idempotency key was used for another request",
    "413": "request body larger than RECSYS_MAX_BODY_BYTES",
    "415": "request body is not application/json",
    "422": "the model did not load (damaged or inconsistent files): the current model keeps serving",
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
    for path, (request, response) in BOTH_METHODS.items():
        if path in spec["paths"] and "post" not in spec["paths"][path]:
            spec["paths"][path]["post"] = _post_operation(path, request, response)
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            _patch_operation(path, method, op)
    _nullable(spec)
    if "FeedbackEvent" in schemas:
        _needs_an_item(schemas["FeedbackEvent"])
    if "ConsentRequestIODescriptor" in schemas:
        _no_channels_without_marketing(schemas["ConsentRequestIODescriptor"])
    return spec


def _needs_an_item(schema: dict[str, Any]) -> None:
    """The service's rule for a feedback event: an item_id, except that an offer_redeemed event may
    name the offer or the product group instead (BentoML's schema model has no if/then/else)."""
    named = lambda field: {"required": [field], "properties": {field: {"type": "string", "minLength": 1}}}  # noqa: E731
    schema["if"] = {"properties": {"event_type": {"const": "offer_redeemed"}}}
    schema["then"] = {"anyOf": [named("item_id"), named("offer_id"), named("product_group")]}
    schema["else"] = named("item_id")


def _no_channels_without_marketing(schema: dict[str, Any]) -> None:
    """The service's rule for a consent: `consent_marketing: false` withdraws every channel, so it
    cannot come with channels listed (a 400 otherwise)."""
    schema["if"] = {"properties": {"consent_marketing": {"const": False}}, "required": ["consent_marketing"]}
    schema["then"] = {"properties": {"marketing_channels": {"type": ["array", "null"], "maxItems": 0}}}


def _post_operation(path: str, request: str, response: str) -> dict[str, Any]:
    ref = lambda name: {"schema": {"$ref": f"#/components/schemas/{name}"}}  # noqa: E731
    return {
        "summary": path.rsplit("/", 1)[-1],
        "operationId": f"post{path.replace('/', '_')}",
        "requestBody": {"content": {"application/json": ref(request)}},
        "responses": {
            "200": {"description": "Successful Response", "content": {"application/json": ref(response)}}
        },
    }


def _nullable(node: Any) -> None:
    """BentoML writes an optional field (`X | None = None`) as plain X with `default: null`, so null,
    which the field accepts and answers carry, would break the document: make each such schema admit
    null again (OpenAPI 3.1: a "null" type, or anyOf with null around a reference)."""
    if isinstance(node, list):
        for x in node:
            _nullable(x)
        return
    if not isinstance(node, dict):
        return
    for key in ("properties", "$defs"):
        for schema in (node.get(key) or {}).values():
            if isinstance(schema, dict) and "default" in schema and schema["default"] is None:
                _admit_null(schema)
    for value in node.values():
        _nullable(value)


def _admit_null(schema: dict[str, Any]) -> None:
    kind = schema.get("type")
    if isinstance(kind, str):
        schema["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        kind.append("null")
    elif "$ref" in schema or "allOf" in schema:
        inner = {"$ref": schema.pop("$ref")} if "$ref" in schema else {"allOf": schema.pop("allOf")}
        schema["anyOf"] = [inner, {"type": "null"}]
    elif "anyOf" in schema and {"type": "null"} not in schema["anyOf"]:
        schema["anyOf"].append({"type": "null"})


def _patch_operation(path: str, method: str, op: dict[str, Any]) -> None:
    write = path in WRITE_ROUTES
    if path.startswith("/v1/health") or path in ("/metrics", "/v1/admin/reload"):
        op["tags"] = ["Operations"]
    else:
        op["tags"] = ["Customers and feedback" if write else "Recommendations"]
    if method != "post" and path not in EXAMPLES:
        return
    # every route needs a key with its scope (reads can be opened with RECSYS_READ_REQUIRES_KEY=false)
    op["security"] = [{"bearer": []}]
    if "requestBody" in op:
        # reload: no body means `{}` (the configured default); every other body has required fields
        op["requestBody"]["required"] = path != "/v1/admin/reload"
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body is not None and path in EXAMPLES:
        body["example"] = EXAMPLES[path]
    responses = {str(k): v for k, v in op.get("responses", {}).items() if not str(k).startswith(("4", "5"))}
    codes = ["400", "401", "403", *(["404"] if path in NOT_FOUND_ROUTES else [])]
    codes += ["413", "415", "503"] if method == "post" else ["503"]
    if path == "/v1/checkout":
        codes.insert(3, "409")
    if path == "/v1/admin/reload":
        codes.insert(3, "404")  # a registry version or model dir that does not exist
        codes.insert(4, "422")
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
        self._spec: dict[str, Any] | None = None
        self._allowed: dict[str, tuple[str, ...]] | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope.get("method", "")
        allowed = None if method in ("GET", "HEAD", "POST") else self._methods().get(path)
        if allowed:  # e.g. OPTIONS: 405 naming what the document lists, not just BentoML's route
            allow = [(b"allow", ", ".join(allowed).encode())]
            await _send(send, 405, b"Method Not Allowed", "text/plain", allow)
            return
        if method not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        if path == "/":
            await _send(send, 307, b"", "text/plain", [(b"location", b"/docs")])
        elif path in ("/docs", "/docs/"):
            await _send(send, 200, SWAGGER_PAGE.format(title=TITLE).encode(), "text/html; charset=utf-8")
        elif path == "/docs.json":
            await _send(send, 200, json.dumps(self._document()).encode(), "application/json")
        else:
            await self.app(scope, receive, send)

    def _document(self) -> dict[str, Any]:
        if self._spec is None:
            self._spec = patch_spec(self.service.openapi_spec.asdict())
        return self._spec

    def _methods(self) -> dict[str, tuple[str, ...]]:
        """Path -> the methods the document lists (GET brings HEAD)."""
        if self._allowed is None:
            self._allowed = {}
            for path, ops in self._document()["paths"].items():
                methods = sorted(m.upper() for m in ops)
                self._allowed[path] = tuple(methods + (["HEAD"] if "GET" in methods else []))
        return self._allowed


async def _send(
    send: Any, status: int, body: bytes, media_type: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    raw = [(b"content-type", media_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": raw + (headers or [])})
    await send({"type": "http.response.body", "body": body})
