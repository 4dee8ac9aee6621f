"""The Profile API as an ASGI application (Starlette): Segment's paths, auth, rate limit, errors and logs.

GET /v1/spaces/{space_id}/collections/{users|accounts}/profiles/{type:value}/{traits|external_ids|events|metadata|links}

Logs say which route answered, with what status, how fast and for which token name; never the identifier,
the query string or the token.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from activation_pipeline.config import Workspace
from activation_pipeline.identifiers import canonical_identifier
from activation_pipeline.serving import resources
from activation_pipeline.serving.access import Credential, RateLimiter, token_of
from activation_pipeline.serving.layout import KEY_SEPARATOR, PROFILE_PREFIX
from activation_pipeline.serving.resources import ApiError, Page, invalid, not_found
from activation_pipeline.serving.store import NotPublishedError, ServingReader, ServingVersion

LOG = logging.getLogger("activation_pipeline.serving")
PROFILE_PATH = "/v1/spaces/{space_id}/collections/{collection}/profiles/{rest:path}"
RESOURCES = {
    "users": ("traits", "external_ids", "events", "metadata", "links"),
    "accounts": ("traits", "external_ids", "metadata", "links"),
}
LIMITS = {
    "traits": (10, 200),
    "external_ids": (10, 100),
    "events": (10, 100),
    "links": (20, 100),
    "metadata": (1, 200),
}
"""Default and largest `limit` per list resource (Segment: 10 traits by default, up to 200; links 20);
`/metadata` is not a list and ignores it."""


@dataclass(frozen=True)
class ServiceSettings:
    """What the application needs besides the serving copy."""

    space_id: str
    default_region: str
    credentials: list[Credential]
    requests_per_second: float


def _error(
    status: int, code: str, message: str, request_id: str, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status,
        headers={"Request-Id": request_id, **(headers or {})},
    )


def lookup_key(identifier: str, region: str, collection: str) -> str:
    """The serving copy's key of `type:value` (value canonicalised as everywhere else), or `use_<id>`."""
    if (
        collection == "users"
        and identifier.startswith(PROFILE_PREFIX)
        and identifier[len(PROFILE_PREFIX) :].isdigit()
    ):
        return identifier
    kind, separator, value = identifier.partition(KEY_SEPARATOR)
    if not separator or not kind or not value.strip():
        raise invalid("The profile identifier must be written `type:value`, e.g. `user_id:u123`.")
    if collection == "accounts":
        if kind != "group_id":
            raise invalid("Accounts are found by `group_id:<value>`.")
        return value.strip()
    canonical = canonical_identifier(kind, value, region)
    if canonical is None:
        raise not_found()
    return f"{kind}{KEY_SEPARATOR}{canonical}"


