"""Command-line options naming a target, how to trust it and where the suite may create things.

Shared by ``nfclease doctor`` and ``nfclease clean`` (and any subcommand
that wants the same flags): ``--target``, ``--ca-file``, ``--thumbprint``,
``--insecure`` and the placement flags ``--datacenter``, ``--cluster``,
``--host``, ``--resource-pool``, ``--datastore``, ``--folder``. A flag wins
over its ``GOVC_*`` variable (``GOVC_DATACENTER``, ``GOVC_CLUSTER``,
``GOVC_HOST``, ``GOVC_RESOURCE_POOL``, ``GOVC_DATASTORE``, ``GOVC_FOLDER``,
``GOVC_TLS_CA_CERTS``, ``GOVC_TLS_KNOWN_HOSTS``, ``GOVC_INSECURE``).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from typing import MutableMapping

from nfclease.target import TargetSpec
from nfclease.usage import TARGET_HELP

ENVIRONMENT = {  # flag dest -> the govc variable it overrides
    "ca_file": "GOVC_TLS_CA_CERTS", "datacenter": "GOVC_DATACENTER", "cluster": "GOVC_CLUSTER",
    "esx_host": "GOVC_HOST", "resource_pool": "GOVC_RESOURCE_POOL", "datastore": "GOVC_DATASTORE",
    "folder": "GOVC_FOLDER",
}
PLACEMENT = {  # flag dest -> TargetSpec field
    "datacenter": "datacenter", "cluster": "cluster", "esx_host": "esx_host",
    "resource_pool": "resource_pool", "datastore": "datastore", "folder": "folder",
}


def add_arguments(parser: argparse.ArgumentParser, *, placement: bool = True) -> None:
    """``--target`` and the TLS flags; with ``placement``, where imports go."""
    group = parser.add_argument_group("target and trust")
    group.add_argument("--target", default=None, help=TARGET_HELP)
    group.add_argument("--thumbprint", default=None,
                       help="pin the server certificate by its SHA-1 or SHA-256 thumbprint (GOVC_TLS_KNOWN_HOSTS)")
    group.add_argument("--insecure", action="store_true",
                       help="do not verify the server certificate at all (warned about; prefer --thumbprint)")
    add_lab_arguments(parser, placement=placement)


def add_lab_arguments(parser: argparse.ArgumentParser, *, placement: bool = True) -> None:
    """``--ca-file`` and the placement flags, for commands that define ``--target`` themselves."""
    parser.add_argument("--ca-file", dest="ca_file", default=None,
                        help="PEM bundle of CAs to trust (default: the system store; GOVC_TLS_CA_CERTS)")
    if not placement:
        return
    where = parser.add_argument_group("placement on a URL target (the only place the suite creates anything)")
    where.add_argument("--datacenter", default=None, help="datacenter name or path (GOVC_DATACENTER)")
    where.add_argument("--cluster", default=None, help="cluster whose root pool takes imports (GOVC_CLUSTER)")
    where.add_argument("--host", dest="esx_host", default=None, help="ESXi host for imports (GOVC_HOST)")
    where.add_argument("--resource-pool", dest="resource_pool", default=None,
                       help="resource pool path or name (GOVC_RESOURCE_POOL)")
    where.add_argument("--datastore", default=None, help="datastore name or path (GOVC_DATASTORE)")
    where.add_argument("--folder", default=None, help="VM folder path or name (GOVC_FOLDER)")


def add_export_vm_argument(parser: argparse.ArgumentParser) -> None:
    """``--export-vm PATH`` (repeatable): the only VMs of a real target the suite may export, read-only."""
    parser.add_argument("--export-vm", dest="export_vm", action="append", default=None, metavar="PATH",
                        help="on a real target, also export this VM (inventory path, name or moid): read-only, "
                             "never powered, moved, snapshotted or written; without it only what the run "
                             "imported is exported")


def export_to_environment(args: argparse.Namespace, environ: MutableMapping[str, str] | None = None) -> None:
    """Write the lab flags given into their ``GOVC_*`` variables (a flag wins over its variable).

    Every part of a run reads the target through :meth:`TargetSpec.parse`, in
    this process and in the ones it starts (Locust workers, the load child of
    ``nfclease run``), so the environment is how a flag reaches all of them.
    """
    environ = os.environ if environ is None else environ
    for dest, variable in ENVIRONMENT.items():
        value = getattr(args, dest, None)
        if value:
            environ[variable] = str(value)


def spec_from_args(args: argparse.Namespace) -> TargetSpec:
    """The :class:`TargetSpec` the flags describe (``ValueError`` naming what is wrong)."""
    spec = TargetSpec.parse(getattr(args, "target", None), insecure=True if getattr(args, "insecure", False) else None,
                            thumbprint=getattr(args, "thumbprint", None), cafile=getattr(args, "ca_file", None))
    overrides = {field: getattr(args, dest) for dest, field in PLACEMENT.items() if getattr(args, dest, None)}
    if overrides:
        spec = replace(spec, **overrides)
    return spec


__all__ = ["ENVIRONMENT", "add_export_vm_argument", "add_arguments", "add_lab_arguments", "export_to_environment", "spec_from_args"]
