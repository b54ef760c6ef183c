"""vim25 SOAP on the server side, built on pyVmomi's own type registry.

pyVmomi ships a client: it serialises requests and deserialises responses. A
server needs the mirror image, and both halves can be had from the same
machinery instead of writing XML by hand per type:

* requests are decoded by one expat pass. The envelope, body and method
  element are walked here; each parameter element is handed to pyVmomi's
  :class:`SoapDeserializer`, typed by the method's declared parameter type, so
  every vim data object, enum and managed-object reference comes out as the
  same Python object pyvmomi users handle;
* responses and faults are written with pyVmomi's :class:`SoapSerializer`
  at the negotiated API version, which drops the members a version lacks, so
  a simulator advertising 6.5 never shows a 6.7 property.

Every way a request can be wrong maps to the fault a real server answers with
(:class:`SoapError` carries it), so no input can kill a handler.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any
from xml.parsers.expat import ExpatError, ParserCreate

from pyVmomi import SoapAdapter, VmomiSupport, vim, vmodl
from pyVmomi.SoapAdapter import (
    NS_SEP,
    SOAP_NSMAP,
    XMLNS_SOAPENV,
    ExpatDeserializerNSHandlers,
    GetHandlers,
    SetHandlers,
    SoapDeserializer,
)
from pyVmomi.VmomiSupport import F_OPTIONAL, ManagedObject, Object

VIM_NS = "urn:vim25"
_ENVELOPE = XMLNS_SOAPENV + NS_SEP + "Envelope"
_BODY = XMLNS_SOAPENV + NS_SEP + "Body"
_HEADER = XMLNS_SOAPENV + NS_SEP + "Header"


class SoapError(Exception):
    """A request that must be answered with ``fault`` (a vmodl MethodFault)."""

    def __init__(self, fault: vmodl.MethodFault, message: str) -> None:
        super().__init__(message)
        fault.msg = message
        self.fault = fault


def invalid_request(message: str) -> SoapError:
    return SoapError(vmodl.fault.InvalidRequest(), message)


@dataclass
class FetchInfo:
    """pyvmomi 9 reads a property with ``Fetch(prop)``, a method no type declares."""

    wsdlName: str = "Fetch"
    name: str = "fetch"
    version: str = "vmodl.version.version0"


@dataclass
class SoapRequest:
    """A decoded request: the method, ``_this`` and the typed arguments."""

    method: str
    this: ManagedObject | None
    args: dict[str, Any] = field(default_factory=dict)
    info: Any = None  # pyVmomi method info; FetchInfo for Fetch


class _RequestDecoder(ExpatDeserializerNSHandlers):
    """Walks Envelope/Body/Method; delegates each parameter to pyVmomi."""

    def __init__(self, version: str) -> None:
        super().__init__()
        self.version = version
        self.depth = 0
        self.in_body = False
        self.method_name: str | None = None
        self.info: Any = None
        self.params: dict[str, Any] = {}
        self.values: dict[str, Any] = {}
        self.pending: tuple[str, bool, type] | None = None
        self.deser = SoapDeserializer(stub=None, version=version)
        self.parser = ParserCreate(namespace_separator=NS_SEP)
        self.parser.buffer_text = True
        SetHandlers(self.parser, GetHandlers(self))

    def decode(self, body: bytes) -> SoapRequest:
        try:
            self.parser.Parse(body, True)
        except SoapError:
            raise
        except ExpatError as exc:
            raise invalid_request(f"malformed XML: {exc}") from None
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
            raise SoapError(vmodl.fault.InvalidArgument(),
                            f"argument of {self.method_name or 'request'} not valid: "
                            f"{type(exc).__name__}: {exc}") from None
        self._collect()
        if self.method_name is None:
            raise invalid_request("no method element in the SOAP body")
        this = self.values.pop("_this", None)
        if this is not None and not isinstance(this, ManagedObject):
            raise invalid_request("_this is not a managed object reference")
        if this is None:
            raise invalid_request(f"{self.method_name}: missing _this")
        return SoapRequest(self.method_name, this, self.values, self.info)

    # -- expat handlers ----------------------------------------------------
    def StartElementHandler(self, tag: str, attr: dict[str, str]) -> None:
        self._collect()
        self.depth += 1
        if self.depth == 1:
            if tag != _ENVELOPE:
                raise invalid_request(f"root element is {tag!r}, expected soapenv:Envelope")
        elif self.depth == 2:
            self.in_body = tag == _BODY
        elif self.depth == 3 and self.in_body:
            if self.method_name is not None:
                raise invalid_request("more than one method element in the SOAP body")
            ns, _, name = tag.rpartition(NS_SEP)
            self.method_name = name
            self.info = self._lookup_method(ns, name)
        elif self.depth == 4 and self.in_body:
            _, _, name = tag.rpartition(NS_SEP)
            ptype, is_list = self._param_type(name)
            self.pending = (name, is_list, ptype)
            self.deser.Deserialize(self.parser, ptype, False, self.nsMap)
            self.deser.StartElementHandler(tag, attr)

    def EndElementHandler(self, tag: str) -> None:
        self._collect()
        self.depth -= 1

    def CharacterDataHandler(self, data: str) -> None:
        pass

    def _collect(self) -> None:
        """Take the value pyVmomi built for the parameter element just closed."""
        if self.pending is None:
            return
        name, is_list, ptype = self.pending
        self.pending = None
        self.depth -= 1  # the parameter's end tag went to pyVmomi's handler
        value = self.deser.GetResult()
        if not _conforms(value, ptype):
            # an xsi:type naming another type (a data object where a moref is declared...)
            raise SoapError(vmodl.fault.InvalidType(argument=name),
                            f"{self.method_name}: parameter {name!r} is a {type(value).__name__}, "
                            f"not a {getattr(ptype, '_wsdlName', ptype.__name__)}")
        if is_list:
            self.values.setdefault(name, []).append(value)
        elif name in self.values:
            raise invalid_request(f"parameter {name!r} given twice")
        else:
            self.values[name] = value

    def _lookup_method(self, ns: str, name: str) -> Any:
        if name == "Fetch":
            return FetchInfo()
        found = _known_method(ns or VIM_NS, name)
        if found is None:
            raise SoapError(vmodl.fault.MethodNotFound(method=name),
                            f"method {name!r} is not known in {ns or VIM_NS}")
        info, self.params = found
        if not VmomiSupport.IsChildVersion(self.version, info.version):
            raise SoapError(vmodl.fault.MethodNotFound(method=name),
                            f"method {name!r} is not in API version "
                            f"{VmomiSupport.versionIdMap[self.version]}")
        return info

    def _param_type(self, name: str) -> tuple[type, bool]:
        if self.method_name is None or self.info is None:
            raise invalid_request("parameter outside a method element")
        if name == "_this":
            return ManagedObject, False
        if isinstance(self.info, FetchInfo):
            if name == "prop":
                return str, False
            raise invalid_request(f"Fetch has no parameter {name!r}")
        param = self.params.get(name)
        if param is None:
            raise SoapError(vmodl.fault.InvalidArgument(invalidProperty=name),
                            f"{self.method_name} has no parameter {name!r}")
        if issubclass(param.type, list):
            return param.type.Item, True
        return param.type, False


@functools.lru_cache(maxsize=1024)
def _known_method(ns: str, name: str) -> tuple[Any, dict[str, Any]] | None:
    """pyVmomi's method info and its parameters by name, looked up once per method.

    GetWsdlMethod takes pyVmomi's global lock on every call; a Progress-heavy
    load asks for the same few methods thousands of times. Unknown names are
    cached too (as None), bounded by the cache size.
    """
    try:
        info = VmomiSupport.GetWsdlMethod(ns, name).info
    except KeyError:
        return None
    return info, {p.name: p for p in info.params}


def decode_request(body: bytes, version: str) -> SoapRequest:
    """Decode a SOAP request body into a :class:`SoapRequest` or raise SoapError."""
    request = _RequestDecoder(version).decode(body)
    for name, value in request.args.items():
        _check_data(value, name)
    info = request.info
    if not isinstance(info, FetchInfo):
        missing = [p.name for p in info.params
                   if not p.flags & F_OPTIONAL and p.name not in request.args]
        if missing:
            raise SoapError(vmodl.fault.InvalidArgument(invalidProperty=missing[0]),
                            f"{request.method}: required parameter {missing[0]!r} missing")
    return request


def _check_data(value: Any, where: str) -> None:
    """Required members present and members of their declared types, all the way down.

    pyVmomi's deserializer fills data objects without checking either, so a
    PropertySpec without ``type`` or an ObjectSpec without ``obj`` reached the
    handlers as None and crashed them. pyVmomi's own ``CheckField`` decides.
    """
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_data(item, f"{where}[{index}]")
    elif isinstance(value, VmomiSupport.DataObject):
        for prop in value._GetPropertyList():
            member = getattr(value, prop.name, None)
            try:
                VmomiSupport.CheckField(prop, member)
            except TypeError as exc:
                raise SoapError(vmodl.fault.InvalidRequest(),
                                f"{where}.{prop.name} of data object type {value._wsdlName}: {exc}") from None
            if isinstance(member, list) and not issubclass(prop.type, list):  # an empty array passes CheckField
                raise SoapError(vmodl.fault.InvalidType(argument=f"{where}.{prop.name}"),
                                f"{where}.{prop.name} is an array, not a {getattr(prop.type, '_wsdlName', prop.type)}")
            if isinstance(member, list) and issubclass(prop.type, list):  # CheckField skips typed arrays' items
                for index, item in enumerate(member):
                    if not _conforms(item, prop.type.Item):
                        raise SoapError(vmodl.fault.InvalidType(argument=f"{where}.{prop.name}"),
                                        f"{where}.{prop.name}[{index}] is a {type(item).__name__}, "
                                        f"not a {getattr(prop.type.Item, '_wsdlName', prop.type.Item)}")
            _check_data(member, f"{where}.{prop.name}")


def _conforms(value: Any, typ: Any) -> bool:
    """Whether a decoded value is of the declared type (pyVmomi's primitive subtypes accepted)."""
    if value is None or not isinstance(typ, type) or typ is object or isinstance(value, typ):
        return True
    return any(issubclass(typ, base) and isinstance(value, base) for base in (str, int, float, bytes))


def _ns_map(version: str) -> dict[str, str]:
    ns_map = SOAP_NSMAP.copy()
    ns_map[VmomiSupport.GetWsdlNamespace(version)] = ""
    return ns_map


_ENVELOPE_START = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                   + SoapAdapter.SOAP_ENVELOPE_START + SoapAdapter.SOAP_BODY_START)
_ENVELOPE_END = SoapAdapter.SOAP_BODY_END + SoapAdapter.SOAP_ENVELOPE_END


