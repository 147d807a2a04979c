"""Testing tools for users of functrace: Hypothesis strategies (``functrace.testing.strategies``).

Gradient checking (``check_grads``, ``numerical_grad``) arrives with automatic
differentiation.
"""
