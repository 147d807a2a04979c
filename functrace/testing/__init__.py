"""Testing tools for users of functrace.

- ``check_grads(fun, args, order=1, modes=("fwd", "rev"), atol=None, rtol=None, eps=None)``:
  derivatives against central finite differences in float64.
- ``numerical_grad(fun, args)``: a gradient by central differences.
- ``functrace.testing.strategies``: Hypothesis strategies for shapes, arrays and pytrees.
"""

from functrace.testing.gradients import check_grads, check_jvp, check_vjp, numerical_grad, numerical_jvp

__all__ = ["check_grads", "check_jvp", "check_vjp", "numerical_grad", "numerical_jvp"]
