"""Crafted files that try to make strided's readers allocate, recurse or run too long, and how fast they fail.

Each case writes one file of at most 5 MB that is hostile to one reader:
an architecture asking for ``Linear(20000, 20000)`` next to 1.2 KB of
tensors, a compressed entry that inflates to 2 GiB, an ``.npy`` header
claiming 4 TB, a description nested 2,000,000 deep, a CIFAR archive member
of 1 GiB, an IDX header of 255 dimensions, and more (:data:`CASES`). The
benchmark opens each with the reader it targets and reports the time to
fail and the peak of traced memory against the targets (0.5 s, 64 MB);
every case must fail with a ``FileFormatError`` naming the file::

    strided bench hostile-files
    python benchmarks/bench_hostile_files.py --scale 0.125   # smaller bombs, quicker to craft

The same files are what ``tests/test_hostile_files.py`` checks (at a small
scale, without timing).
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import struct
import tarfile
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .. import data, io as sio, nn
from ..data import cifar
from ..io import containers
from .harness import machine, table, traced_peak

__all__ = ["CASES", "craft", "run_case", "main", "TIME_TARGET", "MEMORY_TARGET", "SIZE_LIMIT"]

TIME_TARGET = 0.5          # seconds to fail
MEMORY_TARGET = 64 << 20   # bytes of extra (traced) memory
SIZE_LIMIT = 5 << 20       # every crafted file is at most this large
_MIB = 1 << 20


# ----------------------------------------------------------------------------- crafting helpers
def _npz_entries(path) -> dict:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def _write_npz_entries(path, entries: dict) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, payload in entries.items():
            z.writestr(name, payload)
    return Path(path)


def _npy_bytes(array: np.ndarray) -> bytes:
    f = io.BytesIO()
    np.save(f, array)
    return f.getvalue()


def _npy_header(shape, dtype="<f4") -> bytes:
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return f.getvalue()


def _meta_bytes(meta) -> bytes:
    text = meta if isinstance(meta, str) else json.dumps(meta)
    return _npy_bytes(np.frombuffer(text.encode("utf-8"), dtype=np.uint8))


def _edited(source, target, edit) -> Path:
    """Copy the strided file ``source`` to ``target`` with its JSON description changed by ``edit(meta)``."""
    entries = _npz_entries(source)
    key = containers.META_KEY + ".npy"
    meta = json.loads(np.load(io.BytesIO(entries[key])).tobytes().decode("utf-8"))
    entries[key] = _meta_bytes(edit(meta))
    return _write_npz_entries(target, entries)


def _zeros_deflate(prefix: bytes, total: int, suffix_zeros: int = 0) -> tuple[bytes, int]:
    """A raw deflate stream of ``prefix`` followed by zeros up to ``total`` bytes, and the CRC-32 of that content.

    Built from one compressed 1 MiB block of zeros repeated (each block ends with a full flush,
    so blocks stand alone): crafting 2 GiB takes seconds, not minutes.
    """
    chunk = bytes(_MIB)
    first = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = prefix + bytes(_MIB - len(prefix))
    parts = [first.compress(head) + first.flush(zlib.Z_FULL_FLUSH)]
    crc = zlib.crc32(head)
    left = total - len(head)
    block_maker = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = block_maker.compress(chunk) + block_maker.flush(zlib.Z_FULL_FLUSH)
    full, rest = divmod(left, _MIB)
    parts.append(block * full)
    for _ in range(full):
        crc = zlib.crc32(chunk, crc)
    last = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts.append(last.compress(bytes(rest)) + last.flush())
    crc = zlib.crc32(bytes(rest), crc)
    return b"".join(parts), crc


def _zip_with_raw_entry(path, plain: dict, name: str, deflated: bytes, crc: int, declared: int) -> Path:
    """An .npz holding ``plain`` entries (stored) and one deflated entry whose declared size is ``declared``."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for key, payload in plain.items():
            z.writestr(key, payload)
    # append the raw entry by hand: zipfile cannot write a declared size that differs from the content
    base = out.getvalue()
    with zipfile.ZipFile(io.BytesIO(base)) as z:
        infos = z.infolist()
        cd_offset = z.start_dir
    body = base[:cd_offset]
    local_offset = len(body)
    encoded = name.encode()
    body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(deflated), declared,
                        len(encoded), 0) + encoded + deflated
    central = base[cd_offset:base.rfind(b"PK\x05\x06")]
    central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(deflated), declared,
                           len(encoded), 0, 0, 0, 0, 0, local_offset) + encoded
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(infos) + 1, len(infos) + 1, len(central), len(body), 0)
    Path(path).write_bytes(body + central + end)
    return Path(path)


