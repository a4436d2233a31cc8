"""Pure-NumPy reference implementation of the book's ``common`` modules.

``fastconv.reference`` mirrors ``common/functions.py``, ``common/util.py``,
``common/layers.py`` and ``common/optimizer.py`` of *Deep Learning from Scratch*
(and, in ``time_layers``, ``common/time_layers.py`` of its sequel) in plain
NumPy. It is the oracle every fastconv kernel and layer is tested against.
Unlike the book's code, every function follows the input dtype and
``Pooling`` handles ``pad`` correctly.
"""
from . import functions, util, layers, optimizer, time_layers, layernorm, sdpa

__all__ = ["functions", "util", "layers", "optimizer", "time_layers", "layernorm", "sdpa"]
