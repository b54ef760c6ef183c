"""Locust load test of HttpNfcLease targets (see load/README.md).

Web UI against a target::

    locust -f load/locustfile.py --host https://vcenter.example/sdk
    # credentials: NFCLEASE_LOAD_USERNAME / NFCLEASE_LOAD_PASSWORD (or GOVC_USERNAME / GOVC_PASSWORD);
    # trust: --nfc-cafile PEM | --nfc-thumbprint SHA1/SHA256 | --nfc-insecure

    locust -f load/locustfile.py --host sim        # an embedded simulator in this process

Pick scenarios by class name (``Scenario.user_class`` of ``nfclease.load.scenarios.REGISTRY``:
``ImportUpload ExportDownload Churn Keepalive TimeoutProbe``; none = all, the
``mixed`` weights) or with ``--class-picker``.
Headless, with reports and the regression gate: ``nfclease load``.

Distributed over machines (Locust's own master/worker mode)::

    # on the master host
    locust -f load/locustfile.py --master --host https://vcenter.example/sdk --nfc-cafile ca.pem
    # on every load host (same checkout; credentials in its environment)
    locust -f load/locustfile.py --worker --master-host MASTER_ADDRESS

``nfclease load --workers N`` does the same with N local worker processes.
"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

if __package__ in (None, ""):  # loaded by path (locust -f): make the checkout importable
    _root = str(Path(__file__).resolve().parents[1])
    if _root not in sys.path:
        sys.path.insert(0, _root)

from locust import events  # noqa: E402  (patches gevent first)

from nfclease.load.scenarios import LoadOptions  # noqa: E402
from nfclease import redaction  # noqa: E402

redaction.install()  # worker logs and tracebacks (worker-N.log in the report) never show a secret
from nfclease.load.users import USER_CLASSES, LoadContext, attach  # noqa: E402

# the user classes Locust finds here: one per scenario of nfclease.load.scenarios.REGISTRY
globals().update({cls.__name__: cls for cls in USER_CLASSES.values()})

_HELP = {
    "disks": "import-upload/export-download: disks per lease (N)",
    "disk_mib": "capacity of each disk in MiB (S); streams are generated on the fly",
    "pattern": "disk content: random, sequence, sparse, zero",
    "keepalive": "seconds between Progress calls (K; govmomi uses 2)",
    "held_leases": "keepalive: leases held per user",
    "hold_seconds": "keepalive: hold time (0 = 2 x leaseTimeout + K)",
    "cafile": "PEM file of the CA that signed the target's certificate",
    "thumbprint": "pin the target's certificate (SHA-1 or SHA-256)",
    "insecure": "do not verify the target's certificate",
}


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    defaults = LoadOptions()
    for f in fields(LoadOptions):
        name = "--nfc-" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if isinstance(default, bool):
            parser.add_argument(name, dest=f"nfc_{f.name}", action="store_true", default=default,
                                help=_HELP.get(f.name, f.name), include_in_web_ui=f.name == "insecure")
            continue
        parser.add_argument(name, dest=f"nfc_{f.name}", type=type(default), default=default,
                            help=_HELP.get(f.name, f.name), include_in_web_ui=f.name in _HELP)


@events.init.add_listener
def _init(environment, **_kwargs) -> None:
    from locust.runners import WorkerRunner

    context = attach(environment)
    if environment.host == "sim" and not isinstance(environment.runner, WorkerRunner):
        from nfclease.launcher import Launched

        launched = Launched("sim", "load")
        reach = launched.reach
        context.owned.append(launched)
        context.cafile = reach.cafile
        context.username, context.password = reach.user, reach.password
        environment.host = reach.url
        if environment.parsed_options is not None:  # forwarded to workers (same host), if any
            environment.parsed_options.nfc_cafile = reach.cafile
            environment.parsed_options.nfc_embedded_sim = True
        print(f"nfclease: embedded simulator at {reach.url} (lease timeout {reach.lease_timeout:g} s)", flush=True)


@events.quitting.add_listener
def _quit(environment, **_kwargs) -> None:
    context = getattr(environment, "nfclease", None)
    for owned in reversed(context.owned if context else []):
        owned.stop()


__all__ = ["LoadContext", *(cls.__name__ for cls in USER_CLASSES.values())]