class ProfileApi:
    """The request handling of the Profile API over one serving reader."""

    def __init__(self, reader: ServingReader, settings: ServiceSettings, limiter: RateLimiter) -> None:
        self.reader = reader
        self.settings = settings
        self.limiter = limiter

    def handle(self, request: Request) -> Response:
        """Authenticate, rate-limit and answer one request, logging its outcome without personal data."""
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        credential = token_of(request.headers.get("authorization"), self.settings.credentials)
        route = _route_name(request)
        try:
            if credential is None:
                raise ApiError(401, "authentication_error", "No valid Access Token provided.")
            wait = self.limiter.allow(credential.name)
            if wait:
                response = _error(
                    429, "rate_limit_error", "Too many requests hit the API too quickly.", request_id,
                    {"Retry-After": str(max(1, round(wait + 0.5)))},
                )  # fmt: skip
            else:
                body = self._answer(request)
                response = JSONResponse(body, headers={"Request-Id": request_id})
        except ApiError as error:
            headers = {"WWW-Authenticate": 'Basic realm="Profile API"'} if error.status == 401 else None
            response = _error(error.status, error.code, error.message, request_id, headers)
        except NotPublishedError:
            response = _error(
                503, "unavailable", "No evaluation has been published yet.", request_id, {"Retry-After": "5"}
            )
        except Exception as error:
            # Answer 500 and log only the error's type and place: its message may hold personal data.
            frame = traceback.extract_tb(error.__traceback__)[-1]
            LOG.error(
                "request %s failed: %s at %s:%s",
                request_id,
                type(error).__name__,
                frame.filename,
                frame.lineno,
            )
            response = _error(500, "server_error", "Something went wrong.", request_id)
        LOG.info(
            "request %s %s %s %d %.1fms token=%s",
            request_id, request.method, route, response.status_code,
            (time.perf_counter() - started) * 1000, credential.name if credential else "-",
        )  # fmt: skip
        return response

    def _answer(self, request: Request) -> dict[str, Any]:
        params = request.path_params
        collection, rest = params["collection"], params["rest"]
        identifier, _, resource = rest.rpartition("/")
        if resource not in RESOURCES.get(collection, ()) or not identifier:
            raise ApiError(404, "not_found", "Route was not found.")
        if params["space_id"] != self.settings.space_id:
            raise not_found("Space")
        key = lookup_key(identifier, self.settings.default_region, collection)
        default, largest = LIMITS[resource]
        page = Page(request.url.path, dict(request.query_params), default, largest)
        version = self.reader.current()
        if collection == "users":
            return self._user(version, key, resource, page)
        return self._account(version, key, resource, page)

    def _user(self, version: ServingVersion, key: str, resource: str, page: Page) -> dict[str, Any]:
        found = version.profile(key)
        if found is None:
            raise not_found()
        doc = found.doc
        if resource == "traits":
            return resources.traits(doc, page, version.publication.as_of, resources.USER_TRAIT_CLASSES)
        if resource == "external_ids":
            return resources.external_ids(resources.profile_external_ids(doc), page)
        if resource == "events":
            return resources.events(version.events(found.id), page)
        if resource == "links":
            return resources.user_links(doc, page)
        return resources.metadata(doc.get("created_at"), doc.get("updated_at"))

    def _account(self, version: ServingVersion, group_id: str, resource: str, page: Page) -> dict[str, Any]:
        found = version.account(group_id)
        if found is None:
            raise not_found("Account")
        if resource == "traits":
            return resources.traits(
                found.doc, page, version.publication.as_of, resources.ACCOUNT_TRAIT_CLASSES
            )
        if resource == "external_ids":
            return resources.external_ids(resources.account_external_ids(found), page)
        if resource == "links":
            return resources.account_links(found, page, version.profiles)
        created = found.doc.get("created_at")
        return resources.metadata(created, created)


def _route_name(request: Request) -> str:
    """`collection/resource` for logs when both are known names, else `unknown` (never a path's own text)."""
    collection = request.path_params["collection"]
    resource = request.path_params["rest"].rpartition("/")[2]
    return f"{collection}/{resource}" if resource in RESOURCES.get(collection, ()) else "unknown"


def _not_found_handler(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    code, message = (
        ("not_found", "Route was not found.")
        if status == 404
        else ("invalid_request_error", "Only GET is supported.")
    )
    return _error(status, code, message, str(uuid.uuid4()))


def build_app(reader: ServingReader, settings: ServiceSettings, limits: Path) -> Starlette:
    """The Starlette application answering the Profile API from `reader`; its rate limits kept in `limits`
    (one file for every worker process of the service)."""
    limiter = RateLimiter(settings.requests_per_second, [c.name for c in settings.credentials], limits)
    api = ProfileApi(reader, settings, limiter)
    handler: Callable[[Request], Response] = api.handle

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        reader.close()
        limiter.close()

    return Starlette(
        routes=[Route(PROFILE_PATH, handler, methods=["GET"])],
        exception_handlers={404: _not_found_handler, 405: _not_found_handler},
        lifespan=lifespan,
    )


def service_settings(workspace: Workspace, credentials: list[Credential]) -> ServiceSettings:
    """The service settings of a workspace (its space id, default phone region and rate limit)."""
    return ServiceSettings(
        space_id=workspace.personas_space_id,
        default_region=workspace.normalisation.default_region,
        credentials=credentials,
        requests_per_second=workspace.serving.requests_per_second,
    )
