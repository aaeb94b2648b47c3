// Checkpoints in the safetensors format, readable by the Python `safetensors` library and able
// to read its files: an 8-byte little-endian header length N, N bytes of JSON (padded with
// spaces to a multiple of 8), then the raw little-endian data of every tensor. The header maps
// each name to {"dtype", "shape", "data_offsets": [begin, end]} (byte offsets into the data
// section) and may hold "__metadata__", a string -> string map (the epoch, the optimizer's
// settings, anything a resumed run needs).
//
// Dtypes (safetensors name -> nn): F32, F64, BF16, F16, I64, BOOL map one to one. On load the
// integer types I8, I16, I32, U8, U16, U32 are widened to int64 (lossless; saving writes I64);
// every other dtype (U64, F8_*, C64, ...) is an IoError naming it and the tensor.
//
// Loading trusts nothing in the file: before any tensor is allocated it checks the header length
// (at most kMaxSafetensorsHeader and inside the file), the JSON, every entry (a known dtype,
// non-negative integer sizes whose product fits in int64, begin <= end, end inside the data
// section, end - begin == numel * dtype size), and that the entries tile the data section exactly,
// as the reference implementation requires: no overlaps, no holes, no trailing bytes. Unknown
// fields of an entry are ignored. Every failure is an IoError naming the file and, where there
// is one, the tensor. Big-endian hosts are refused at compile time.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"

namespace nn::io {

// Name -> tensor pairs in a meaningful order (the order given on save, file order on load).
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using Metadata = std::map<std::string, std::string>;

// The reference implementation's cap on the JSON header (bytes).
inline constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

struct SafetensorsFile {
  NamedTensors tensors;  // in the order of their data in the file
  Metadata metadata;     // "__metadata__"; empty when the file has none

  const Tensor* find(const std::string& name) const;  // nullptr when absent
};

// Writes `tensors` (any device, any strides, any of the six dtypes; copied to the host one at a
// time) with their data in the order given, and `metadata` under "__metadata__" (omitted when
// empty), atomically (core/atomic_file.h). Unlike the reference writer, which sorts tensors by
// dtype size, nn keeps the caller's order, so a tensor after an odd-sized one may start at an
// unaligned offset; readers that copy the data (nn, safetensors.numpy) do not care.
// ValueError for an undefined tensor, an empty, duplicate or reserved ("__metadata__") name, or a
// name or metadata that is not valid UTF-8; IoError when the file cannot be written. `path` is
// untouched on any failure.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const Metadata& metadata = {});

// Reads every tensor onto `device` (contiguous, dtypes as above; staged through host memory one
// tensor at a time for a GPU) and the metadata. Throws IoError for a missing, unreadable or
// malformed file, DeviceError for an unusable device.
SafetensorsFile load_safetensors(const std::string& path, Device device = Device::cpu());

// The metadata alone, after the same header checks as load_safetensors; reads no tensor data.
Metadata read_safetensors_metadata(const std::string& path);

}  // namespace nn::io
