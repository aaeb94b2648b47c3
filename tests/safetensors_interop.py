#!/usr/bin/env python3
"""Interop between nn::io's safetensors files and the Python `safetensors` library.

    safetensors_interop.py <nn_safetensors_tool> <work dir>

(a) nn writes a file (`nn_safetensors_tool write`); the Python library reads it and every name,
    dtype, shape, value and the metadata are checked, as is the header layout.
(b) the Python library writes files (safetensors.numpy.save_file for the dtypes numpy has, the
    raw serialize_file for bfloat16, which numpy lacks); nn reads them (`nn_safetensors_tool
    dump`) and what it loaded is compared value for value with what was written.
Needs the `safetensors` and `numpy` pip packages. Exits non-zero with a message on a mismatch.
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import safetensors
from safetensors import safe_open
from safetensors.numpy import save_file


def agreed_values(k, n):
    """The values safetensors_tool.cpp uses: exact in every floating dtype, bfloat16 included."""
    i = np.arange(n, dtype=np.int64)
    return ((i * 7 + k * 3) % 23 - 11) / 4.0


def agreed(k, shape, dtype):
    return agreed_values(k, int(np.prod(shape, dtype=np.int64))).reshape(shape).astype(dtype)


def fail(message):
    sys.exit("safetensors interop: " + message)


def check_equal(what, got, want):
    if got != want:
        fail(f"{what}: got {got!r}, expected {want!r}")


def check_array(what, got, want):
    check_equal(what + " dtype", got.dtype, want.dtype)
    check_equal(what + " shape", tuple(got.shape), tuple(want.shape))
    if not np.array_equal(got, want):
        fail(f"{what}: values differ\n got  {got!r}\n want {want!r}")


# Keep in step with write_reference() in safetensors_tool.cpp: name -> (file dtype, array).
# bfloat16 arrays are given as float32 values (numpy has no bfloat16).
EXPECTED_FROM_NN = {
    "f32.t": ("F32", agreed(0, (2, 3), np.float32)),
    "f64": ("F64", agreed(1, (4,), np.float64)),
    "bf16": ("BF16", agreed(2, (2, 2), np.float32)),
    "f16": ("F16", agreed(3, (3,), np.float16)),
    "i64": ("I64", np.array([[-2000000000014, -1000000000007], [0, 1000000000007]], np.int64)),
    "bool": ("BOOL", np.array([True, False, False, True, True])),
    "scalar": ("F32", agreed(4, (), np.float32)),
    "empty": ("F32", np.zeros((0, 3), np.float32)),
}


def bf16_bytes_to_float32(data, shape):
    bits = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
    return bits.view(np.float32).reshape(shape)


def float32_to_bf16_bits(values):
    """Exact for the agreed values, which have short mantissas: the top half of each float32."""
    return (np.asarray(values, np.float32).view(np.uint32) >> 16).astype("<u2")


def read_from_nn(tool, work):
    path = os.path.join(work, "from_nn.safetensors")
    subprocess.run([tool, "write", path], check=True)

    # The layout the reference writer produces: padded header, data in the order nn was given.
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    check_equal("header length is a multiple of 8", n % 8, 0)
    header = json.loads(raw[8 : 8 + n])
    check_equal("header order", list(header), ["__metadata__"] + list(EXPECTED_FROM_NN))

    # The library's own parser (it validates offsets, sizes and coverage as it goes).
    entries = dict(safetensors.deserialize(raw))
    check_equal("tensor names", sorted(entries), sorted(EXPECTED_FROM_NN))
    with safe_open(path, framework="numpy") as f:
        check_equal("metadata", f.metadata(), {"epoch": "7", "producer": "nn"})
        for name, (dtype, want) in EXPECTED_FROM_NN.items():
            entry = entries[name]
            check_equal(name + " file dtype", entry["dtype"], dtype)
            check_equal(name + " shape", tuple(entry["shape"]), want.shape)
            if dtype == "BF16":
                got = bf16_bytes_to_float32(bytes(entry["data"]), want.shape)
            else:
                got = f.get_tensor(name)
            check_array(name, got, want)


def parse_dump(text):
    metadata, tensors = {}, {}
    for line in text.splitlines():
        fields = line.split("\t")
        if fields[0] == "meta":
            metadata[fields[1]] = fields[2]
            continue
        _, name, dtype, shape, values = fields
        shape = tuple(int(d) for d in shape.split(",")) if shape else ()
        numbers = values.split()
        if dtype in ("int64", "bool"):
            arr = np.array([int(v) for v in numbers], np.int64)
        else:
            arr = np.array([float(v) for v in numbers], np.float64)
        tensors[name] = (dtype, arr.reshape(shape))
    return metadata, tensors


def nn_load(tool, path):
    out = subprocess.run([tool, "dump", path], check=True, capture_output=True, text=True)
    return parse_dump(out.stdout)


def check_nn_loaded(label, loaded, expected):
    """expected: name -> (nn dtype, array of the values nn must hold)."""
    check_equal(label + " names", sorted(loaded), sorted(expected))
    for name, (dtype, want) in expected.items():
        got_dtype, got = loaded[name]
        check_equal(f"{label} {name} dtype", got_dtype, dtype)
        want64 = want.astype(np.int64 if dtype in ("int64", "bool") else np.float64)
        check_array(f"{label} {name}", got, want64)


def raw_spec(dtype, shape, array):
    """A tensor as raw bytes for safetensors.serialize_file, across the library's API versions."""
    if hasattr(safetensors, "TensorSpec"):  # 0.8 and later take a pointer and a length
        return safetensors.TensorSpec(
            dtype=dtype, shape=list(shape), data_ptr=array.ctypes.data, data_len=array.nbytes
        )
    return {"dtype": dtype, "shape": list(shape), "data": array.tobytes()}