# pyVmomi's serializer types a reference in an ``anyType`` slot (a DynamicProperty's
# val, a Change's val) ``xsi:type="ManagedObject"``, a name only pyVmomi reads; the
# WSDL's, which vCenter sends and Go's strict decoder requires, is ManagedObjectReference.
_MOREF_XSI_TYPE = re.compile(r'(type="(?:[A-Za-z0-9]+:)?(?:ArrayOf)?ManagedObject)"')


def wsdl_morefs(xml: str) -> str:
    """Rename pyVmomi's ``ManagedObject`` xsi:types to the WSDL's ``ManagedObjectReference``.

    Element text is escaped (``"`` is ``&quot;``), so only attributes match.
    """
    return _MOREF_XSI_TYPE.sub(r'\1Reference"', xml) if "ManagedObject\"" in xml else xml


def encode_response(method: str, result: Any, result_type: type, version: str) -> bytes:
    """Serialise ``result`` as the ``<methodResponse>`` of ``method``."""
    parts = [_ENVELOPE_START, f'<{method}Response xmlns="{VmomiSupport.GetWsdlNamespace(version)}">']
    if result is not None:
        info = Object(name="returnval", type=result_type, version=version, flags=F_OPTIONAL)
        parts.append(wsdl_morefs(SoapAdapter.SerializeToStr(result, info, version, _ns_map(version))))
    parts.append(f"</{method}Response>")
    parts.append(_ENVELOPE_END)
    return "".join(parts).encode("utf-8")


