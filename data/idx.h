// IDX files (the MNIST family's format, gzipped or not): two zero bytes, a type byte, the
// number of dimensions, one big-endian int32 per dimension, then the values row-major and
// big-endian. Types: 0x08 unsigned byte, 0x09 signed byte, 0x0B int16, 0x0C int32,
// 0x0D float32, 0x0E float64.
//
// The file is untrusted: the header's sizes are checked against the file's length (for gzip,
// against the most its compressed length can inflate to) and against `max_bytes` before
// anything is allocated, and the content must end exactly where the header says. Any bad file
// is an IoError naming the path and the expected and actual sizes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace nn::data {

enum class IdxType : uint8_t {
  UInt8 = 0x08,
  Int8 = 0x09,
  Int16 = 0x0B,
  Int32 = 0x0C,
  Float32 = 0x0D,
  Float64 = 0x0E,
};
size_t idx_type_size(IdxType type);
const char* idx_type_name(IdxType type);  // "ubyte", "float32", ...

// The default limit on an IDX array's value bytes: far above any real data set, far below what
// a corrupt header can claim.
constexpr uint64_t kMaxIdxBytes = uint64_t(16) << 30;

struct IdxArray {
  IdxType type = IdxType::UInt8;
  Shape shape;                       // the header's dimensions
  std::vector<unsigned char> bytes;  // the values, row-major, in the host's byte order
  std::string source;                // the file it came from (for messages), may be empty

  int64_t numel() const { return shape_numel(shape); }
  // The values as a CPU tensor of `dtype` (any dtype; integers convert exactly to int64).
  Tensor to_tensor(Dtype dtype) const;
};

// Reads an IDX file, gzipped or not. Throws IoError (see above).
IdxArray read_idx(const std::string& path, uint64_t max_bytes = kMaxIdxBytes);

// Writes `array` as an IDX file (gzipped when `gzip`). Throws ValueError when its bytes do not
// match its shape and type, IoError when the file cannot be written.
void write_idx(const std::string& path, const IdxArray& array, bool gzip = false);

// Images from an unsigned-byte array [N, H, W]: float32 scaled to [0, 1], shaped [N, 1, H, W]
// (or [N, H, W] without `channel_dim`). Throws IoError naming the source for another type or
// rank.
Tensor idx_images(const IdxArray& array, bool channel_dim = true);

// Class labels from a 1-D integer array [N]: int64 [N]. Throws IoError for another rank or a
// floating type, and for a label outside [0, num_classes) when num_classes > 0.
Tensor idx_labels(const IdxArray& array, int64_t num_classes = 0);

}  // namespace nn::data
