"""Run one short load in a fresh process and print its figures as JSON.

``python -m nfclease.load.harness '<json>'`` starts an embedded simulator (in this
process, or in its own with ``"sim_process": true``), runs the selection
with Locust's ``Environment`` and local runner (or a master and worker
processes with ``"workers": N``) through :func:`nfclease.load.runner.run_load`, and
prints one JSON object: the figures (``load.json`` body), Locust's stats
per request name, and whatever checks were asked for.

Why a process of its own: Locust monkey-patches ``socket``, ``ssl`` and
``threading`` with gevent when it is imported, and that must happen before
anything else creates sockets, SSL contexts or threads -- as it does when
``locust`` or ``nfclease load`` starts. ``tests/test_load.py`` uses this so
the rest of the test session never runs patched.

``{"runs": [request, ...]}`` runs several one after the other in this
process (simulators with the same configuration are shared) and prints
``{"results": [...]}``.

Input (all optional but ``selection``)::

    {"selection": {"import-upload": 1}, "users": 2, "spawn_rate": 10, "duration": 3,
     "workers": 0, "stop_timeout": 10, "options": {LoadOptions fields},
     "sim": {SimConfig fields over the launcher's "load" preset}, "sim_process": false,
     "intervals": ["HttpNfcLeaseProgress"],      # raw (start, end) of these SOAP calls
     "check_sockets": true}                       # which socket classes pyVmomi and NFC use
"""

from __future__ import annotations

import locust  # noqa: F401  (gevent's monkey-patching first)

import json
import sys
import time
from typing import Any

from nfclease.load.runner import RunSpec, run_load
from nfclease.load.scenarios import LoadOptions
from nfclease.launcher import PRESETS, SIM_PASSWORD, SIM_USER, Launched


def _socket_check(host: str, cafile: str) -> dict[str, Any]:
    """Open a Target the way users do and report what pyVmomi and the NFC client talk through."""
    import gevent.monkey
    import gevent.socket
    import gevent.ssl

    from nfclease.target import TargetSpec, open_target

    spec = TargetSpec.parse(host, cafile=cafile, username=SIM_USER, password=SIM_PASSWORD)
    with open_target(spec) as target:
        target.content.about  # noqa: B018  (one SOAP call: a pooled connection now exists)
        pool = getattr(target.si._stub, "pool", [])
        sock = pool[0][0].sock if pool else None
        context = target.ssl_context
        return {
            "patched": {name: gevent.monkey.is_module_patched(name) for name in ("socket", "ssl", "threading", "time")},
            "soap_socket": f"{type(sock).__module__}.{type(sock).__name__}" if sock is not None else None,
            "soap_socket_is_gevent": isinstance(sock, (gevent.ssl.SSLSocket, gevent.socket.socket)),
            "ssl_context": f"{type(context).__module__}.{type(context).__name__}",
            "ssl_context_is_gevent": isinstance(context, gevent.ssl.SSLContext),
        }


def run(request: dict[str, Any], sims: dict[str, Any] | None = None) -> dict[str, Any]:
    """One run; ``sims`` caches started simulators by configuration across a batch.

    ``sim``: SimConfig fields over the ``load`` preset; ``sim_process``: the
    simulator in a child process instead of a thread of this one.
    """
    config = {**PRESETS["load"], **(request.get("sim") or {})}
    where = "process" if request.get("sim_process") else "thread"
    key = json.dumps([config, where], sort_keys=True)
    if sims is not None and key in sims:
        return _run_on(sims[key].reach, request)
    launched = Launched("sim", config, where)
    if sims is not None:
        sims[key] = launched
        return _run_on(launched.reach, request)
    try:
        return _run_on(launched.reach, request)
    finally:
        launched.stop()


def _run_on(sim: Any, request: dict[str, Any]) -> dict[str, Any]:
    per_worker: dict[str, int] = {}
    options = LoadOptions(**(request.get("options") or {}))
    options.cafile = sim.cafile
    spec = RunSpec(host=sim.url, selection=request["selection"], users=int(request.get("users", 2)),
                   spawn_rate=float(request.get("spawn_rate", 20)), duration=float(request.get("duration", 3)),
                   workers=int(request.get("workers", 0)), options=options, username=SIM_USER,
                   password=SIM_PASSWORD, stop_timeout=float(request.get("stop_timeout", 10)))
    environments: list[Any] = []

    def tick(_live: dict[str, Any]) -> None:
        runner = environments[0].runner if environments else None
        for client in getattr(runner, "clients", {}).values() if runner is not None else []:
            count = sum((client.user_classes_count or {}).values())
            per_worker[client.id] = max(per_worker.get(client.id, 0), count)

    spec.on_tick = tick
    spec.on_environment = environments.append
    started = time.monotonic()
    result = run_load(spec)
    checks = _socket_check(sim.url, sim.cafile) if request.get("check_sockets") else None
    stats = {f"{method} {name}": {"requests": entry.num_requests, "failures": entry.num_failures,
                                  "bytes": entry.total_content_length}
             for (name, method), entry in result.environment.runner.stats.entries.items()}
    out: dict[str, Any] = {"summary": {k: v for k, v in result.summary.items() if k != "series"},
                           "series": result.summary.get("series"), "stats": stats,
                           "seconds": round(time.monotonic() - started, 3), "workers": per_worker,
                           "exceptions": [str(e.get("msg", e)) for e in result.environment.runner.exceptions.values()]}
    wanted = set(request.get("intervals") or [])
    if wanted:
        out["intervals"] = {m: [] for m in wanted}
        for scenario, method, ms, end, ok in result.figures.snapshot()["soap"]:
            if method in wanted and scenario not in ("setup", "teardown"):
                out["intervals"][method].append([end - ms / 1000.0, end, ok])
    if checks is not None:
        out["sockets"] = checks
    return out


def run_batch(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Several runs in this one process, one after the other; simulators shared by configuration."""
    sims: dict[str, Any] = {}
    try:
        return [run(request, sims) for request in requests]
    finally:
        for sim in sims.values():
            sim.stop()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    request = json.loads(argv[0] if argv else sys.stdin.read())
    if "runs" in request:
        print(json.dumps({"results": run_batch(request["runs"])}), flush=True)
    else:
        print(json.dumps(run(request)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
