"""zmartd: the backend daemon of ZMART.

One trio process runs a supervised tree of actors that talk over bounded memory
channels; the tree is declared, actor by actor, in :mod:`zmartd.tree` (``zmartd tree``
prints the live one). See README.md for the map.
"""

__version__ = "0.1.0"