def _safetensors_file(path, header: dict, data: bytes = b"", declared_length: int | None = None) -> Path:
    text = json.dumps(header).encode()
    length = len(text) if declared_length is None else declared_length
    Path(path).write_bytes(struct.pack("<Q", length) + text + data)
    return Path(path)


def _tar_gz_bomb(path, member: str, size: int) -> Path:
    """A gzip'd tar whose member ``member`` is ``size`` bytes of zeros (CIFAR's archive layout)."""
    info = tarfile.TarInfo(f"{cifar.BATCH_DIR}/{member}")
    info.size = size
    header = info.tobuf(format=tarfile.USTAR_FORMAT)
    padding = (-size) % 512
    total = len(header) + size + padding + 1024  # two zero blocks end the archive
    deflated, crc = _zeros_deflate(header, total)
    gz = (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + deflated
          + struct.pack("<II", crc, total & 0xFFFFFFFF))
    Path(path).write_bytes(gz)
    return Path(path)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _small_model(path) -> Path:
    return sio.save(nn.Sequential(nn.Linear(2, 2)), path)


def _small_checkpoint(path) -> Path:
    from ..optim import SGD
    model = nn.Sequential(nn.Linear(2, 2))
    return sio.save_checkpoint(path, model, SGD(model.parameters(), lr=0.1, momentum=0.9), epoch=1)


def _huge_linear(meta):
    section = meta["model"] if "model" in meta else meta
    section["architecture"]["children"][0]["config"].update(in_features=20000, out_features=20000)
    return meta


# ----------------------------------------------------------------------------- the cases
def _arch_huge_linear(d, scale):
    return _edited(_small_model(d / "small.npz"), d / "arch_huge_linear.npz", _huge_linear), sio.load


def _arch_huge_linear_checkpoint(d, scale):
    return (_edited(_small_checkpoint(d / "small_ck.npz"), d / "arch_huge_linear_ckpt.npz", _huge_linear),
            sio.load_checkpoint)


def _index_and_arch_lie(d, scale):
    def edit(meta):
        _huge_linear(meta)
        meta["tensors"]["0.weight"]["shape"] = [20000, 20000]
        return meta
    return _edited(_small_model(d / "small.npz"), d / "index_lies.npz", edit), sio.load


def _arch_huge_int(d, scale):
    def edit(meta):
        meta["architecture"]["children"][0]["config"]["in_features"] = 10 ** 30
        return meta
    return _edited(_small_model(d / "small.npz"), d / "arch_huge_int.npz", edit), sio.load


def _arch_huge_batchnorm(d, scale):
    def edit(meta):
        meta["architecture"]["children"].append({"type": "BatchNorm2d", "config": {"num_features": 10 ** 9}})
        return meta
    return _edited(_small_model(d / "small.npz"), d / "arch_huge_batchnorm.npz", edit), sio.load


def _npy_header_4tb(d, scale):
    entries = _npz_entries(_small_model(d / "small.npz"))
    entries["0.weight.npy"] = _npy_header((10 ** 12,)) + bytes(16)
    return _write_npz_entries(d / "npy_header_4tb.npz", entries), sio.load_state_dict


def _deep_json(d, scale):
    entries = _npz_entries(_small_model(d / "small.npz"))
    entries[containers.META_KEY + ".npy"] = _meta_bytes(_deep(2_000_000))
    return _write_npz_entries(d / "deep_json.npz", entries), sio.load


def _many_modules(d, scale):
    """A valid-looking Sequential of 280,000 ReLUs (5 MB of JSON) next to a tensor it does not have."""
    def edit(meta):
        meta["architecture"]["children"] += [{"type": "ReLU"}] * int(280_000 * scale)
        meta["architecture"]["children"].append({"type": "Linear", "config": {"in_features": 3, "out_features": 3}})
        return meta
    return _edited(_small_model(d / "small.npz"), d / "many_modules.npz", edit), sio.load


