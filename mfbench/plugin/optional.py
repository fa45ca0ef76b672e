"""Optional libraries: the one way a plugin finds out that its library is missing.

A part whose library is not installed still registers, with ``unavailable`` set to
the reason, so ``mfbench list`` can say what to install and selecting it is an error
that says it (see ``Part.unavailable``). Every optional plugin asks here, so the
reasons read alike::

    UNAVAILABLE = mfbench.missing_library("surprise", install="pip install 'mfbench[peers]'", what="scikit-surprise")
    if UNAVAILABLE is None:
        import surprise
"""

from __future__ import annotations

import importlib
import importlib.util


def missing_library(*modules: str, install: str, what: str | None = None, load: bool = True) -> str | None:
    """The ``unavailable`` reason when one of ``modules`` cannot be used here; None when all can.

    :param modules: import paths the plugin needs (``"implicit.cpu.als"``), checked in order.
    :param install: the command that installs them, e.g. ``pip install 'mfbench[peers]'``.
    :param what: the name users install it by (a distribution name); default the module that is missing.
    :param load: import each module, which also catches a broken install (a compiled library that
        does not load raises OSError). False looks them up without importing, for a library that is
        slow to import or that the plugin imports only where it runs (a worker, a GPU process).
    """
    for module in modules:
        try:
            if load:
                importlib.import_module(module)
                continue
            if importlib.util.find_spec(module) is not None:
                continue
            detail = f"no module named {module!r}"
        except (ImportError, OSError) as exc:  # OSError: the package is there, its compiled library is not
            detail = f"{type(exc).__name__}: {exc}"
        except ValueError:  # find_spec of a module set to None in sys.modules (a blocked import)
            detail = f"{module!r} cannot be imported here"
        return f"{what or module} is not installed ({install}): {detail}"
    return None
