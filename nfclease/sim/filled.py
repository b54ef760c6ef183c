"""Data objects with every required member set, for clients that read them strictly.

vCenter never leaves out a member the WSDL marks required; govmomi and the
Ansible modules dereference them without checking. :func:`filled` builds a
pyVmomi data object from the members given and fills each required member
left unset with the neutral value of its type (``False``, ``0``, ``""``, the
first enum value, an empty array, a filled nested object, the current time).
"""

from __future__ import annotations

import datetime
from typing import Any

from pyVmomi import VmomiSupport
from pyVmomi.VmomiSupport import F_OPTIONAL

_MAX_DEPTH = 6


def neutral(typ: Any, depth: int = 0) -> Any:
    """The neutral value of a pyVmomi type (None when it has none, e.g. a managed object)."""
    if not isinstance(typ, type):
        return None
    if issubclass(typ, bool):
        return False
    if issubclass(typ, VmomiSupport.Enum):
        values = getattr(typ, "values", None) or [v for v in dir(typ) if not v.startswith("_")]
        return typ(values[0]) if values else None
    if issubclass(typ, list):
        return typ()
    if issubclass(typ, (int, float)):
        return typ(0)
    if issubclass(typ, str):
        return typ("")
    if issubclass(typ, datetime.datetime):
        return datetime.datetime.now(datetime.timezone.utc)
    if issubclass(typ, VmomiSupport.DataObject) and depth < _MAX_DEPTH:
        return fill(typ(), depth + 1)
    return None


def fill(obj: Any, depth: int = 0) -> Any:
    """Set every required, unset member of the data object ``obj`` (in place); return it."""
    for prop in obj._GetPropertyList():
        if prop.flags & F_OPTIONAL or getattr(obj, prop.name, None) is not None:
            continue
        value = neutral(prop.type, depth)
        if value is not None:
            setattr(obj, prop.name, value)
    return obj


def filled(cls: type, **members: Any) -> Any:
    """``cls(**members)`` with its other required members filled."""
    return fill(cls(**members))
