"""The Triton kernel of ``triton-sgd``, in a module of its own, imported only when the strategy runs.

Triton decides at decoration time whether ``@triton.jit`` compiles for the GPU or runs through
its CPU interpreter (``TRITON_INTERPRET=1``), and its interpreter patches ``triton.language``
as the kernel's module globals see it. So the kernel is defined at this module's top level, with
``tl`` a global, and :func:`mfbench.plugins.strategies.triton_sgd.sgd_kernel` reloads this module when the
mode has changed since it was imported.
"""

import triton
import triton.language as tl


@triton.jit
def add(a, b):
    """The dot product's combine step (``tl.reduce`` with it is ``tl.sum``, written here because the
    interpreter cannot call the standard library's jitted functions when triton was first imported
    without it, as torch may do)."""
    return a + b


@triton.jit
def per_rating_sgd(
    P, Q, BU, BI, users, items, values, sse, n, per_program, mean, lr2, decay, BIASED: tl.constexpr, WIDTH: tl.constexpr
):
    """Program ``pid`` steps ratings ``pid * per_program`` up to ``n``, one at a time, lock-free.

    Rows are ``WIDTH`` wide (padded with zeros); ``lr2 = 2 lr``, ``decay = 1 - 2 lr reg``;
    ``sse[pid]`` receives the program's sum of squared errors, each taken before its step.
    """
    pid = tl.program_id(0)
    start = pid * per_program
    stop = tl.minimum(start + per_program, n)
    cols = tl.arange(0, WIDTH)
    total = 0.0  # a literal, not tl.zeros (a standard-library jitted function, see add)
    for t in range(start, stop):
        u = tl.load(users + t).to(tl.int64)
        i = tl.load(items + t).to(tl.int64)
        r = tl.load(values + t)
        p = tl.load(P + u * WIDTH + cols)
        q = tl.load(Q + i * WIDTH + cols)
        pred = tl.reduce(p * q, 0, add)
        if BIASED:
            bu = tl.load(BU + u)
            bi = tl.load(BI + i)
            pred = pred + mean + bu + bi
        err = pred - r
        g = lr2 * err
        tl.store(P + u * WIDTH + cols, p * decay - g * q)
        tl.store(Q + i * WIDTH + cols, q * decay - g * p)
        if BIASED:
            tl.store(BU + u, bu * decay - g)
            tl.store(BI + i, bi * decay - g)
        total += err * err
    tl.store(sse + pid, total)
