"""What a worker's connections share, built from the settings: limits, timeouts, PROXY, gateway."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from corral.drivers.blocking import DriverContext
from corral.drivers.policy import DRAIN_LIMIT, ConnectionPolicy
from corral.gateway.forwarded import TrustedPeers
from corral.gateway.lifecycle import RequestLifecycle
from corral.gateway.loader import LoadedApp
from corral.gateway.wsgi import WSGIGateway
from corral.http.connection import Limits
from corral.http2.settings import H2Settings, HTTP2Policy
from corral.metrics import make_metrics

if TYPE_CHECKING:
    from corral.config import Config
    from corral.workers.base import Worker


def limits_from(cfg: Config) -> Limits:
    """The HTTP core's limits and leniencies, from the gunicorn-named settings."""
    return Limits(
        # 0 lifts a limit, as in gunicorn; the bound on the whole head still holds.
        max_request_line=cfg.limit_request_line or cfg.limit_request_head,
        max_header_count=cfg.limit_request_fields or 32768,
        max_field_size=cfg.limit_request_field_size or cfg.limit_request_head,
        max_header_block=cfg.limit_request_head,
        max_body=cfg.limit_request_body,
        permit_obsolete_folding=cfg.permit_obsolete_folding,
        strip_header_spaces=cfg.strip_header_spaces,
        permit_unconventional_http_method=cfg.permit_unconventional_http_method,
        casefold_http_method=cfg.casefold_http_method,
        require_host=cfg.require_host,
        refuse_underscore_headers=cfg.header_map == "refuse",
    )


def http2_policy(cfg: Config, serves_h2: bool) -> HTTP2Policy | None:
    """Where the worker serves HTTP/2 (None: not at all)."""
    if not serves_h2 or "h2" not in cfg.http_protocols:
        return None
    settings = H2Settings(
        max_concurrent_streams=cfg.http2_max_concurrent_streams,
        initial_window_size=cfg.http2_initial_window_size,
        max_frame_size=cfg.http2_max_frame_size,
        max_header_list_size=cfg.http2_max_header_list_size,
    )
    clear = cfg.http2_cleartext
    return HTTP2Policy(
        settings,
        prior_knowledge=clear in ("prior-knowledge", "both"),
        upgrade=clear in ("upgrade", "both"),
    )


def connection_policy(cfg: Config, worker: Worker) -> ConnectionPolicy:
    """Limits, PROXY protocol, timeouts and health checks for a worker's connections (any
    worker type)."""
    limits = limits_from(cfg)
    proxy = cfg.proxy_protocol not in ("off", "none", "false")
    return ConnectionPolicy(
        limits=limits,
        proxy_limits=(
            dataclasses.replace(
                limits,
                proxy_protocol=True,
                proxy_version={"v1": 1, "v2": 2}.get(cfg.proxy_protocol, 0),
            )
            if proxy
            else None
        ),
        proxy_peers=TrustedPeers(cfg.proxy_allow_ips) if proxy else None,
        body_timeout=float(cfg.body_timeout),
        send_timeout=float(cfg.send_timeout),
        header_timeout=float(cfg.header_timeout),
        keepalive=float(cfg.keepalive),
        worker=worker,
        health_path=cfg.health_check_path or "",
        http2=http2_policy(cfg, worker.h2_enabled()),
    )


def driver_context(worker: Worker, loaded: LoadedApp, *, multithread: bool) -> DriverContext:
    """One WSGI worker's shared connection context."""
    cfg = worker.cfg
    gateway = WSGIGateway(loaded.app, cfg, multithread=multithread, log_warning=worker.log.warning)
    lifecycle = RequestLifecycle(worker, gateway, make_metrics(cfg, worker.tally), DRAIN_LIMIT)
    return DriverContext(
        lifecycle=lifecycle,
        gateway=gateway,
        policy=connection_policy(cfg, worker),
        tls=worker.tls_context,
        ragged_eofs_ok=cfg.suppress_ragged_eofs,
    )
