"""Reading the tensors of a TorchScript archive (OpenAI's ``ViT-B-32.pt``) without TorchScript.

``torch.jit.load`` runs an archive's ``__setstate__`` code, so a crafted file could do anything.
Here ``data.pkl`` goes through an unpickler admitting only tensor-rebuilding globals (module
classes become inert records), tensor views are bounds-checked, and ``code/`` is only scanned as
text for ``__parameters__``/``__buffers__``; an archive defining ``__setstate__`` is refused.
"""

from __future__ import annotations

import ast
import collections
import io
import pickle
import re
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
EXPORT_RECIPE = (
    'Convert it where you trust it: python -c "import torch, safetensors.torch as st; '
    "m = torch.jit.load('ViT-B-32.pt', map_location='cpu'); "
    "st.save_file({k: v.contiguous() for k, v in m.state_dict().items()}, 'ViT-B-32.safetensors')\""
)


class TorchScriptRefused(ValueError):
    """The archive asks for something a weight file never needs; nothing of it was run."""


def is_torchscript(path: str | Path) -> bool:
    """A TorchScript archive is a zip holding ``<name>/constants.pkl`` and ``<name>/code/``."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") for n in z.namelist())


class _Storage:
    """The ``torch.<X>Storage`` global: only a dtype."""

    def __init__(self, name: str):
        self.dtype = _STORAGE_DTYPES[name]


class _ScriptObject:
    """A TorchScript module or object: its class name and its pickled attributes, nothing else."""

    qualname = ""
    attrs: dict

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise TorchScriptRefused(f"{self.qualname} carries custom state (a __getstate__)")
        self.attrs = state


def _rebuild_tensor(storage, offset, size, stride, *_):
    """``torch._utils._rebuild_tensor_v2`` on numpy: a bounds-checked strided view, copied."""
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or min((*size, *stride, offset), default=0) < 0:
        raise TorchScriptRefused(f"malformed tensor view size={size} stride={stride}")
    if 0 in size:
        return np.zeros(size, storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if last >= storage.size:
        raise TorchScriptRefused(
            f"tensor view reaches element {last} of a storage of {storage.size}"
        )
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], size, tuple(s * storage.itemsize for s in stride), writeable=False
    )
    return np.array(view)


def _build_list(values, *_):
    return list(values)


def _restore_type_tag(value, *_):
    return value


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch.jit._pickle", "build_intlist"): _build_list,
    ("torch.jit._pickle", "build_doublelist"): _build_list,
    ("torch.jit._pickle", "build_boollist"): _build_list,
    ("torch.jit._pickle", "build_tensorlist"): _build_list,
    ("torch.jit._pickle", "build_genericlist"): _build_list,
    ("torch.jit._pickle", "restore_type_tag"): _restore_type_tag,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, storages):
        super().__init__(io.BytesIO(data))
        self._storages = storages
        self._classes: dict[str, type] = {}

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _Storage(name)
        if module == "__torch__" or module.startswith("__torch__."):
            qualname = f"{module}.{name}"
            if qualname not in self._classes:
                self._classes[qualname] = type(name, (_ScriptObject,), {"qualname": qualname})
            return self._classes[qualname]
        raise TorchScriptRefused(f"its data.pkl asks for the Python global {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise TorchScriptRefused(f"unknown persistent id {pid!r:.80}")
        _, kind, key, _location, numel = pid
        if not isinstance(kind, _Storage):
            raise TorchScriptRefused(f"storage of unknown type {kind!r:.80}")
        return self._storages(str(key), kind.dtype, int(numel))


def _declarations(z: zipfile.ZipFile, prefix: str) -> tuple[dict[str, set[str]], list[str]]:
    """``class -> parameter and buffer names`` and the classes defining __setstate__ (text scan)."""
    declared: dict[str, set[str]] = {}
    setstate: list[str] = []
    for name in z.namelist():
        m = re.fullmatch(re.escape(prefix) + r"code/(.+)\.py", name)
        if not m:
            continue
        module = m.group(1).replace("/", ".")
        cls = None
        for line in z.read(name).decode("utf-8", "replace").splitlines():
            if c := re.match(r"class (\w+)\(", line):
                cls = f"{module}.{c.group(1)}"
                declared.setdefault(cls, set())
            elif cls and (d := re.match(r"\s+__(parameters|buffers)__ = (\[.*\])\s*$", line)):
                declared[cls].update(ast.literal_eval(d.group(2)))
            elif cls and re.match(r"\s+def __setstate__\(", line):
                setstate.append(cls)
    return declared, setstate


def _state_dict(obj: _ScriptObject, declared: dict[str, set[str]], prefix="", out=None):
    """Parameters and buffers of the module tree, by dotted name (as ``state_dict()``)."""
    out = {} if out is None else out
    keep = declared.get(obj.qualname)
    for name, value in getattr(obj, "attrs", {}).items():
        if isinstance(value, _ScriptObject):
            _state_dict(value, declared, f"{prefix}{name}.", out)
        elif isinstance(value, np.ndarray) and (keep is None or name in keep):
            out[prefix + name] = value
    return out


def read_torchscript(path: str | Path) -> dict[str, np.ndarray]:
    """The ``state_dict()`` tensors of a TorchScript archive as numpy, running none of its code.

    Raises :class:`TorchScriptRefused` for archives that need more than tensors to load.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            pkl = [n for n in z.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pkl) != 1:
                raise TorchScriptRefused("no single <name>/data.pkl in the archive")
            prefix = pkl[0][: -len("data.pkl")]
            if z.namelist().count(prefix + "byteorder") and z.read(prefix + "byteorder") != (
                b"little"
            ):
                raise TorchScriptRefused("big-endian archives are not supported")
            declared, setstate = _declarations(z, prefix)
            if setstate:
                raise TorchScriptRefused(
                    f"class {setstate[0]} defines __setstate__, code that torch.jit.load would run"
                )
            cache: dict[str, np.ndarray] = {}

            def storage(key: str, dtype, numel: int) -> np.ndarray:
                if key not in cache:
                    raw = z.read(f"{prefix}data/{key}")
                    if len(raw) < numel * np.dtype(dtype).itemsize:
                        raise TorchScriptRefused(f"storage data/{key} is shorter than declared")
                    cache[key] = np.frombuffer(raw, dtype, count=numel)
                return cache[key]

            root = _Unpickler(z.read(pkl[0]), storage).load()
    except TorchScriptRefused as e:
        raise TorchScriptRefused(
            f"{path}: refused to load this TorchScript archive: {e}. Nothing in it was run. "
            + EXPORT_RECIPE
        ) from None
    except Exception as e:  # noqa: BLE001 - a malformed zip or pickle, whatever it raises
        raise ValueError(f"{path}: damaged TorchScript archive ({type(e).__name__}: {e})") from e
    if not isinstance(root, _ScriptObject):
        raise ValueError(f"{path}: data.pkl holds a {type(root).__name__}, not a module")
    return _state_dict(root, declared)
