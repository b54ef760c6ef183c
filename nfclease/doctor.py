"""``nfclease doctor``: a read-only preflight of a target before a run touches it.

    nfclease doctor --target https://user@vc.example/sdk --datacenter DC1 --folder nfclease-tests

Connects (TLS as a run would), then prints: the product, version, build and
apiVersion; which clause families apply at that API version; whether the
placement (datacenter, cluster or host, resource pool, datastore, folder)
exists; whether the session's privileges suffice to import, export, power
and destroy there; the leaseTimeout a run will face and how long
``--allow-expiry`` adds. It only reads: no lease, no VM, no snapshot, no
task (``tests/test_lab_tools.py`` checks the inventory is unchanged).

Exit status: 0 all good; 1 a check failed (missing placement, a privilege
lacking); 2 the target could not be reached or trusted.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

#: privileges a run needs, by what it does, and on which placement object they are checked
PRIVILEGES: dict[str, tuple[tuple[str, str], ...]] = {
    "import": (("resource_pool", "VApp.Import"), ("folder", "VApp.Import"), ("datastore", "Datastore.AllocateSpace")),
    "export": (("folder", "VApp.Export"),),
    "power": (("folder", "VirtualMachine.Interact.PowerOn"), ("folder", "VirtualMachine.Interact.PowerOff")),
    "destroy": (("folder", "VirtualMachine.Inventory.Delete"), ("resource_pool", "Resource.AssignVMToPool")),
}
#: vSphere's lease timeout; a server shows its own only in a lease's info, which doctor never acquires
VSPHERE_LEASE_TIMEOUT = 300.0


@dataclass
class Finding:
    """One line of the report: what was checked, what was found, and whether it is fine."""

    what: str
    text: str
    ok: bool | None = True  # None: could not be told (neither passes nor fails the preflight)

    def line(self) -> str:
        mark = {True: "ok ", False: "NO ", None: "?  "}[self.ok]
        return f"{mark} {self.what:<16} {self.text}"


def clause_families(api_version: str) -> tuple[list[str], list[str]]:
    """``(applying, not applying)``: clause families (``state``, ``pull``...) at ``api_version``."""
    from nfclease.conformance.clauses import CLAUSES
    from nfclease.target import api_tuple

    since: dict[str, list[str]] = defaultdict(list)
    for clause in CLAUSES:
        since[clause.group].append(clause.since)
    applying, not_applying = [], []
    api = api_tuple(api_version)
    for family, versions in since.items():
        first = min(versions, key=api_tuple)
        (applying if api_tuple(first) <= api else not_applying).append(f"{family} ({first}+)")
    return applying, not_applying


def trust_text(target: Any) -> str:
    spec = target.spec
    if spec.insecure:
        return "NOT verified (--insecure)"
    if target.pinned:
        return "pinned by thumbprint"
    if spec.cafile:
        return f"verified against {spec.cafile}"
    if spec.kind != "url":
        return "verified against the certificate of the server the suite started"
    return "verified against the system CAs"


def placement_findings(target: Any) -> tuple[list[Finding], Any | None]:
    try:
        place = target.placement
    except LookupError as exc:
        return [Finding("placement", str(exc), ok=False)], None
    names = []
    for label, obj in (("datacenter", place.datacenter), ("host", place.host), ("resource pool", place.resource_pool),
                       ("datastore", place.datastore), ("folder", place.folder)):
        if obj is not None:
            names.append(f"{label} {obj.name} ({obj._moId})")
    return [Finding("placement", "; ".join(names))], place


def privilege_findings(target: Any, place: Any) -> list[Finding]:
    """One finding per job (import, export, power, destroy): granted on the placement or not."""
    objects = {"resource_pool": place.resource_pool, "folder": place.folder, "datastore": place.datastore}
    manager = target.content.authorizationManager
    if manager is None:
        return [Finding("privileges", "unknown: the server offers no AuthorizationManager (a simulator); "
                                      "a run finds out call by call", ok=None)]
    try:
        user = target.content.sessionManager.currentSession.userName
        answer = manager.FetchUserPrivilegeOnEntities(entities=list(objects.values()), userName=user)
    except Exception as exc:
        reason = getattr(exc, "msg", None) or str(exc) or type(exc).__name__
        return [Finding("privileges", f"unknown: FetchUserPrivilegeOnEntities failed ({type(exc).__name__}: "
                                      f"{reason}); a run finds out call by call", ok=None)]
    granted: dict[str, set[str]] = defaultdict(set)
    for entry in answer or []:  # UserPrivilegeResult: the privileges granted on each entity
        granted[entry.entity._moId].update(entry.privileges or [])
    out = []
    for job, needs in PRIVILEGES.items():
        missing = [f"{priv} on {objects[where].name}" for where, priv in needs
                   if priv not in granted.get(objects[where]._moId, set())]
        out.append(Finding(f"may {job}", "missing " + ", ".join(missing) if missing else "granted", ok=not missing))
    return out


def lease_timeout_findings(target: Any) -> list[Finding]:
    from nfclease.conformance.expiry import ExpiryPolicy
    from nfclease.conformance.model import default_tolerance

    server = target.server
    known = getattr(getattr(server, "config", None), "lease_timeout", None)
    timeout = float(known) if known else VSPHERE_LEASE_TIMEOUT
    source = ("the simulator's configuration" if known else
              "vSphere's value; the server shows its own only in a lease's info, which doctor does not acquire")
    from nfclease.conformance.context import PROFILES

    cost = ExpiryPolicy.cost(timeout, default_tolerance(timeout))
    fitting = [name for name, profile in PROFILES.items() if cost <= profile.expiry_budget]
    return [Finding("leaseTimeout", f"{timeout:g} s ({source})"),
            Finding("--allow-expiry", f"adds about {cost:.0f} s to a conformance run (the expiry sequence waits "
                                      "out two lease timeouts); without it the expiry checks run in "
                                      + (", ".join(fitting) + " (within the profile's expiry budget)" if fitting
                                         else "no profile (each expiry budget is smaller)"))]


def examine(target: Any) -> list[Finding]:
    """Every finding about a connected target; reads only."""
    about = target.about
    findings = [
        Finding("connected", f"{target.display_url}; TLS {trust_text(target)}"),
        Finding("product", f"{about.full_name} ({about.vendor}; {about.api_type})"),
        Finding("version", f"version {about.version}, build {about.build}, apiVersion {about.api_version}"),
    ]
    applying, not_applying = clause_families(about.api_version)
    findings.append(Finding("clause families", "apply: " + ", ".join(applying)))
    if not_applying:
        findings.append(Finding("", f"not at API {about.api_version} (NA): " + ", ".join(not_applying)))
    placed, place = placement_findings(target)
    findings += placed
    if place is not None:
        findings += privilege_findings(target, place)
    findings += lease_timeout_findings(target)
    return findings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nfclease import targetargs
    from nfclease.sim.options import add_sim_arguments

    parser.description = ("Read-only preflight of a target: product and API version, the clause families that "
                          "apply, the placement, the session's privileges, the lease timeout. Creates nothing. "
                          "Example: nfclease doctor --target https://user@vc.example/sdk --datacenter DC1")
    targetargs.add_arguments(parser)
    add_sim_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from nfclease import targetargs
    from nfclease.redaction import redact_text
    from nfclease.sim.options import sim_config_from
    from nfclease.target import open_target

    try:
        spec = targetargs.spec_from_args(args)
    except ValueError as exc:
        print(f"nfclease doctor: {exc}", file=sys.stderr)
        return 2
    print(f"nfclease doctor: {spec.display_url} (read-only: nothing is created)")
    try:
        with open_target(spec, sim_config=sim_config_from(args) if spec.kind == "sim" else None) as target:
            findings = examine(target)
    except Exception as exc:
        print(redact_text(f"NO  connected        {spec.display_url}: {type(exc).__name__}: {exc}"), file=sys.stderr)
        return 2
    for finding in findings:
        print(redact_text(finding.line()))
    failed = [f for f in findings if f.ok is False]
    print(f"{len(failed)} problem(s)" if failed else "ready for a run")
    return 1 if failed else 0


__all__ = ["Finding", "PRIVILEGES", "add_arguments", "clause_families", "examine", "run"]
