"""FastAPI dependencies: typed handles on the container's parts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection

from services.core.container import Container


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def read_connection(request: Request) -> Iterator[Connection]:
    with get_container(request).db.reading() as conn:
        yield conn


ContainerDep = Annotated[Container, Depends(get_container)]
ReadConnDep = Annotated[Connection, Depends(read_connection)]
