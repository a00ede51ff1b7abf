"""``threadline server``: its options, and running the app under uvicorn.

The store is opened (and its schema upgraded) once before any worker starts; the socket is
bound here too, so the startup line can print the real URL (also with ``--port 0``). With
``--workers N`` uvicorn's own supervisor runs N processes on that socket; each builds its
app with ``app_from_environment`` from the ``THREADLINE_SERVER_*`` variables exported
here. The supervisor itself only waits on its workers, so it stays small: the store is
prepared in a short-lived child process and FastAPI and SQLAlchemy are never imported
into it (about 45 MB less resident memory); a worker whose supervisor dies ends by itself
(``supervision.py``). SIGTERM or SIGINT stops the server gracefully: requests in flight
finish and the ingest queue is drained into the store. uvicorn itself runs in
``serving.py``.

FastAPI and uvicorn are imported only when the server runs (``threadline --help`` stays
fast, and the SDK never needs them).
"""

from __future__ import annotations

import argparse
import socket
from typing import TYPE_CHECKING, Any

from threadline.errors import InvalidArgumentError, StoreError
from threadline.server import config as cfg
from threadline.server.ingest import grpc as otlp_grpc

if TYPE_CHECKING:
    from fastapi import FastAPI

APP_FACTORY = "threadline.server.main:app_from_environment"
GC_YOUNG_THRESHOLD = 50_000
STORE_PREPARE_TIMEOUT_SECONDS = 600  # a first migration of a big PostgreSQL store
MIN_WORKER_QUEUE_ROWS = 10_000  # a few requests' worth, whatever the split
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_INSTALL_HINT = "pip install 'threadline[server]'"


def add_server_command(groups: Any) -> None:
    """Add ``server`` to the CLI's sub-commands."""
    cmd = groups.add_parser(
        "server", help="run the tracking server (REST API and OpenTelemetry ingest)"
    )
    cmd.add_argument("--host", default=cfg.DEFAULT_HOST, help="default: 127.0.0.1")
    cmd.add_argument("--port", type=_port, default=cfg.DEFAULT_PORT, help="default: 5000")
    cmd.add_argument(
        "--backend-store-uri",
        metavar="URI",
        help="sqlite:///path.db or postgresql://… (default: $THREADLINE_SERVER_BACKEND_STORE_URI, "
        "else sqlite:///threadline.db in the current directory)",
    )
    cmd.add_argument(
        "--artifacts-destination",
        metavar="PATH|s3://bucket/prefix",
        help="keep span payloads larger than $THREADLINE_SERVER_ARTIFACT_THRESHOLD_BYTES "
        "(64 KiB) in this folder or S3 prefix (default: $THREADLINE_SERVER_ARTIFACTS_DESTINATION, "
        "else in the database)",
    )
    cmd.add_argument("--workers", type=_positive, default=1, metavar="N", help="processes")
    cmd.add_argument(
        "--otlp-grpc-port",
        type=_port,
        metavar="PORT",
        help="also take OTLP over gRPC on this port (4317 is the convention; default: off)",
    )
    cmd.add_argument(
        "--auth-token",
        dest="auth_tokens",
        action="append",
        metavar="TOKEN",
        help="require 'Authorization: Bearer TOKEN' (16+ characters; repeat for more tokens)",
    )
    cmd.add_argument(
        "--auth-tokens-file",
        metavar="PATH",
        help="tokens with rights, one per line: token read|write experiment_id,...|*",
    )
    cmd.set_defaults(handler=run_server)


def run_server(args: argparse.Namespace) -> int:
    """Open the store, bind, print the startup line and serve until SIGTERM/SIGINT."""
    _require_packages()
    from threadline.export._destination import absolute_uri
    from threadline.store import get_store

    uri = absolute_uri(args.backend_store_uri or cfg.STORE_URI.get() or cfg.DEFAULT_STORE_URI)
    tokens, tokens_file = _token_sources(args)
    grants = cfg.grants_from_tokens(tokens)
    if tokens_file is not None:
        grants.extend(cfg.grants_from_file(tokens_file))
    artifacts = _artifacts_destination(args)
    otlp_grpc.configure(args.host, args.otlp_grpc_port, args.workers)
    settings = cfg.ServerSettings(
        auth_tokens=tuple(grants),
        max_body_bytes=cfg.MAX_BODY_BYTES.get(),
        ingest_queue_rows=cfg.INGEST_QUEUE_SIZE.get(),
        artifacts_destination=artifacts,
        artifact_threshold_bytes=cfg.ARTIFACT_THRESHOLD_BYTES.get(),
        max_payload_bytes=cfg.MAX_PAYLOAD_BYTES.get(),
        body_timeout_seconds=cfg.BODY_TIMEOUT_SECONDS.get(),
        ingest_max_inflight_bytes=cfg.INGEST_MAX_INFLIGHT_BYTES.get(),
    )
    store = get_store(uri) if args.workers == 1 else None
    if store is None:
        prepare_store_in_child(uri)
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    auth = f"auth on ({len(grants)} tokens)" if grants else "auth off"
    where = f", artifacts {artifacts}" if artifacts is not None else ""
    print(
        f"threadline server listening on http://{shown}:{port} "
        f"(store {_masked(uri)}{where}, {args.workers} worker{'s' if args.workers > 1 else ''}, "
        f"{auth})",
        flush=True,
    )
    if not grants and args.host not in _LOOPBACK:
        print(f"threadline: warning: auth is off and the server listens on {args.host}", flush=True)
    header_timeout = cfg.HEADER_TIMEOUT_SECONDS.get()
    if store is not None:
        _serve_one(settings, store, sock, header_timeout)
    else:
        cfg.export_for_workers(
            {
                cfg.STORE_URI: uri,
                cfg.AUTH_TOKENS: ",".join(tokens) or None,
                cfg.AUTH_TOKENS_FILE: tokens_file,
                cfg.ARTIFACTS_DESTINATION: artifacts,
                # The queue bound is the server's: each worker holds its share, so memory
                # under load stays the same whatever the number of workers.
                cfg.INGEST_QUEUE_SIZE: str(
                    worker_queue_rows(settings.ingest_queue_rows, args.workers)
                ),
            }
        )
        from threadline.server.serving import serve_many

        serve_many(APP_FACTORY, args.workers, sock, header_timeout=header_timeout)
    return 0


