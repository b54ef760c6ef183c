"""Values the spec or the FIELD-NOTES fix, checked on every event that shows them.

The transition table judges *outcomes* (ok or which fault); these judge what
an accepted outcome carries, where a wrong server would otherwise pass:

* an upload is success only as 200 or 201, and only after the whole body was
  read (a final answer before the body -- ``Expect: 100-continue`` mishandled
  -- stores nothing) -> ``transfer.upload``; a download is served as 200 ->
  ``transfer.download``;
* what ``capabilities.pullModeSupported`` claims must be what PullFromUrls
  does on a ready lease -> ``pull.capabilities``;
* the SSLVerifyFault of an untrusted pull source names that source's
  certificate -> ``pull.ssl-verify``; a transfer the client refused because
  the device URL's host served another certificate than its sslThumbprint
  -> ``transfer.thumbprint``;
* a device whose bytes were transferred has its manifest entry, on imports too
  (see :func:`unlisted_transfers`), and an entry's ``disk`` is its device
  URL's -> ``manifest.entries``;
* disk device URLs carry no ``fileSize`` (FIELD-NOTES) -> ``state.ready-info``.

Each check is a :data:`Finding` the model turns into a judged check; this
module reads events only (no target, no simulator).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from nfclease.conformance import table as T
from nfclease.conformance.table import Observed
from nfclease.conformance.vmodl import is_a

#: (clause id, ok -- None: not judgeable, expected, observed, message when failed)
Finding = tuple[str, "bool | None", str, str, str]

UPLOAD_SUCCESS = (200, 201)  # FIELD-NOTES: "200 or 201 is success"
DOWNLOAD_SUCCESS = (200,)


def findings(event: Any, case: str, obs: Observed, before: Iterable[str], *, kind: str | None,
             pull_supported: bool | None, devices: Mapping[str, Mapping[str, Any]] | None = None) -> list[Finding]:
    """Every value check that applies to one judged lease-call event (``devices``: the lease's
    deviceUrl entries by key, as the last ready Read showed them)."""
    value = event.value if isinstance(event.value, Mapping) else {}
    out: list[Finding] = []
    if obs.kind == "ok" and case == "Read" and value.get("state") == "ready":
        out += _disk_file_sizes(value.get("info"))
    if obs.kind == "ok" and case == "GetManifest" and isinstance(event.value, list):
        out += _manifest_disk_flags(event.value, devices or {})
    if obs.kind == "ok" and case == "Upload":
        out += _upload(event, value)
    if event.fault == "client.ThumbprintMismatch" and case in ("Upload", "Download", "Transfer:wrong-direction"):
        out.append(("transfer.thumbprint", False, "the certificate the deviceUrl's sslThumbprint names",
                    "another certificate", f"{event.call} refused by the client: {event.message}"))
    if obs.kind == "ok" and case == "Download":
        status = value.get("status")
        out.append(("transfer.download", status in DOWNLOAD_SUCCESS, "200", str(status),
                    f"a download answered {status}, not 200"))
    if event.call == "PullFromUrls":
        out += _pull_capabilities(event, obs, set(before), kind, pull_supported)
        if case == "PullFromUrls:untrusted":
            out += _ssl_verify(event, obs, value)
    return out


def _disk_file_sizes(info: Any) -> list[Finding]:
    """FIELD-NOTES: deviceUrl ``fileSize`` is "only for non-disk files"; "disks carry no fileSize"."""
    urls = info.get("deviceUrl") if isinstance(info, Mapping) else None
    sized = [str(u.get("key")) for u in urls or () if isinstance(u, Mapping) and u.get("disk") is True
             and u.get("fileSize") is not None]
    if not urls:
        return []
    return [("state.ready-info", not sized, "no fileSize on disk device URLs", ", ".join(sized) or "none",
             f"deviceUrl entries of disks carry a fileSize: {', '.join(sized)}")]


def _manifest_disk_flags(entries: list[Any], devices: Mapping[str, Mapping[str, Any]]) -> list[Finding]:
    """A manifest entry's ``disk`` is its device URL's ``disk``."""
    wrong = [str(e.get("key")) for e in entries if isinstance(e, Mapping) and isinstance(e.get("disk"), bool)
             and isinstance(devices.get(str(e.get("key")), {}).get("disk"), bool)
             and e["disk"] != devices[str(e["key"])]["disk"]]
    judged = any(isinstance(e, Mapping) and str(e.get("key")) in devices for e in entries)
    if not judged:
        return []
    return [("manifest.entries", not wrong, "entry.disk as the deviceUrl's disk", ", ".join(wrong) or "as announced",
             f"manifest entries whose disk flag is not their deviceUrl's: {', '.join(wrong)}")]


def _upload(event: Any, value: Mapping[str, Any]) -> list[Finding]:
    status, sent, size = value.get("status"), value.get("bytes"), event.args.get("size")
    out: list[Finding] = [("transfer.upload", status in UPLOAD_SUCCESS, "200 or 201", str(status),
                           f"a stored upload answered {status}, not 200 or 201")]
    if isinstance(sent, int) and isinstance(size, int):
        out.append(("transfer.upload", sent >= size, f"{size} bytes read before the answer", f"{sent} bytes",
                    f"the server answered {status} after {sent} of {size} bytes: the body was never read"))
    return out


def _pull_capabilities(event: Any, obs: Observed, before: set[str], kind: str | None,
                       supported: bool | None) -> list[Finding]:
    """What the lease claimed against what a good pull on a surely-ready lease did."""
    if supported is None or before != {T.READY} or event.args.get("variant", "good") != "good":
        return []
    if obs.kind == "ok" and supported is False:
        return [("pull.capabilities", False, "pullModeSupported true (a pull succeeded)", "pullModeSupported false",
                 "capabilities.pullModeSupported is false, yet PullFromUrls succeeded on this lease")]
    if obs.kind == "fault" and supported is True and kind != "import":
        return [("pull.capabilities", False, "pullModeSupported false (the pull was refused)",
                 "pullModeSupported true", f"capabilities.pullModeSupported is true, yet PullFromUrls "
                                            f"was refused with {obs.fault} on this {kind} lease")]
    return []


def _ssl_verify(event: Any, obs: Observed, value: Mapping[str, Any]) -> list[Finding]:
    """The SSLVerifyFault's thumbprint against the certificate the untrusted source served."""
    served = next((f.get("served_thumbprint") for f in event.args.get("files") or ()
                   if isinstance(f, Mapping) and f.get("served_thumbprint")), None)
    error = value.get("error") if isinstance(value.get("error"), Mapping) else None
    if obs.kind != "fault" or not is_a(obs.fault or "", T.SSL_VERIFY_FAULT) or not served or error is None:
        return []  # refused otherwise (the table judges it), or raised: no thumbprint to read
    got = error.get("thumbprint")
    return [("pull.ssl-verify", normalize_thumbprint(got) == normalize_thumbprint(served), str(served), str(got),
             f"the SSLVerifyFault names thumbprint {got!r}; the source served {served}")]


def unlisted_transfers(transfers: Mapping[str, Any], listed: Iterable[str], device_keys: Iterable[str]) -> list[str]:
    """Device keys whose bytes were transferred but that have no manifest entry."""
    listed, devices = set(listed), set(device_keys)
    return sorted(k for k in transfers if k in devices and k not in listed)


def normalize_thumbprint(value: Any) -> str | None:
    """``ab:cd:..`` / ``ABCD..`` -> ``ABCD..`` (None for nothing)."""
    if not isinstance(value, str) or not value:
        return None
    return value.replace(":", "").strip().upper()
