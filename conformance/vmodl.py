"""What pyVmomi's type tables declare about HttpNfcLease, and API versions.

The model needs three facts it must not invent: which faults each lease
method declares, from which API version a method exists, and which fault
class is a kind of which (``InvalidPowerState`` *is an* ``InvalidState``;
``ManagedObjectNotFound`` *is a* ``RuntimeFault``). pyVmomi's type info holds
all three as data, so they are read from there once, at import time. Nothing
here connects to anything.
"""

from __future__ import annotations

from functools import lru_cache

from pyVmomi import VmomiSupport

from nfclease import vocabulary as V

RUNTIME_FAULT = "vmodl.RuntimeFault"
ANY_FAULT = "*"

#: Event ``call`` -> the pyVmomi method name on ``vim.HttpNfcLease``.
LEASE_METHODS: dict[str, str] = {
    V.COMPLETE: V.COMPLETE,
    V.ABORT: V.ABORT,
    V.PROGRESS: V.PROGRESS,
    V.GET_MANIFEST: V.GET_MANIFEST,
    V.SET_MANIFEST_CHECKSUM_TYPE: V.SET_MANIFEST_CHECKSUM_TYPE,
    V.PULL_FROM_URLS: V.PULL_FROM_URLS,
}


def version_tuple(version: str) -> tuple[int, ...]:
    """``"6.7"`` -> ``(6, 7)``; ``"7.0.2.0"`` -> ``(7, 0, 2)``; trailing zeros dropped."""
    try:
        parts = [int(p) for p in str(version).strip().split(".")]
    except ValueError:
        raise ValueError(
            f"API version {version!r} is not dotted numbers; pass the target's "
            f"about.apiVersion, e.g. '6.7' or '8.0.2.0'"
        ) from None
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def version_at_least(api_version: str | None, since: str) -> bool:
    """Does a target speaking ``api_version`` have what appeared in ``since``?

    ``None`` means "unknown": everything applies (an offline replay without
    run info must not invent NAs).
    """
    if api_version is None:
        return True
    return version_tuple(api_version) >= version_tuple(since)


def _lease_type():
    return VmomiSupport.GetVmodlType("vim.HttpNfcLease")


def _version_name(vmodl_version: str) -> str:
    return VmomiSupport.versionIdMap.get(vmodl_version, vmodl_version)


@lru_cache(maxsize=None)
def declared_faults(call: str) -> tuple[str, ...]:
    """The faults pyVmomi declares for the lease method behind event ``call``."""
    method = LEASE_METHODS.get(call)
    if method is None:
        raise KeyError(f"{call!r} is not a lease method; known: {', '.join(LEASE_METHODS)}")
    return tuple(_lease_type()._GetMethodInfo(method).faults or ())


@lru_cache(maxsize=None)
def method_since(call: str) -> str:
    """The API version a lease method appeared in, per pyVmomi (``"4.1"``...)."""
    method = LEASE_METHODS[call]
    return _version_name(_lease_type()._GetMethodInfo(method).version)


@lru_cache(maxsize=None)
def property_since(name: str) -> str:
    """The API version a lease property appeared in, per pyVmomi."""
    return _version_name(_lease_type()._GetPropertyInfo(name).version)


@lru_cache(maxsize=None)
def vmodl_type(name: str) -> type | None:
    """The pyVmomi class for a vmodl fault name, or None for ``http.*``/``net.*``/unknown."""
    try:
        return VmomiSupport.GetVmodlType(name)
    except (KeyError, AttributeError, TypeError):
        return None


def is_a(fault: str, base: str) -> bool:
    """Is the fault named ``fault`` the class ``base`` or a subclass of it?

    Names pyVmomi does not know (``http.404``, ``net.ConnectionError``) only
    match themselves.
    """
    if fault == base:
        return True
    sub, sup = vmodl_type(fault), vmodl_type(base)
    if sub is None or sup is None or not isinstance(sub, type) or not isinstance(sup, type):
        return False
    return issubclass(sub, sup)


def fault_matches(fault: str, accepted: str) -> bool:
    """Does an observed fault name satisfy one accepted token?

    Tokens: ``*`` any fault; ``http.*`` / ``net.*`` a prefix family; otherwise a
    vmodl class name matched with subclasses.
    """
    if accepted == ANY_FAULT:
        return True
    if accepted.endswith(".*"):
        return fault.startswith(accepted[:-1])
    return is_a(fault, accepted)


def is_declared(call: str, fault: str) -> bool | None:
    """Whether ``fault`` is declared by ``call`` or is a RuntimeFault; None if unjudgeable.

    None for names that are not vmodl faults (HTTP or transport errors): those
    are not SOAP faults, so the declaration rule does not speak about them.
    """
    if vmodl_type(fault) is None:
        return None
    return any(is_a(fault, d) for d in (*declared_faults(call), RUNTIME_FAULT))
