"""nfclease: conformance and load testing for the vSphere HttpNfcLease protocol.

The package core holds what every part of the product shares: how to reach a
target (:mod:`nfclease.target`), one lease's calls as events
(:mod:`nfclease.session`, :mod:`nfclease.events`), NFC HTTP transfers
(:mod:`nfclease.transfer`), streamOptimized VMDK streams (:mod:`nfclease.vmdk`)
and the embedded reference simulator (:mod:`nfclease.sim`).
"""

__version__ = "0.1.0"
