"""Python objects and tensors between the ranks of a multi-process fit, in as few collective calls as possible.

Every exchange of a multi-process fit waits for the slowest rank, and each collective call is a round trip: about
0.2 ms on loopback when both processes are awake, several ms when the other process's core was idle and must be
woken first (measured with gloo on a 2-core VM, `benchmarks/scaling.py`). ``torch.distributed.all_gather_object``
takes two calls (the sizes, then the data), and sending fold states took three. Here every rank sends a buffer of
`CAPACITY` bytes that starts with its payload's length: a payload that fits (a fold's history rows, a stop flag, a
host name) arrives in one call. A longer one is left in ``/dev/shm`` for the other processes of the machine (one
more call says they read it), or travels whole in one more call, sized to the longest (`all_gather_bytes`).

Objects travel pickled (as with ``all_gather_object``: between the processes of one job, never from a file); the
dense tensors of a state travel as raw bytes after the pickled skeleton of their containers (`all_gather_states`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import tempfile
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from lightning.fabric import Fabric

CAPACITY = 4096
"""Bytes every rank sends in the first call of an exchange (the first 8 hold the payload's length)."""

_HEADER = 8


def _device(fabric: Fabric) -> torch.device:
    """Where the exchanged buffers live: the CPU, but for NCCL, which moves CUDA tensors only."""
    return fabric.device if dist.get_backend() == "nccl" else torch.device("cpu")


def all_gather_bytes(fabric: Fabric, data: torch.Tensor) -> list[torch.Tensor]:
    """Return every rank's ``data`` (a flat ``uint8`` tensor) in rank order, as CPU tensors.

    One collective call when every rank's data fits `CAPACITY` (less its 8-byte length header). A longer payload
    between processes of one machine is written to a file in ``/dev/shm`` (memory) that the others read: one more
    call, a few bytes, says they have read it. Elsewhere (other machines, NCCL, no ``/dev/shm``) it travels in one
    more call, sized to the longest. Collective: every rank calls it at the same point.
    """
    device = _device(fabric)
    length = int(data.numel())
    room = CAPACITY - _HEADER
    spilled = _spill(data) if length > room and device.type == "cpu" else None
    note = data[:length] if length <= room else _note(spilled)
    first = torch.zeros(CAPACITY, dtype=torch.uint8, device=device)
    first[:_HEADER] = torch.tensor([length], dtype=torch.int64).view(torch.uint8).to(device)
    first[_HEADER : _HEADER + note.numel()] = note.to(device)
    firsts = [part.cpu() for part in gather_tensors(first)]
    lengths = [int(part[:_HEADER].view(torch.int64)) for part in firsts]
    if max(lengths) <= room:
        return [part[_HEADER : _HEADER + n] for part, n in zip(firsts, lengths, strict=True)]
    rank = dist.get_rank()
    out: list[torch.Tensor | None] = []
    for sender, (part, n) in enumerate(zip(firsts, lengths, strict=True)):
        if sender == rank or n <= room:
            out.append(data if sender == rank else part[_HEADER : _HEADER + n])
        else:
            out.append(_read(part[_HEADER:], n))
    lacking = gather_tensors(torch.tensor([int(None in out)], dtype=torch.uint8, device=device))
    if spilled is not None:  # every rank has read it (or given up) once the flags arrived
        with contextlib.suppress(OSError):
            os.unlink(spilled)
    if not any(int(flag) for flag in lacking):
        return [part for part in out if part is not None]
    global _spill_dir  # another machine, or a /dev/shm of its own: send the bytes from now on
    _spill_dir = None
    longest = max(lengths)
    whole = torch.zeros(longest, dtype=torch.uint8, device=device)
    whole[:length] = data.to(device)
    wholes = gather_tensors(whole)
    return [part.cpu()[:n] for part, n in zip(wholes, lengths, strict=True)]


def gather_tensors(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Return every rank's ``tensor`` (same shape on every rank) in rank order: one collective call."""
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor)
    return parts


_SHM = "/dev/shm"  # noqa: S108  # memory; each file private (mkstemp: O_EXCL, mode 0600), removed after the exchange
_spill_dir: str | None = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else None
"""Where long payloads go for the other processes of this machine to read (``None``: they travel by the backend)."""


def _spill(data: torch.Tensor) -> str | None:
    """Write ``data`` to a new private file in `_spill_dir`; return its path (``None`` if that cannot be done)."""
    if _spill_dir is None:
        return None
    try:
        fd, path = tempfile.mkstemp(prefix="lcv-exchange-", dir=_spill_dir)  # O_EXCL, mode 0600
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.contiguous().numpy().data)
    except OSError:
        return None
    return path


def _is_spill(path: str) -> bool:
    """Whether ``path`` names a file `_spill` makes (nothing else is read, whatever a note says)."""
    folder, name = os.path.split(path)
    return folder == _SHM and name.startswith("lcv-exchange-") and os.sep not in name


