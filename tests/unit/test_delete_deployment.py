"""Deleting a task goes through the Prefect server's own route; a 404 there means the task is
gone, unless the server lacks our routes, which is said rather than taken for success."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

from taskscheduler import errors
from taskscheduler._prefect.deployments import DELETE_DEPLOYMENT, Deployments
from taskscheduler._prefect.session import Session
from taskscheduler.settings import Settings


class StubClient:
    """Answers our route with ``status``; knows a deployment if ``exists``."""

    def __init__(self, status: int, exists: bool) -> None:
        self.status, self.exists = status, exists
        self.asked: list[tuple[str, str]] = []

    async def request(self, method: str, path: str) -> httpx.Response:
        self.asked.append((method, path))
        request = httpx.Request(method, f"http://prefect/api{path}")
        response = httpx.Response(self.status, request=request)
        if response.is_error:
            raise PrefectHTTPStatusError.from_httpx_error(
                httpx.HTTPStatusError("refused", request=request, response=response)
            )
        return response

    async def read_deployment(self, deployment_id: uuid.UUID) -> Any:
        if not self.exists:
            raise ObjectNotFound(http_exc=Exception("gone"))
        return object()


def delete(client: StubClient) -> None:
    session = Session(client)  # type: ignore[arg-type]
    deployment_id = uuid.uuid4()
    asyncio.run(Deployments(Settings()).delete_deployment(session, deployment_id))
    assert client.asked == [("DELETE", f"{DELETE_DEPLOYMENT}/{deployment_id}")]


def test_the_route_deletes_and_a_deployment_already_gone_is_no_error() -> None:
    delete(StubClient(204, exists=False))
    delete(StubClient(404, exists=False))


def test_a_server_without_our_routes_is_named_not_taken_for_a_delete() -> None:
    with pytest.raises(errors.PlatformUnavailable, match="no taskscheduler routes"):
        delete(StubClient(404, exists=True))


def test_other_refusals_are_raised() -> None:
    with pytest.raises(PrefectHTTPStatusError):
        delete(StubClient(500, exists=True))
