"""``nfclease clean``: find what runs of the suite left on a target, and remove it when told to.

    nfclease clean --target https://user@vc/sdk                 # dry run: list nfclease-* leftovers
    nfclease clean --target https://user@vc/sdk --run 20261203-x --yes   # remove one run's

Everything the suite creates is named ``nfclease-<run id>-...``
(:func:`nfclease.ovf.run_prefix`), so leftovers are found by that prefix and
nothing else: VMs and vApps, snapshots (on any VM: ``--export-vm`` exports
of a user's VM snapshot it), and running import/export tasks, which mean a
lease is still held. A held lease belongs to the session that acquired it;
another session cannot abort it, so it is listed with when it will lapse
(the server's leaseTimeout), and the VM it covers is removed once it has.

Without ``--yes`` nothing is changed (exit 0). With ``--yes`` the VMs and
vApps are powered off and destroyed and the snapshots removed (``--wait S``:
first waiting up to S seconds for held leases to lapse), then the target is
listed again: exit 0 when nothing is left, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from nfclease.ovf import PREFIX, run_prefix
from nfclease.redaction import redact_text

RUNNING = ("queued", "running")


@dataclass(frozen=True)
class Leftover:
    """One object a run of the suite left behind."""

    kind: str                      # "vApp", "VM", "snapshot", "lease"
    name: str
    moid: str
    note: str = ""
    ref: Any = field(default=None, compare=False, repr=False)

    def line(self) -> str:
        return f"{self.kind:<8} {self.name:<48} {self.moid:<22} {self.note}".rstrip()


def prefix_for(run: str | None = None, prefix: str | None = None) -> str:
    """``nfclease-<run>-`` for ``--run``, else ``--prefix`` (which must start with ``nfclease-``)."""
    if run:
        return run_prefix(run)
    chosen = prefix or PREFIX
    if not chosen.startswith(PREFIX):
        raise ValueError(f"--prefix {chosen!r} does not start with {PREFIX!r}: clean only removes what the "
                         "suite names")
    return chosen


def _view_properties(target: Any, vimtypes: dict[type, list[str]]) -> list[tuple[Any, dict[str, Any]]]:
    """``(object, {path: value})`` for every object of these types under the root folder (paged)."""
    from pyVmomi import vim, vmodl

    pc = vmodl.query.PropertyCollector
    content = target.content
    view = content.viewManager.CreateContainerView(content.rootFolder, list(vimtypes), True)
    try:
        spec = pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=view, skip=True, selectSet=[
                pc.TraversalSpec(name="view", type=vim.view.ContainerView, path="view", skip=False)])],
            propSet=[pc.PropertySpec(type=t, pathSet=paths) for t, paths in vimtypes.items()])
        collector = content.propertyCollector
        result = collector.RetrievePropertiesEx([spec], pc.RetrieveOptions())
        out: list[tuple[Any, dict[str, Any]]] = []
        for _ in range(100_000):
            if result is None:
                break
            for obj in result.objects or []:
                out.append((obj.obj, {p.name: p.val for p in obj.propSet or []}))
            result = collector.ContinueRetrievePropertiesEx(result.token) if result.token else None
        return out
    finally:
        view.DestroyView()


def _snapshots(tree: list[Any] | None, vm_name: str, prefix: str) -> list[Leftover]:
    found: list[Leftover] = []
    stack = list(tree or [])
    for _ in range(10_000):
        if not stack:
            break
        node = stack.pop()
        if str(node.name).startswith(prefix):
            found.append(Leftover("snapshot", node.name, node.snapshot._moId, f"of VM {vm_name}", node.snapshot))
        stack.extend(node.childSnapshotList or [])
    return found


def held_leases(target: Any, prefix: str | None = None) -> list[Leftover]:
    """Running import/export tasks (a held lease each); about ``prefix`` objects only, unless None."""
    found = []
    for task in target.content.taskManager.recentTask or []:
        try:
            info = target.task_info(task)
        except Exception:  # a task the server forgot meanwhile
            continue
        description = str(info.descriptionId or "").lower()
        if info.state not in RUNNING or not ("import" in description or "export" in description):
            continue
        name = str(info.entityName or "")
        if prefix is None or name.startswith(prefix):
            found.append(Leftover("lease", name, task._moId, f"{info.descriptionId} {info.state}: held until its "
                                  "session aborts it or it times out", task))
    return found


def find_leftovers(target: Any, prefix: str) -> list[Leftover]:
    """Everything named ``prefix*`` on the target: vApps, VMs, snapshots, held leases."""
    from pyVmomi import vim

    found: list[Leftover] = []
    rows = _view_properties(target, {vim.VirtualApp: ["name"], vim.VirtualMachine: ["name", "snapshot"]})
    for obj, props in rows:
        name = str(props.get("name", ""))
        if isinstance(obj, vim.VirtualApp) and name.startswith(prefix):
            found.append(Leftover("vApp", name, obj._moId, ref=obj))
    for obj, props in rows:
        if not isinstance(obj, vim.VirtualMachine):
            continue
        name = str(props.get("name", ""))
        if name.startswith(prefix):
            found.append(Leftover("VM", name, obj._moId, ref=obj))
        snapshot = props.get("snapshot")
        if snapshot is not None:
            found.extend(_snapshots(snapshot.rootSnapshotList, name, prefix))
    return found + held_leases(target, prefix)


def remove(target: Any, leftovers: list[Leftover]) -> None:
    """Remove snapshots, then vApps, then VMs (a vApp's VMs go with it); held leases are left to lapse."""
    gone: set[str] = set()
    for item in leftovers:
        if item.kind == "snapshot":
            target.remove_snapshot(item.ref)
    for kind in ("vApp", "VM"):
        for item in leftovers:
            if item.kind == kind and item.moid not in gone:
                target.destroy_entity(item.ref)
                gone.add(item.moid)
                if kind == "vApp":
                    gone.update(vm._moId for vm in (getattr(item.ref, "vm", None) or []) if _exists(vm))


def sweep(target: Any, prefix: str, *, wait: float = 0.0, poll: float = 2.0) -> list[Leftover]:
    """Remove what is named ``prefix*``; while leases of a dead process still hold some, wait for
    them to lapse (at most ``wait`` seconds) and sweep again. Returns what is left."""
    deadline = time.monotonic() + max(0.0, wait)
    remaining: list[Leftover] = []
    for _ in range(int(wait / poll) + 2):
        remove(target, [item for item in find_leftovers(target, prefix) if item.kind != "lease"])
        remaining = find_leftovers(target, prefix)
        if not remaining or time.monotonic() + poll > deadline:
            break
        time.sleep(poll)
    return remaining


def _exists(obj: Any) -> bool:
    try:
        return bool(obj._moId)
    except Exception:
        return False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nfclease import targetargs

    parser.description = ("List what runs of the suite left on a target (VMs, vApps, snapshots named "
                          "nfclease-<run id>-..., held leases); remove them with --yes. Example: "
                          "nfclease clean --target https://user@vc.example/sdk --run 20261203091500-01234-ab12 --yes")
    targetargs.add_arguments(parser, placement=False)
    parser.add_argument("--run", default=None, help="only this run's objects (the id in nfclease-<run id>-...)")
    parser.add_argument("--prefix", default=None, help="only names starting with this (default nfclease-)")
    parser.add_argument("--yes", action="store_true", help="remove what is listed (default: dry run)")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="with --yes: wait up to this long for leases held by a dead run to lapse (their "
                             "leaseTimeout, 300 s on vSphere), then remove what they covered")