def encode_fault(fault: vmodl.MethodFault, message: str, version: str) -> bytes:
    """Serialise a SOAP fault the way vSphere does: message + typed detail."""
    if not fault.msg:
        fault.msg = message
    _fill_required(fault)
    info = Object(name=f"{fault._wsdlName}Fault", type=object, version=version, flags=0)
    try:
        detail = SoapAdapter.SerializeFaultDetail(fault, info, version, _ns_map(version))
    except Exception:  # a fault not in this version: fall back to its base type
        detail = SoapAdapter.SerializeFaultDetail(
            vmodl.RuntimeFault(msg=message), info, version, _ns_map(version))
    code = "ServerFaultCode"
    return (
        f"{_ENVELOPE_START}<soapenv:Fault><faultcode>{code}</faultcode>"
        f"<faultstring>{SoapAdapter.XmlEscape(message)}</faultstring>"
        f"<detail>{detail}</detail></soapenv:Fault>{_ENVELOPE_END}"
    ).encode("utf-8")


def _fill_required(fault: vmodl.MethodFault) -> None:
    """Give required members the server could not know a placeholder.

    ``MethodNotFound.receiver`` is required, but an unknown method is found
    before ``_this`` is read. Without a value pyVmomi refuses to serialise the
    fault and it went out as a bare RuntimeFault, so clients never saw the
    fault's real type.
    """
    for prop in fault._GetPropertyList():
        if prop.flags & F_OPTIONAL or getattr(fault, prop.name, None) is not None:
            continue
        typ = prop.type
        if isinstance(typ, type) and issubclass(typ, ManagedObject):
            setattr(fault, prop.name, typ("unknown"))
        elif typ is str:
            setattr(fault, prop.name, "")