def _many_entries(d, scale):
    """A model file of 20,000 tiny extra entries (about 4 MB of zip directory) that lacks one of its tensors."""
    entries = _npz_entries(_small_model(d / "small.npz"))
    del entries["0.bias.npy"]
    tiny = _npy_bytes(np.zeros(1, np.float32))
    entries.update({f"t{i}.npy": tiny for i in range(int(20_000 * scale))})
    return _write_npz_entries(d / "many_entries.npz", entries), sio.load


def _huge_number(d, scale):
    entries = _npz_entries(_small_model(d / "small.npz"))
    entries[containers.META_KEY + ".npy"] = _meta_bytes('{"format": ' + "9" * 4_000_000 + "}")
    return _write_npz_entries(d / "huge_number.npz", entries), sio.info


def _bad_scalar_kind(d, scale):
    def edit(meta):
        meta["metadata"] = {"__scalar__": "object", "value": 1}
        return meta
    return _edited(_small_model(d / "small.npz"), d / "bad_scalar_kind.npz", edit), sio.info


def _bad_scalar_in_checkpoint(d, scale):
    def edit(meta):
        meta["optimizer"]["state"] = {"__scalar__": "datetime64", "value": "x"}
        return meta
    return _edited(_small_checkpoint(d / "small_ck.npz"), d / "bad_scalar_ckpt.npz", edit), sio.load_checkpoint


def _bad_dtype_marker(d, scale):
    def edit(meta):
        meta["architecture"]["children"][0]["config"]["dtype"] = {"__dtype__": "O"}
        return meta
    return _edited(_small_model(d / "small.npz"), d / "bad_dtype.npz", edit), sio.load


