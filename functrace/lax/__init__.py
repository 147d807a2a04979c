"""``functrace.lax``: the primitives and structured control flow, with JAX's signatures.

Every function here binds one primitive (or a few). Unlike ``functrace.numpy``,
operands are not broadcast or promoted: shapes and dtypes must agree, except that
Python scalars take the dtype of the array operands.
"""

from functrace.control_flow.cond import *  # noqa: F403
from functrace.control_flow.scan import *  # noqa: F403
from functrace.control_flow.while_loop import *  # noqa: F403
from functrace.lax.convolution import *  # noqa: F403
from functrace.lax.elementwise import *  # noqa: F403
from functrace.lax.gather_scatter import *  # noqa: F403
from functrace.lax.indexing import *  # noqa: F403
from functrace.lax.linalg import *  # noqa: F403
from functrace.lax.reductions import *  # noqa: F403
from functrace.lax.structural import *  # noqa: F403
from functrace.lax.windowed import *  # noqa: F403
