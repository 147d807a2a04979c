"""Backends that lower functrace IR to machine code.

``lowering.llvm`` (the CPU, through llvmlite) and ``lowering.cuda`` (Numba CUDA kernels)
each register one lowering rule per primitive and a compiler with
``functrace.api.register_backend``. The frontend (``functrace``) never imports this
package; ``jit(backend=...)`` loads a backend by name on first use. Neither backend
has landed yet: until then ``jit`` runs the IR with its NumPy interpreter.
"""
