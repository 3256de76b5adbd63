"""context-distill's MCP layer: thin adapters from MCP tool calls to the ``compaction`` engine.

    context-distill serve                              # stdio (what MCP clients launch)
    context-distill serve --http --port 8765           # streamable HTTP on 127.0.0.1
    context-distill serve --http --stateless ...       # no sessions, for replicas

Logs go to stderr only; stdout belongs to the stdio protocol.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["build_server", "serve"]


def _configure_logging() -> None:
    from compaction._config import log_level_from_env

    level = log_level_from_env("INFO")
    root = logging.getLogger()
    if not any(getattr(h, "_context_distill", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._context_distill = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    # onnxruntime and httpx chatter is not useful on a server's stderr
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def build_server(*args, **kwargs):
    from ._app import build_server as _build

    return _build(*args, **kwargs)


def serve(
    *,
    http: bool = False,
    host: str = "127.0.0.1",
    port: int = 8765,
    stateless: bool = False,
    path: str = "/mcp",
    json_response: bool = False,
) -> int:
    """Run the server until the client goes away (stdio) or it is interrupted (HTTP). Returns an exit code."""
    _configure_logging()
    log = logging.getLogger("context_distill.server")
    from compaction._exceptions import ContextDistillError

    from ._http import ConfigError, HttpConfig, build_http_app

    cfg = None
    if http:
        try:
            cfg = HttpConfig.from_env(host=host, port=port, path=path, stateless=stateless, json_response=json_response)
        except ConfigError as exc:
            print(f"context-distill serve: error: {exc}", file=sys.stderr)
            return 2
    # Load the engine (tokenizer, model) in a thread while this one imports the MCP SDK:
    # both take a good part of a second, and much of the loading runs outside the GIL.
    import threading

    loaded: dict[str, object] = {}

    def load() -> None:
        try:
            from ._runtime import Runtime

            loaded["runtime"] = Runtime()
        except BaseException as exc:  # reported below, in this thread
            loaded["error"] = exc

    loader = threading.Thread(target=load, name="context-distill-load", daemon=True)
    loader.start()
    try:
        from ._app import build_server as _build

        loader.join()
        if "error" in loaded:
            raise loaded["error"]  # type: ignore[misc]
        mcp = _build(loaded["runtime"], transport="streamable-http" if http else "stdio")  # type: ignore[arg-type]
    except (ContextDistillError, ValueError) as exc:
        print(f"context-distill serve: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    if not http:
        import anyio

        from ._stdio import run_stdio

        try:
            anyio.run(run_stdio, mcp)
        except KeyboardInterrupt:
            pass
        return 0
    import anyio
    import uvicorn

    assert cfg is not None
    import socket

    try:  # say a taken port in one line, not through uvicorn's error log and exit code 3
        family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind((cfg.host, cfg.port))
    except OSError as exc:
        print(
            f"context-distill serve: error: cannot listen on {cfg.host}:{cfg.port} ({exc.strerror or exc}); "
            "pick another --port",
            file=sys.stderr,
        )
        return 2
    app = build_http_app(mcp, cfg)
    log.info(
        "serving MCP over streamable HTTP at http://%s:%d%s (%s%s)",
        cfg.host,
        cfg.port,
        cfg.path,
        "stateless" if cfg.stateless else "sessions",
        ", bearer token required" if cfg.token else "",
    )
    config = uvicorn.Config(app, host=cfg.host, port=cfg.port, log_config=None, access_log=False, lifespan="on")
    try:
        server = uvicorn.Server(config)
        anyio.run(server.serve)
    except KeyboardInterrupt:
        pass
    except SystemExit:  # uvicorn exits this way when it cannot start (e.g. the port was taken meanwhile)
        print(f"context-distill serve: error: the HTTP server could not start on {cfg.host}:{cfg.port}", file=sys.stderr)
        return 1
    return 0