def moref(type_name: str, moid: str) -> ManagedObject:
    """A stub-less managed object reference for serialising (``vim.HttpNfcLease('lease-1')``)."""
    return VmomiSupport.GetWsdlType(VIM_NS, type_name)(moid)


def version_for(api_version: str) -> str:
    """Map an API version string ("6.7", "8.0.3.0") to pyVmomi's version name."""
    wanted = api_version.strip()
    candidates = {vid: name for name, vid in VmomiSupport.versionIdMap.items()
                  if VmomiSupport.serviceNsMap.get(name) == "vim25"}
    for probe in (wanted, wanted + ".0", wanted + ".0.0"):
        if probe in candidates:
            return candidates[probe]
    raise ValueError(f"unknown vSphere API version {api_version!r}; "
                     f"known: {', '.join(sorted(candidates, key=_version_key))}")


def _version_key(vid: str) -> tuple[int, ...]:
    out = []
    for piece in vid.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def prior_versions(version: str) -> list[str]:
    """Version ids of vim25 that ``version`` is a child of (for vimServiceVersions.xml)."""
    out = []
    for name, vid in VmomiSupport.versionIdMap.items():
        if (VmomiSupport.serviceNsMap.get(name) == "vim25" and name != version
                and VmomiSupport.IsChildVersion(version, name) and vid[:1].isdigit()):
            out.append(vid)
    return sorted(set(out), key=_version_key, reverse=True)


__all__ = ["SoapError", "SoapRequest", "decode_request", "encode_response", "encode_fault",
           "moref", "version_for", "prior_versions", "invalid_request", "vim"]
