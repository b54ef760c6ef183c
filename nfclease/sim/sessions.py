"""Sessions: Login, Logout and SessionIsActive, and the table of logged-in sessions."""

from __future__ import annotations

import uuid
from typing import Any

from pyVmomi import vim

from nfclease.sim.soap import SoapError
from nfclease.sim.world import MObject, Session, World, now_utc


class Sessions:
    """The logged-in sessions, by key (the ``vmware_soap_session`` cookie)."""

    def __init__(self, world: World, config: Any) -> None:
        self.world = world
        self.config = config
        self.by_key: dict[str, Session] = {}

    def get(self, key: str | None) -> Session | None:
        return self.by_key.get(key or "")

    def is_active(self, key: str) -> bool:
        return key in self.by_key

    def Login(self, session: Session | None, this: MObject, userName: str, password: str,
              locale: str | None = None) -> Any:
        cfg = self.config
        if not userName or not password or (cfg.username is not None and
                                            (userName, password) != (cfg.username, cfg.password)):
            raise SoapError(vim.fault.InvalidLogin(), "Cannot complete login due to an incorrect user name or password.")
        key = str(uuid.uuid4())
        new = Session(key, userName)
        self.by_key[key] = new
        new.info = vim.UserSession(key=key, userName=userName, fullName=userName, loginTime=new.login_time,
                                   lastActiveTime=now_utc(), locale=locale or "en", messageLocale="en",
                                   extensionSession=False, ipAddress="127.0.0.1", userAgent="", callCount=0)
        return new.info

    def manager_properties(self) -> dict[str, Any]:
        """The SessionManager's properties; ``currentSession`` is the caller's own."""
        def current() -> Any:
            session = self.world.current_session()
            return session.info if session is not None else None
        return {"currentSession": current, "sessionList": lambda: [s.info for s in self.by_key.values()],
                "message": lambda: "", "defaultLocale": lambda: "en", "supportedLocaleList": lambda: ["en"],
                "messageLocaleList": lambda: ["en"]}

    def Logout(self, session: Session, this: MObject) -> None:
        self.by_key.pop(session.key, None)
        views = [o for o in self.world.objects.values() if o.type_name == "ContainerView" and o.session == session.key]
        for obj in [*session.filters, *session.collectors, *views]:
            self.world.unregister(obj)

    def SetLocale(self, session: Session, this: MObject, locale: str) -> None:
        session.info.locale = locale

    def TerminateSession(self, session: Session, this: MObject, sessionId: list[str]) -> None:
        for key in sessionId:
            if key not in self.by_key:
                raise SoapError(vim.fault.NotFound(), f"no session {key!r}")
        for key in sessionId:
            ended = self.by_key.get(key)
            if ended is not None:
                self.Logout(ended, this)

    def SessionIsActive(self, session: Session, this: MObject, sessionID: str, userName: str) -> bool:
        found = self.by_key.get(sessionID)
        return bool(found and found.user == userName)
