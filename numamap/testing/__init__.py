"""Test helpers for numamap.

:mod:`numamap.testing.vm` boots a small multi-node Linux guest under QEMU
(virtme-ng, TCG) and runs a command in it, so NUMA code can be tested on a
machine that has a single node.  It uses only the standard library and does
not import the rest of numamap.
"""