def _note(path: str | None) -> torch.Tensor:
    """Where another process of this machine finds a spilled payload: host, then path (empty: nowhere)."""
    if path is None:
        return torch.zeros(0, dtype=torch.uint8)
    return torch.frombuffer(bytearray(f"{socket.gethostname()}\0{path}\0".encode()), dtype=torch.uint8)


def _read(note: torch.Tensor, length: int) -> torch.Tensor | None:
    """Read a payload of ``length`` bytes spilled by a process of this machine (``None``: not here to read)."""
    host, path, *_ = (bytes(note.numpy()).split(b"\0") + [b"", b""])[:3]
    name = path.decode(errors="replace")
    if host.decode(errors="replace") != socket.gethostname() or not _is_spill(name):
        return None
    try:
        with open(name, "rb") as fh:
            read = fh.read(length + 1)
    except OSError:
        return None
    if len(read) != length:
        return None
    return torch.frombuffer(bytearray(read), dtype=torch.uint8)


def all_gather_objects(fabric: Fabric, obj: Any) -> list[Any]:
    """Return every rank's picklable ``obj`` in rank order (this rank's as given); see `all_gather_bytes`.

    Collective: every rank calls it at the same point.
    """
    data = torch.frombuffer(bytearray(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)), dtype=torch.uint8)
    parts = all_gather_bytes(fabric, data)
    rank = dist.get_rank()
    return [obj if i == rank else pickle.loads(part.numpy().tobytes()) for i, part in enumerate(parts)]  # noqa: S301  # from this job's own ranks


class _Slot(int):
    """Where a tensor sent apart by `all_gather_states` goes back into its payload (the tensor's number)."""


def _sendable(value: Any) -> bool:
    """Whether ``value`` is a dense tensor whose bytes can travel in `all_gather_states`' flat buffer."""
    return (
        type(value) in (torch.Tensor, torch.nn.Parameter)
        and value.layout is torch.strided
        and not value.is_quantized
        and value.device.type != "meta"
    )


def _take_tensors(value: Any, tensors: list[torch.Tensor], seen: dict[int, int]) -> Any:
    """Return ``value`` with each dense tensor replaced by its `_Slot` in ``tensors`` (the same tensor once)."""
    if _sendable(value):
        slot = seen.get(id(value))
        if slot is None:
            slot = seen[id(value)] = len(tensors)
            tensors.append(value)
        return _Slot(slot)
    if type(value) is dict:
        return {key: _take_tensors(item, tensors, seen) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_take_tensors(item, tensors, seen) for item in value)
    return value


def _put_tensors(value: Any, tensors: list[torch.Tensor]) -> Any:
    """Undo `_take_tensors`: put ``tensors`` back at their slots."""
    if type(value) is _Slot:
        return tensors[value]
    if type(value) is dict:
        return {key: _put_tensors(item, tensors) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_put_tensors(item, tensors) for item in value)
    return value


def all_gather_states(fabric: Fabric, payload: Any) -> list[Any]:
    """Return every rank's ``payload`` in rank order (this rank's as given), its tensors sent as raw bytes.

    ``all_gather_object`` pickles every tensor through torch's serializer: 35 ms for the 2.7 MB of two folds' states
    at width 256. Here the payload's dicts, lists and tuples are pickled without their dense tensors, and the
    tensors' bytes follow in the same buffer (`all_gather_bytes`: two collective calls for a state of any size). The
    tensors come back as CPU tensors of the same dtype, shape and values (a tensor met twice comes back as one);
    sparse or quantized tensors and tensor subclasses travel pickled in the skeleton.
    Collective: every rank calls it at the same point.
    """
    tensors: list[torch.Tensor] = []
    skeleton = _take_tensors(payload, tensors, {})
    layout = [(t.dtype, t.shape) for t in tensors]
    head = pickle.dumps((skeleton, layout), protocol=pickle.HIGHEST_PROTOCOL)
    parts = [torch.tensor([len(head)], dtype=torch.int64).view(torch.uint8)]
    parts.append(torch.frombuffer(bytearray(head), dtype=torch.uint8))
    parts += [t.detach().cpu().contiguous().reshape(-1).view(torch.uint8) for t in tensors]
    gathered: list[Any] = []
    rank = dist.get_rank()
    for sender, data in enumerate(all_gather_bytes(fabric, torch.cat(parts))):
        if sender == rank:
            gathered.append(payload)
            continue
        size = int(data[:_HEADER].view(torch.int64))
        other, shapes = pickle.loads(data[_HEADER : _HEADER + size].numpy().tobytes())  # noqa: S301  # this job's ranks
        offset, received = _HEADER + size, []
        for dtype, shape in shapes:
            nbytes = shape.numel() * dtype.itemsize
            received.append(data[offset : offset + nbytes].clone().view(dtype).reshape(shape))
            offset += nbytes
        gathered.append(_put_tensors(other, received))
    return gathered