def run(args: argparse.Namespace) -> int:
    from nfclease import targetargs
    from nfclease.target import open_target

    try:
        prefix = prefix_for(args.run, args.prefix)
        spec = targetargs.spec_from_args(args)
    except ValueError as exc:
        print(f"nfclease clean: {exc}", file=sys.stderr)
        return 2
    try:
        with open_target(spec) as target:
            leftovers = find_leftovers(target, prefix)
            _print(leftovers, f"{len(leftovers)} leftover(s) named {prefix}* on {target.display_url}")
            if not args.yes:
                if leftovers:
                    print("dry run: nothing removed; run again with --yes to remove them")
                return 0
            remaining = sweep(target, prefix, wait=args.wait)
            for note in target.cleanup_log:
                print(f"  {note}")
            _print(remaining, f"after removal: {len(remaining)} left")
            return 0 if not remaining else 1
    except Exception as exc:
        print(redact_text(f"nfclease clean: {spec.display_url}: {type(exc).__name__}: {exc}"), file=sys.stderr)
        return 2


def _print(leftovers: list[Leftover], title: str) -> None:
    print(title)
    for item in leftovers:
        print("  " + redact_text(item.line()))


__all__ = ["Leftover", "add_arguments", "find_leftovers", "held_leases", "prefix_for", "remove", "run", "sweep"]
