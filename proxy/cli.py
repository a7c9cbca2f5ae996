"""``l104-proxy serve|check`` (also ``python -m proxy``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from proxy.config import ConfigError, load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="l104-proxy", description="L104 Proxy for Gemini")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the proxy")
    check = sub.add_parser("check", help="validate a config and exit")
    for p in (serve, check):
        p.add_argument(
            "--config",
            default=os.environ.get("L104_CONFIG"),
            help="YAML config (default: $L104_CONFIG)",
        )
    serve.add_argument("--host", help="listen address (default: listen.host)")
    serve.add_argument("--port", type=int, help="listen port (default: listen.port)")
    serve.add_argument("--log-level", default=os.environ.get("L104_LOG_LEVEL", "INFO"))
    serve.add_argument(
        "--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)"
    )
    serve.add_argument(
        "--watch", action="store_true", help="reload the config when its file changes"
    )
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.config:
        print("l104-proxy: no config: pass --config FILE or set L104_CONFIG", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 1
    if args.command == "check":
        print(
            f"{args.config}: ok ({len(config.chains)} chains, {len(config.responders)} responders)"
        )
        for notice in config.notices:
            print(f"{args.config}: note: {notice}")
        return 0
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from proxy.server import (  # keeps `check` light
        BindRefused,
        TlsRefused,
        announce,
        serve,
        supervise,
    )
    from proxy.store.db import StoreError

    host = args.host or config.listen.host
    port = config.listen.port if args.port is None else args.port
    try:
        if not args.reuse_port:  # a worker: its supervisor already checked and said it all
            announce(config, host, port, args.workers)
        if args.workers > 1:
            argv = ["serve", "--config", args.config, "--host", host, "--port", str(port)]
            argv += ["--log-level", args.log_level, *(["--watch"] if args.watch else [])]
            return supervise(argv, args.workers)
        serve(config, host, port, reuse_port=args.reuse_port, watch=args.watch)
    except (BindRefused, StoreError, TlsRefused) as exc:
        print(f"l104-proxy: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"l104-proxy: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
