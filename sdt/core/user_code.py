"""Load the user's own code named as `module:function`: a model builder or a dataset source.

A spec is `package.module:function` (imported with the current working directory on
sys.path) or `path/to/file.py:function` (the file is imported by path, with its folder on
sys.path so it can import its neighbours). Every mistake (no colon, no such module or file,
an import that raises, a missing attribute, something not callable) becomes one
ConfigurationError naming the option, what was given and what to do; nothing is trained here.

Where the job ends: this module finds and checks the callables; it never calls a model
builder (sdt/neural/network.py does, while training) and knows nothing of Keras.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Callable

from sdt.core.errors import ConfigurationError
from sdt.core.records import ARCHITECTURE_ACTIONS
from sdt.core.vocabulary import ACTIONS

# The actions that change the network itself. A user's model applies them only if it declares
# them in its `supports` attribute; the other actions edit the search space and apply to any
# model whose space has the dimension they move.


def is_spec(text: Any) -> bool:
    """Whether `text` looks like `module:function` (not a Windows drive letter)."""
    if not isinstance(text, str):
        return False
    module, colon, function = text.rpartition(":")
    return bool(colon) and len(module) > 1 and bool(function)


def _is_file_spec(module: str) -> bool:
    return module.endswith(".py") or "/" in module or os.sep in module


def normalise_spec(spec: str) -> str:
    """The spec with a file path made absolute, so a stored run can be resumed from anywhere."""
    module, _, function = spec.rpartition(":")
    if _is_file_spec(module):
        return f"{Path(module).expanduser().resolve()}:{function}"
    return spec


def spec_of(function: Callable[..., Any]) -> str:
    """`module:qualname` of a callable (what a run stores for a model passed as a function)."""
    module = getattr(function, "__module__", None) or "__main__"
    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", "function")
    return f"{module}:{name}"


def load_callable(spec: str, option: str = "--model",
                  error: type[ConfigurationError] = ConfigurationError) -> Callable[..., Any]:
    """Import `module:function` (or `path/to/file.py:function`) and return the callable.

    `option` names the setting in messages; `error` is the ConfigurationError subclass raised.
    """
    if not is_spec(spec):
        raise error(f"{option} must be module:function or path/to/file.py:function, got {spec!r}")
    module_name, _, attribute = spec.rpartition(":")
    module = _import(module_name, spec, option, error)
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise error(f"{option} {spec!r}: module '{module_name}' has no attribute '{attribute}'")
        target = getattr(target, part)
    if not callable(target):
        raise error(f"{option} {spec!r}: '{attribute}' is a {type(target).__name__}, expected a function")
    return target


def _import(module_name: str, spec: str, option: str, error: type[ConfigurationError]):
    if _is_file_spec(module_name):
        path = Path(module_name).expanduser().resolve()
        if not path.is_file():
            raise error(f"{option} {spec!r}: no such file '{path}'")
        folder = str(path.parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        # A name of our own, so two files called model.py in different folders do not collide.
        unique = f"sdt_user_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        if unique in sys.modules:
            return sys.modules[unique]
        module_spec = importlib.util.spec_from_file_location(unique, path)
        if module_spec is None or module_spec.loader is None:
            raise error(f"{option} {spec!r}: '{path}' cannot be imported as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[unique] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as err:  # noqa: BLE001 - any import-time fault is the user's to fix
            del sys.modules[unique]
            raise error(f"{option} {spec!r}: importing '{path}' raised "
                        f"{type(err).__name__}: {_one_line(err)}") from err
        return module
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):   # the module itself, not one it imports
            raise error(f"{option} {spec!r}: no module named '{module_name}' (looked in the current "
                        f"folder and sys.path); give a file path instead, e.g. "
                        f"path/to/{module_name.split('.')[-1]}.py:{spec.rpartition(':')[2]}") from err
        raise error(f"{option} {spec!r}: importing '{module_name}' raised "
                    f"ModuleNotFoundError: {_one_line(err)}") from err
    except Exception as err:  # noqa: BLE001
        raise error(f"{option} {spec!r}: importing '{module_name}' raised "
                    f"{type(err).__name__}: {_one_line(err)}") from err


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def supported_actions(model_function: Callable[..., Any], spec: str) -> frozenset[str]:
    """The architecture actions a user's model declares in its `supports` attribute.

    No attribute: none (the model is taken as fixed). Unknown names are a ConfigurationError.
    Search-space actions listed there are accepted and change nothing (they always apply).
    """
    declared = getattr(model_function, "supports", frozenset())
    if isinstance(declared, str) or not hasattr(declared, "__iter__"):
        raise ConfigurationError(f"--model {spec!r}: `supports` must be a set of action names, got {declared!r}")
    names = set(declared)
    unknown = sorted(str(name) for name in names - set(ACTIONS))
    if unknown:
        raise ConfigurationError(f"--model {spec!r}: `supports` names unknown action(s) {unknown}; "
                                 f"expected names from {', '.join(ACTIONS)}")
    return frozenset(names & ARCHITECTURE_ACTIONS)


def unsupported_actions(model_function: Callable[..., Any] | None, spec: str = "") -> frozenset[str]:
    """Architecture actions the model cannot take (none for the built-in CNN, model_function None)."""
    if model_function is None:
        return frozenset()
    return ARCHITECTURE_ACTIONS - supported_actions(model_function, spec)