def prepare_store_in_child(uri: str) -> None:
    """Open the store at ``uri`` (creating or upgrading its schema) in a child process.

    Raises ``StoreError`` with the child's message when it fails, so a bad URI or an
    unreachable database stops the server before it listens.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_prepare_store, args=(uri, sender), daemon=True)
    child.start()
    sender.close()
    try:
        problem = receiver.recv() if receiver.poll(STORE_PREPARE_TIMEOUT_SECONDS) else None
    except EOFError:  # the child died before answering
        problem = None
    finally:
        receiver.close()
    if problem is None and child.is_alive():  # stuck: do not leave it behind
        child.kill()
    child.join(5)
    if problem is None:
        raise StoreError(
            f"Cannot open the store {_masked(uri)}: the process preparing it did not finish "
            f"(exit code {child.exitcode}, time limit {STORE_PREPARE_TIMEOUT_SECONDS} s)."
        )
    if problem:
        raise StoreError(problem)


def _prepare_store(uri: str, sender: Any) -> None:
    """The child of ``prepare_store_in_child``: open the store, answer ``""`` or the error."""
    from threadline.store import get_store

    try:
        get_store(uri).close()
    except Exception as exc:  # reported to the parent, which stops the server
        sender.send(str(exc) or type(exc).__name__)
    else:
        sender.send("")
    finally:
        sender.close()


def worker_queue_rows(server_rows: int, workers: int) -> int:
    """Each worker's share of the server's ingest queue bound (at least one batch)."""
    return max(MIN_WORKER_QUEUE_ROWS, -(-server_rows // workers))


def app_from_environment() -> FastAPI:
    """The app of one worker process (``--workers N``), configured from the environment."""
    from threadline.server.supervision import exit_with_supervisor

    exit_with_supervisor()  # first: a worker whose supervisor is already dead ends at once
    from threadline.server.app import create_app, prioritize_writes
    from threadline.store import get_store

    uri, settings = cfg.settings_from_environment()
    app = create_app(settings, get_store(uri))
    prioritize_writes(app)  # the workers share the database's write lock
    otlp_grpc.attach(app, shared=True)
    _tune_gc()
    return app


def _tune_gc() -> None:
    """Freeze the heap built at startup out of the garbage collector's reach, and collect
    the young generation less often.

    A server process holds a large, permanent heap (FastAPI, pydantic, SQLAlchemy, the
    protobuf classes) that every full collection would walk again; and an ingest request
    allocates a thousand spans' worth of short-lived objects at once, which at the default
    threshold (700) triggers dozens of collections that find nothing to free. In a
    profiled server under ingest load this took the CPU per span (decode, write and GC)
    from 107 to 66 µs. Only the server's own processes are tuned, never a user's.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def _serve_one(
    settings: cfg.ServerSettings, store: Any, sock: socket.socket, header_timeout: float
) -> None:
    from threadline.server.app import create_app
    from threadline.server.serving import serve_one

    app = create_app(settings, store)
    otlp_grpc.attach(app)
    _tune_gc()
    serve_one(app, sock, header_timeout=header_timeout)


def _token_sources(args: argparse.Namespace) -> tuple[list[str], str | None]:
    """Tokens and tokens file from the flags when any is given, else from the environment."""
    import os.path

    if args.auth_tokens or args.auth_tokens_file:
        tokens, path = list(args.auth_tokens or []), args.auth_tokens_file
    else:
        tokens, path = list(cfg.AUTH_TOKENS.get()), cfg.AUTH_TOKENS_FILE.get()
    return tokens, None if path is None else os.path.abspath(path)


def _artifacts_destination(args: argparse.Namespace) -> str | None:
    """The flag's destination, else the environment's: absolute, and checked usable now
    (folder created, boto3 installed) so a mistake stops the server before it listens."""
    from threadline.artifacts import get_artifact_repository, resolve_destination

    given = args.artifacts_destination or cfg.ARTIFACTS_DESTINATION.get()
    if given is None:
        return None
    destination = resolve_destination(given)
    get_artifact_repository(destination)
    return destination


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: with protocol 0 asyncio does not set TCP_NODELAY on accepted
    # connections, and every request on a kept-alive connection stalls ~40 ms (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidArgumentError(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}."
        ) from None
    sock.listen(2048)  # connections wait in the backlog until the server accepts them
    sock.set_inheritable(True)
    return sock


def _masked(uri: str) -> str:
    """``uri`` with its password as ``***`` (without importing SQLAlchemy)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
        if parts.password is None:
            return uri
        user = parts.username or ""
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:  # never fail the startup line over a URI we could not parse
        return "(store)"


def _require_packages() -> None:
    """Stop with the install hint when the server extra is missing (found, not imported:
    a supervisor of several workers never needs FastAPI itself)."""
    from importlib.util import find_spec

    for name in ("fastapi", "opentelemetry.proto", "uvicorn", "httptools"):
        try:
            found = find_spec(name) is not None
        except ImportError:  # a parent package is missing
            found = False
        if not found:
            raise InvalidArgumentError(f"threadline server needs {name}: run {_INSTALL_HINT}.")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value
