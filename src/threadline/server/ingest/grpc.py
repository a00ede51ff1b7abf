"""OTLP/gRPC ingest (``threadline server --otlp-grpc-port PORT``): the OpenTelemetry
``TraceService/Export`` call, beside OTLP/HTTP in the same process.

The same steps as ``POST /v1/traces``: the bearer token from the ``authorization``
metadata, the experiment from ``x-threadline-experiment-id`` (then the resource attribute),
the same pure decoding, and ``routes.accept_rows`` into the same queue and writer. An
``OK`` answer means committed (``x-threadline-ack: queued`` asks for the lossy fast path,
as over HTTP). A full queue, an unavailable store or a shutting-down server answer
``UNAVAILABLE`` with ``google.rpc.RetryInfo`` (OpenTelemetry exporters wait that long and
send again); bad data ``INVALID_ARGUMENT``; a missing token ``UNAUTHENTICATED``; a token
without the right ``PERMISSION_DENIED``.

The gRPC server runs on the app's event loop, started and stopped with the app's lifespan
(``attach``). With ``--workers N`` every worker binds the port with ``SO_REUSEPORT`` and
the kernel spreads connections over them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

from threadline import settings as all_settings
from threadline.errors import InvalidArgumentError

if TYPE_CHECKING:  # the rest is imported when the gRPC server starts: the supervisor of
    # ``--workers N`` imports this module but never FastAPI
    import grpc
    from fastapi import FastAPI

    from threadline.server.auth import Principal
    from threadline.server.ingest.decode import DecodedBatch

PORT = all_settings.SERVER_OTLP_GRPC_PORT
HOST = all_settings.SERVER_OTLP_GRPC_HOST
SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
METHOD = "Export"
STOP_GRACE_SECONDS = 10.0
_INSTALL_HINT = "pip install 'threadline[server,grpc]'"


def configure(host: str, port: int | None, workers: int) -> None:
    """Hand ``--otlp-grpc-port`` (and ``--host``) to the app processes (``attach``)."""
    if port is None:
        return
    require_grpc()
    if port == 0 and workers > 1:
        raise InvalidArgumentError(
            "--otlp-grpc-port 0 (any free port) needs --workers 1: the workers share one port."
        )
    PORT.export(str(port))
    HOST.export(host)


def attach(app: FastAPI, *, shared: bool = False) -> None:
    """Serve OTLP/gRPC with ``app`` when ``THREADLINE_SERVER_OTLP_GRPC_PORT`` is set: started
    after the app's own startup (its writer runs), stopped before its shutdown drains.
    ``shared``: worker processes binding one port together (``--workers N``)."""
    port = PORT.get()
    if port is None:
        return
    require_grpc()
    host = HOST.get()
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        async with inner(application) as state:
            server = await start(application, host, port, shared=shared)
            try:
                yield state
            finally:
                await server.stop(STOP_GRACE_SECONDS)

    app.router.lifespan_context = lifespan


def require_grpc() -> None:
    """Stop with the install hint when grpcio is missing."""
    try:
        import grpc  # noqa: F401
    except ImportError as exc:
        raise InvalidArgumentError(
            f"--otlp-grpc-port needs grpcio ({exc}): run {_INSTALL_HINT}."
        ) from None


async def start(app: Any, host: str, port: int, *, shared: bool = False) -> grpc.aio.Server:
    """Bind ``host:port`` and start serving ``TraceService/Export`` for ``app``."""
    import grpc

    settings = app.state.settings
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            ("grpc.so_reuseport", 1 if shared else 0),
        ]
    )
    service = _TraceService(app)
    handler = grpc.unary_unary_rpc_method_handler(service.export)  # raw bytes in and out
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {METHOD: handler}),)
    )
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(target)
    except RuntimeError as exc:
        raise InvalidArgumentError(f"Cannot listen for OTLP/gRPC on {target}: {exc}") from None
    await server.start()
    shown = f"[{host}]" if ":" in host else host
    print(f"threadline server: OTLP/gRPC on {shown}:{bound}", flush=True)
    return server


class _Call:
    """What ``accept_rows`` reads of a request: the app (its store, writer and settings)."""

    def __init__(self, app: Any) -> None:
        self.app = app


class _TraceService:
    def __init__(self, app: Any) -> None:
        from threadline.server.auth import AuthMiddleware

        self.app = app
        grants = app.state.settings.auth_tokens
        self._auth = AuthMiddleware(app, grants) if grants else None

    async def export(self, body: bytes, context: grpc.aio.ServicerContext) -> bytes:
        import grpc

        from threadline.server.errors import ApiError

        metadata = {str(k).lower(): v for k, v in context.invocation_metadata() or ()}
        try:
            who = self._principal(metadata.get("authorization"))
            return _response(await self._ingest(body, who, metadata))
        except ApiError as exc:
            retry = exc.headers.get("Retry-After")
            if retry is not None:
                context.set_trailing_metadata((("google.rpc.retryinfo-bin", _retry_info(retry)),))
            await context.abort(_code(exc.status), exc.message)
        except InvalidArgumentError as exc:  # a request that does not decode
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise AssertionError("unreachable: abort() raises")  # pragma: no cover

    def _principal(self, header: Any) -> Principal:
        from threadline.server.auth import FULL_ACCESS
        from threadline.server.errors import ApiError

        if self._auth is None:
            return FULL_ACCESS
        found = self._auth._authenticate(header if isinstance(header, str) else None)
        if found is None:
            raise ApiError(
                401,
                "Missing or unknown bearer token: send metadata 'authorization: Bearer <token>'.",
            )
        return found

    async def _ingest(self, body: bytes, who: Principal, metadata: dict[str, Any]) -> DecodedBatch:
        from starlette.concurrency import run_in_threadpool

        from threadline.server.errors import ApiError
        from threadline.server.ingest.decode import PROTOBUF_TYPES, decode_request
        from threadline.server.ingest.routes import (
            accept_rows,
            check_room,
            time_bounds,
            wait_for_commit,
        )

        app = self.app
        call = cast(Any, _Call(app))
        wait = wait_for_commit(metadata.get("x-threadline-ack"), metadata.get("x-threadline-sync"))
        check_room(call)
        batch = await run_in_threadpool(
            decode_request,
            body,
            PROTOBUF_TYPES[0],
            metadata.get("x-threadline-experiment-id"),
            app.state.write_priority.wait_turn,
            time_bounds(app.state.settings),
        )
        if batch.rejected_spans and not batch.spans:
            raise ApiError(400, f"Nothing of this request was stored. {batch.error_message}")
        await accept_rows(call, who, batch.traces, batch.spans, wait=wait)
        return batch


def _response(batch: DecodedBatch) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    message = ExportTraceServiceResponse()
    if batch.rejected_spans:
        message.partial_success.rejected_spans = batch.rejected_spans
    if batch.error_message:
        message.partial_success.error_message = batch.error_message
    return message.SerializeToString()


def _retry_info(seconds: str) -> bytes:
    from google.protobuf.duration_pb2 import Duration
    from google.rpc.error_details_pb2 import RetryInfo

    try:
        delay = max(0, int(seconds))
    except ValueError:
        delay = 1
    return RetryInfo(retry_delay=Duration(seconds=delay)).SerializeToString()


def _code(status: int) -> grpc.StatusCode:
    """The gRPC status for an HTTP status of ``accept_rows`` and the checks before it."""
    import grpc

    return {
        400: grpc.StatusCode.INVALID_ARGUMENT,
        401: grpc.StatusCode.UNAUTHENTICATED,
        403: grpc.StatusCode.PERMISSION_DENIED,
        413: grpc.StatusCode.INVALID_ARGUMENT,  # too large: sending it again cannot help
        415: grpc.StatusCode.INVALID_ARGUMENT,
        503: grpc.StatusCode.UNAVAILABLE,
    }.get(status, grpc.StatusCode.INTERNAL)