def _zip_bomb(d, scale, reader=sio.load, name="zip_bomb.npz"):
    size = int((2 << 30) * scale)
    entries = _npz_entries(_small_model(d / "small.npz"))
    del entries["0.weight.npy"]
    header = _npy_header((size // 4,))
    deflated, crc = _zeros_deflate(header, len(header) + size // 4 * 4)
    return _zip_with_raw_entry(d / name, entries, "0.weight.npy", deflated, crc,
                               len(header) + size // 4 * 4), reader


def _zip_bomb_info(d, scale):
    return _zip_bomb(d, scale, sio.info, "zip_bomb_info.npz")


def _zip_bomb_lying(d, scale):
    """An entry that declares 16 bytes of data but whose stream inflates to 2 GiB."""
    size = int((2 << 30) * scale)
    entries = _npz_entries(_small_model(d / "small.npz"))
    del entries["0.weight.npy"]
    header = _npy_header((2, 2))
    deflated, crc = _zeros_deflate(header, len(header) + size)
    return _zip_with_raw_entry(d / "zip_bomb_lying.npz", entries, "0.weight.npy", deflated, crc,
                               len(header) + 16), sio.load


def _safetensors_header_length(d, scale):
    return _safetensors_file(d / "st_header_length.safetensors", {}, declared_length=1 << 60), sio.load


def _safetensors_huge_shape(d, scale):
    header = {"__metadata__": {"strided": "{}"},
              "w": {"dtype": "F32", "shape": [10 ** 6, 10 ** 6], "data_offsets": [0, 16]}}
    return _safetensors_file(d / "st_huge_shape.safetensors", header, bytes(16)), sio.load_state_dict


def _safetensors_deep(d, scale):
    path = d / "st_deep.safetensors"
    text = ('{"a": ' + _deep(100_000) + "}").encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text)
    return path, sio.info


def _cifar_bomb(d, scale):
    return _tar_gz_bomb(d / cifar.ARCHIVE, "data_batch_1", int((1 << 30) * scale)), data.read_cifar10


def _idx_many_dims(d, scale):
    path = d / "idx_255_dims"
    path.write_bytes(bytes([0, 0, 0x08, 255]) + struct.pack(">255I", *([1] * 255)) + b"\x00")
    return path, data.read_idx


def _idx_gzip_claims(d, scale):
    path = d / "idx_gzip_claims.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 60000, 1000, 1000) + bytes(4096)))
    return path, data.read_idx


def _idx_gzip_bomb(d, scale):
    """A 1 MB gzip IDX file whose honest header declares 1 GiB of zeros."""
    size = int((1 << 30) * scale)
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", size // 4096, 64, 64)
    deflated, crc = _zeros_deflate(header, len(header) + size // 4096 * 4096)
    path = d / "idx_gzip_bomb.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + deflated
                     + struct.pack("<II", crc, (len(header) + size // 4096 * 4096) & 0xFFFFFFFF))
    return path, data.read_idx


#: name -> crafter(directory, scale) returning (path, reader)
CASES = {
    "arch_huge_linear": _arch_huge_linear,
    "arch_huge_linear_ckpt": _arch_huge_linear_checkpoint,
    "index_lies": _index_and_arch_lie,
    "arch_huge_int": _arch_huge_int,
    "arch_huge_batchnorm": _arch_huge_batchnorm,
    "npy_header_4tb": _npy_header_4tb,
    "deep_json": _deep_json,
    "many_modules": _many_modules,
    "many_entries": _many_entries,
    "huge_number": _huge_number,
    "bad_scalar_kind": _bad_scalar_kind,
    "bad_scalar_ckpt": _bad_scalar_in_checkpoint,
    "bad_dtype": _bad_dtype_marker,
    "zip_bomb": _zip_bomb,
    "zip_bomb_info": _zip_bomb_info,
    "zip_bomb_lying": _zip_bomb_lying,
    "st_header_length": _safetensors_header_length,
    "st_huge_shape": _safetensors_huge_shape,
    "st_deep": _safetensors_deep,
    "cifar_bomb": _cifar_bomb,
    "idx_255_dims": _idx_many_dims,
    "idx_gzip_claims": _idx_gzip_claims,
    "idx_gzip_bomb": _idx_gzip_bomb,
}


def craft(name: str, directory, scale: float = 1.0):
    """Write case ``name`` into its own subdirectory of ``directory``; returns ``(path, reader)``.

    ``scale`` (0 < scale <= 1) shrinks the bombs (2 GiB entries, 1 GiB members), for quick tests.
    """
    if name not in CASES:
        raise ValueError(f"unknown case {name!r}; expected one of {', '.join(CASES)}")
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale!r}")
    d = Path(directory) / name
    d.mkdir(parents=True, exist_ok=True)
    return CASES[name](d, scale)


def run_case(path, reader) -> dict:
    """Open ``path`` with ``reader``; returns the error (or None), seconds and peak traced bytes."""
    outcome = {}

    def attempt():
        start = time.perf_counter()
        try:
            reader(path)
            outcome["error"] = None
        except Exception as exc:  # the benchmark reports whatever happens
            outcome["error"] = exc
        return time.perf_counter() - start

    outcome["seconds"] = attempt()  # timed without tracemalloc, which slows allocations down
    outcome["peak"] = traced_peak(attempt)
    return outcome


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="strided bench hostile-files", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="shrink the bombs (0 < scale <= 1; default 1)")
    p.add_argument("--case", action="append", choices=tuple(CASES), help="run only these cases")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = p.parse_args(argv)
    print(machine())
    rows, failures = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.case or CASES:
            path, reader = craft(name, tmp, args.scale)
            size = path.stat().st_size
            out = run_case(path, reader)
            exc = out["error"]
            ok = (isinstance(exc, sio.FileFormatError) and str(path) in str(exc)
                  and out["seconds"] < TIME_TARGET and out["peak"] < MEMORY_TARGET and size <= SIZE_LIMIT)
            failures += not ok
            what = "no error" if exc is None else f"{type(exc).__name__}: {str(exc).replace(str(path), '<file>')}"
            rows.append([name, f"{size / 1024:.1f} KB", f"{out['seconds'] * 1000:.1f} ms",
                         f"{out['peak'] / _MIB:.2f} MiB", "ok" if ok else "MISSED", what[:110]])
    print(table(["case", "file", "time", "peak memory", "target", "error"], rows, markdown=args.markdown))
    print(f"targets: a FileFormatError naming the file in < {TIME_TARGET} s with < {MEMORY_TARGET >> 20} MiB "
          f"of extra memory, for files of at most {SIZE_LIMIT >> 20} MB; {failures} missed")
    return 1 if failures else 0
