"""nfclease: conformance and load testing for the vSphere HttpNfcLease protocol.

The package core holds what every part of the product shares: how to reach a
target (:mod:`nfclease.target`), one lease's calls as events
(:mod:`nfclease.session`, :mod:`nfclease.events`), NFC HTTP transfers
(:mod:`nfclease.transfer`), streamOptimized VMDK streams (:mod:`nfclease.vmdk`)
and the embedded reference simulator (:mod:`nfclease.sim`).
"""

__version__ = "0.1.0"


# nfclease.conformance & co from a checkout: the folders conformance/, load/, reports/ and
# strategies/ sit beside nfclease/ in the repository and are installed as
# nfclease.conformance ... (pyproject package-dir). Run from a checkout, the
# repository root joins this package's path so the same names import.
def _checkout_root() -> str | None:
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    if os.path.isfile(os.path.join(root, "pyproject.toml")) and \
            os.path.isfile(os.path.join(root, "conformance", "__init__.py")) and \
            not os.path.isdir(os.path.join(here, "conformance")):
        return root
    return None


if _checkout_root() is not None:
    __path__.append(_checkout_root())  # type: ignore[name-defined]  # noqa: F821
