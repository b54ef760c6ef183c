"""``nfclease run``: the main job, end to end, against one target.

1. Reach the target (by default: start the embedded simulator).
2. Import a VM with a disk through an import lease, as deploy-OVF clients do:
   CreateImportSpec, ImportVApp, wait for ready, stream a streamOptimized VMDK
   to the device URL while a keepalive renews the lease, check the manifest
   against what was sent, Complete.
3. Export that VM through an export lease, download the disk, and check it
   byte for byte against what was uploaded and against the manifest.
4. Run the conformance suite's smoke profile and print the clause table.

Every call is an event: the terminal shows them as they happen, and the
report directory receives ``history.jsonl`` (and the conformance records).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from nfclease.events import Event, EventStream, HistoryWriter

console = Console(highlight=False)


def _show(event: Event) -> None:
    took = f"{1000 * event.duration:7.1f} ms"
    if event.outcome == "ok":
        mark, detail = "[green]ok  [/]", _brief(event)
    else:
        mark = "[red]FAIL[/]" if event.outcome == "fail" else "[yellow]??? [/]"
        detail = f"{event.fault}: {event.message}"
    console.print(f"  {mark} {event.lease or '-':3} {event.call:24} {took}  {detail}")


def _brief(event: Event) -> str:
    value = event.value
    if event.call in ("Upload", "Download") and isinstance(value, dict):
        return f"{value.get('bytes', 0) / (1 << 20):.1f} MiB sha1 {str(value.get('sha1'))[:12]}"
    if event.call in ("Read", "WaitReady") and isinstance(value, dict):
        return f"state {value.get('state')}"
    if event.call == "GetManifest" and isinstance(value, list):
        return ", ".join(f"{e.get('size')} B sha1 {str(e.get('sha1'))[:12]}" for e in value)
    if event.call == "Acquire" and isinstance(value, dict):
        return f"lease {str(value.get('moid'))[-12:]} entity {value.get('entity')}"
    return ""


def transfer_round_trip(target: Any, stream: EventStream, disk_bytes: int) -> list[str]:
    """Import a disk, export it again; return the problems found (empty = all good)."""
    from nfclease.session import acquire_export_vm, acquire_import

    problems: list[str] = []
    console.print(f"[bold]Import[/] a VM with one {disk_bytes >> 20} MiB disk through an import lease")
    imported = acquire_import(target, stream, disks=[disk_bytes])
    imported.wait_ready()
    with imported.keep_alive(interval=2.0, percent=imported.transfer_percent):
        sent = imported.upload_all()
        imported.progress(100)
    manifest = {entry.key: entry for entry in imported.get_manifest()}
    for url, result in zip(imported.device_urls(), sent):
        entry = manifest.get(url.key)
        if entry is None or entry.sha1.lower() != result.sha1 or entry.size != result.bytes:
            problems.append(f"import manifest for {url.key} does not match the {result.bytes} bytes sent")
    imported.complete()
    vm = imported.entity
    console.print("[bold]Export[/] the imported VM through an export lease and compare")
    exported = acquire_export_vm(target, stream, vm)
    exported.wait_ready()
    with exported.keep_alive(interval=2.0, percent=exported.transfer_percent):
        received = [exported.download(url) for url in exported.device_urls()]
    manifest = {entry.key: entry for entry in exported.get_manifest()}
    for url, result in zip(exported.device_urls(), received):
        entry = manifest.get(url.key)
        if entry is None or entry.sha1.lower() != result.sha1:
            problems.append(f"export manifest for {url.key} does not match the bytes downloaded")
    if [r.sha1 for r in received] != [s.sha1 for s in sent if s is not None][:len(received)]:
        problems.append("the exported disk is not byte for byte the imported one")
    exported.complete()
    return problems


def run(args: argparse.Namespace) -> int:
    """The main job; exit status 0 when the round trip and conformance smoke pass."""
    from nfclease.cli import sim_config_from
    from nfclease.target import TargetSpec, open_target

    report = Path(args.report) if args.report else Path(tempfile.mkdtemp(prefix="nfclease-run-"))
    report.mkdir(parents=True, exist_ok=True)
    history = HistoryWriter(report / "transfer-history.jsonl")
    stream = EventStream([_show, history])
    spec = TargetSpec.parse(args.target, insecure=args.insecure or None, thumbprint=args.thumbprint)
    started = time.monotonic()
    sim_config = sim_config_from(args, lease_timeout=30.0) if spec.kind == "sim" else None
    with open_target(spec, sim_config=sim_config) as target:
        about = target.about
        console.print(f"[bold]Target[/] {target.display_url}: {about.full_name or about.name} "
                      f"(API {target.api_version})")
        try:
            problems = transfer_round_trip(target, stream, args.disk_mib << 20)
        finally:
            history.close()
    seconds = time.monotonic() - started
    if problems:
        for problem in problems:
            console.print(f"[red]problem:[/] {problem}")
        return 1
    console.print(f"[green]Import and export round trip verified[/] in {seconds:.1f} s; "
                  f"history in {report / 'transfer-history.jsonl'}")
    return _conformance_smoke(args, report)


def _conformance_smoke(args: argparse.Namespace, report: Path) -> int:
    """Run the conformance smoke profile against the same kind of target."""
    try:
        from conformance.cli import run as conform
    except ImportError as exc:  # the conformance package is part of the install
        console.print(f"[red]conformance suite unavailable:[/] {exc}")
        return 1
    console.print("[bold]Conformance[/] smoke profile")
    conform_args = argparse.Namespace(**{**vars(args), "profile": "smoke", "expectations": None,
                                         "seed": None, "report": str(report), "allow_expiry": False})
    return conform(conform_args)
