"""Structured control flow: ``cond``/``switch``, ``scan``/``fori_loop``, ``while_loop``.

Each is a higher-order primitive carrying closed sub-IRs (``functrace/control_flow/common.py``
stages and transforms them), so tracing cost does not depend on the trip count and every
transformation applies to the bodies recursively.
"""
