"""The simulator's vim25 service: builds the parts and dispatches each SOAP method to the one that owns it.

A handler is a method named like the wsdl operation (``HttpNfcLeaseProgress``)
on one of the parts below, called with the session, the ``_this`` object and
the arguments; what it returns is serialised with the method's declared
result type. Raising :class:`~nfclease.sim.soap.SoapError` answers with that
fault. Methods pyVmomi knows but no part implements get ``NotImplemented``.

| part | module | methods |
| --- | --- | --- |
| sessions | :mod:`nfclease.sim.sessions` | Login, Logout, SessionIsActive |
| inventory | :mod:`nfclease.sim.inventory` | ServiceInstance, SearchIndex, ViewManager |
| property collector | :mod:`nfclease.sim.collector` | Retrieve*, filters, WaitForUpdates* |
| VM operations | :mod:`nfclease.sim.vmops` | power, destroy, relocate, snapshots |
| import / export | :mod:`nfclease.sim.importexport` | OvfManager, ImportVApp, Export* |
| lease methods | :mod:`nfclease.sim.lease_methods` | HttpNfcLease* (pull: :mod:`nfclease.sim.pull`) |

NFC transfers (the bytes) are :class:`~nfclease.sim.nfc.NfcTransfers`, used
by the HTTP server and by pulls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pyVmomi import vim, vmodl
from pyVmomi.VmomiSupport import ManagedObject

from nfclease.sim.collector import PropertyCollector, check_version, declared_type, typed
from nfclease.sim.importexport import ImportExport, adopt_disks
from nfclease.sim.inventory import Inventory
from nfclease.sim.lease_methods import LeaseMethods
from nfclease.sim.leases import Lease, LeaseManager
from nfclease.sim.nfc import NfcTransfers
from nfclease.sim.pull import PullClient
from nfclease.sim.sessions import Sessions
from nfclease.sim.soap import FetchInfo, SoapError, SoapRequest
from nfclease.sim.vmops import VmOperations
from nfclease.sim.world import MObject, Session, World, not_found

NO_SESSION_METHODS = {"RetrieveServiceContent", "Login", "CurrentTime", "LoginByToken", "LoginExtensionByCertificate"}

#: A SOAP method's handler: ``handler(session, this, **arguments) -> result``.
Handler = Callable[..., Any]


def handlers_of(parts: tuple[object, ...]) -> dict[str, Handler]:
    """Every wsdl-named method (capitalised) of ``parts``, by name; a name owned twice is a bug."""
    handlers: dict[str, Handler] = {}
    for part in parts:
        for name in dir(type(part)):
            if name[:1].isupper() and callable(getattr(type(part), name)):
                if name in handlers:
                    raise TypeError(f"{name} is handled by two parts of the simulator")
                handlers[name] = getattr(part, name)
    return handlers


class Service:
    """Owns the world (inventory, sessions, leases) and answers decoded SOAP requests."""

    def __init__(self, config: Any, storage: Path, version: str) -> None:
        self.config = config
        self.storage = storage
        self.version = version
        self.world = World()
        self.sessions = Sessions(self.world, config)
        self.inventory = Inventory(self.world, config, storage, version)
        self.leases = LeaseManager(self.world, config, storage, datastore_key=self.inventory.datastore.moid,
                                   remove_created=self.inventory.remove_created, adopt_disks=adopt_disks)
        self.nfc = NfcTransfers(self.world, self.leases, config)
        self.inventory.managers["sessionManager"].fixed.update(self.sessions.manager_properties())
        collector = PropertyCollector(self.world, version, self.sessions.is_active)
        self.inventory.managers["propertyCollector"].fixed["filter"] = collector.caller_filters
        self.handlers = handlers_of((
            self.sessions, self.inventory, collector,
            VmOperations(self.world, self.leases, self.inventory.destroy_entity),
            ImportExport(self.world, self.leases, self.inventory, storage),
            LeaseMethods(self.world, PullClient(self.world, self.nfc.receive)),
        ))
        #: Methods run without ``world.lock`` (they wait for changes).
        self.unlocked = collector.LONG_POLL
        #: Work done outside the lock before a method runs under it.
        self.before: dict[str, Callable[[Any], None]] = {"HttpNfcLeaseGetManifest": self.nfc.wait_for_hashes}

    def dispatch(self, request: SoapRequest, session_key: str | None) -> tuple[Any, type, Session | None]:
        """Run a request; return (result, declared result type, new session if Login)."""
        with self.world.lock:
            session = self.sessions.get(session_key)
            if request.method not in NO_SESSION_METHODS and session is None:
                raise SoapError(vim.fault.NotAuthenticated(object=request.this, privilegeId="System.View"),
                                "The session is not authenticated.")
            self.world.serving(session)
            this = self._resolve_this(request.this, session)
            if isinstance(request.info, FetchInfo):
                prop = request.args.get("prop", "")
                check_version(this, prop, self.version)
                value = this.get(prop)
                typ = declared_type(this, prop)
                return typed(value, typ), typ, None
            handler = self.handlers.get(request.method)
            if handler is None:
                raise SoapError(vmodl.fault.NotImplemented(),
                                f"{request.method} is not implemented by the nfclease simulator")
            if not isinstance(this.ref, request.info.type):
                raise SoapError(vmodl.fault.MethodNotFound(receiver=this.ref, method=request.method),
                                f"{this.type_name} has no method {request.method}")
        prepare = self.before.get(request.method)
        if prepare is not None and isinstance(this, Lease):
            prepare(this)
        if request.method in self.unlocked:
            result = handler(session, this, **request.args)
        else:
            with self.world.lock:
                result = handler(session, this, **request.args)
        new_session = result if isinstance(result, vim.UserSession) else None
        return result, request.info.result, new_session

    def _resolve_this(self, ref: ManagedObject, session: Session | None) -> MObject:
        obj = self.world.resolve(ref)
        if isinstance(obj, Lease) and session is not None and obj.session_key != session.key:
            raise not_found(ref, "the lease belongs to another session")
        return obj