def write_for_nn(tool, work):
    arrays = {
        "f32": agreed(0, (2, 3), np.float32),
        "f64": agreed(1, (4,), np.float64),
        "f16": agreed(2, (3, 1), np.float16),
        "i64": np.array([-(2**62), -1, 0, 2**62 + 5], np.int64).reshape(2, 2),
        "bool": np.array([[True, False, True]]),
        "i32": np.array([-(2**31), 7, 2**31 - 1], np.int32),
        "u8": np.array([0, 200, 255], np.uint8),
        "scalar": agreed(3, (), np.float64),
        "empty": np.zeros((2, 0), np.float32),
    }
    path = os.path.join(work, "from_numpy.safetensors")
    save_file(arrays, path, metadata={"epoch": "5", "producer": "python"})
    metadata, loaded = nn_load(tool, path)
    check_equal("from_numpy metadata", metadata, {"epoch": "5", "producer": "python"})
    nn_dtype = {"float32": "float32", "float64": "float64", "float16": "float16",
                "int64": "int64", "bool": "bool", "int32": "int64", "uint8": "int64"}
    check_nn_loaded("from_numpy", loaded,
                    {k: (nn_dtype[a.dtype.name], a) for k, a in arrays.items()})

    # bfloat16 from its raw bits, next to a float32 tensor (the writer orders them by dtype).
    bf16 = agreed(4, (2, 3), np.float32)
    bits = np.ascontiguousarray(float32_to_bf16_bits(bf16))
    f32 = agreed(5, (2,), np.float32)
    path = os.path.join(work, "from_raw.safetensors")
    specs = {
        "bf16": raw_spec("bfloat16", bf16.shape, bits),
        "f32": raw_spec("float32", f32.shape, f32),
    }
    safetensors.serialize_file(specs, path)
    metadata, loaded = nn_load(tool, path)
    check_equal("from_raw metadata", metadata, {})
    check_nn_loaded("from_raw", loaded, {"bf16": ("bfloat16", bf16), "f32": ("float32", f32)})


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    tool, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    read_from_nn(tool, work)
    write_for_nn(tool, work)
    versions = f"safetensors {safetensors.__version__}, numpy {np.__version__}"
    print(f"safetensors interop: OK ({versions})")


if __name__ == "__main__":
    main()
