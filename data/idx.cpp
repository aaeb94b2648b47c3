// IDX reading: header first, then every size is checked before the one allocation of the
// values, which are read straight into place and byte-swapped there on little-endian hosts.
#include "data/idx.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "data/file_reader.h"
#include "kernels/ops.h"

namespace nn::data {
namespace {

constexpr size_t kIdxHeaderBytes = 4;  // 0, 0, type, ndim
constexpr size_t kIdxDimBytes = 4;     // each dimension: a big-endian int32

bool valid_type(unsigned char code) {
  switch (code) {
    case 0x08:
    case 0x09:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x0E:
      return true;
    default:
      return false;
  }
}

// Calls f.template operator()<T>() with T the C++ type of an IDX type.
template <class F>
decltype(auto) visit_idx(IdxType type, F&& f) {
  switch (type) {
    case IdxType::UInt8:
      return f.template operator()<uint8_t>();
    case IdxType::Int8:
      return f.template operator()<int8_t>();
    case IdxType::Int16:
      return f.template operator()<int16_t>();
    case IdxType::Int32:
      return f.template operator()<int32_t>();
    case IdxType::Float32:
      return f.template operator()<float>();
    case IdxType::Float64:
      return f.template operator()<double>();
  }
  NN_THROW(ValueError, "IDX: unknown type code ", int(type));
}

// IDX stores values big-endian; swap each `width`-byte value in place on a little-endian host.
void big_endian_in_place(unsigned char* p, size_t count, size_t width) {
  if constexpr (std::endian::native == std::endian::big) return;
  if (width == 1) return;
  for (size_t i = 0; i < count; ++i, p += width) std::reverse(p, p + width);
}

uint32_t read_be32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

std::string describe_source(const IdxArray& a) {
  return a.source.empty() ? std::string("an IDX array") : "'" + a.source + "'";
}

void check_bytes(const IdxArray& a, const char* what) {
  const uint64_t want = uint64_t(a.numel()) * idx_type_size(a.type);
  NN_CHECK(a.bytes.size() == want, ValueError, what, ": ", describe_source(a), " of shape ",
           shape_str(a.shape), " and type ", idx_type_name(a.type), " needs ", want, " bytes, has ",
           a.bytes.size());
}

}  // namespace

size_t idx_type_size(IdxType type) {
  return visit_idx(type, []<class T>() { return sizeof(T); });
}

const char* idx_type_name(IdxType type) {
  switch (type) {
    case IdxType::UInt8:
      return "ubyte";
    case IdxType::Int8:
      return "sbyte";
    case IdxType::Int16:
      return "int16";
    case IdxType::Int32:
      return "int32";
    case IdxType::Float32:
      return "float32";
    case IdxType::Float64:
      return "float64";
  }
  return "?";
}

IdxArray read_idx(const std::string& path, uint64_t max_bytes) {
  FileReader in(path);
  unsigned char head[kIdxHeaderBytes];
  in.read_exact(head, sizeof head, "IDX header");
  NN_CHECK(head[0] == 0 && head[1] == 0 && valid_type(head[2]), IoError, "'", path,
           "' is not an IDX file: magic bytes are ", int(head[0]), " ", int(head[1]), " ",
           int(head[2]), ", expected 0 0 and a type code in {8, 9, 11, 12, 13, 14}");
  IdxArray out;
  out.source = path;
  out.type = static_cast<IdxType>(head[2]);
  const size_t ndim = head[3];
  const size_t elem = idx_type_size(out.type);

  std::vector<unsigned char> dims(ndim * kIdxDimBytes);
  if (ndim > 0) in.read_exact(dims.data(), dims.size(), "IDX dimensions");
  for (size_t d = 0; d < ndim; ++d) {
    const uint32_t n = read_be32(&dims[d * kIdxDimBytes]);
    NN_CHECK(n <= uint32_t(std::numeric_limits<int32_t>::max()), IoError, "'", path,
             "': dimension ", d, " is ", int32_t(n), ", expected a non-negative size");
    out.shape.push_back(int64_t(n));
  }
  const std::string header =
      detail::concat("its header (", shape_str(out.shape), " ", idx_type_name(out.type), ")");
  // The value bytes the header announces; dimensions whose product overflows 64 bits are
  // caught here, before any arithmetic on the total.
  uint64_t value_bytes = elem;
  bool overflow = false;
  for (int64_t n : out.shape)
    overflow |= __builtin_mul_overflow(value_bytes, uint64_t(n), &value_bytes);
  if (std::find(out.shape.begin(), out.shape.end(), 0) != out.shape.end()) {
    value_bytes = 0;
    overflow = false;
  }
  const uint64_t header_bytes = kIdxHeaderBytes + ndim * kIdxDimBytes;
  if (!in.gzipped()) {
    const bool fits =
        !overflow && in.file_size() >= header_bytes && value_bytes <= in.file_size() - header_bytes;
    NN_CHECK(fits, IoError, "'", path, "' is truncated or corrupt: ", header, " needs ",
             overflow ? std::string("more than 2^64") : std::to_string(header_bytes + value_bytes),
             " bytes, the file has ", in.file_size());
    NN_CHECK(header_bytes + value_bytes == in.file_size(), IoError, "'", path, "' has ",
             in.file_size() - header_bytes - value_bytes, " trailing bytes: ", header, " needs ",
             header_bytes + value_bytes, " bytes, the file has ", in.file_size());
  }
  NN_CHECK(!overflow && value_bytes <= max_bytes, IoError, "'", path, "': ", header, " claims ",
           overflow ? std::string("more than 2^64") : std::to_string(value_bytes),
           " value bytes, more than the reader's limit of ", max_bytes);
  NN_CHECK(value_bytes <= in.max_content_bytes(), IoError, "'", path, "' is corrupt: ", header,
           " claims ", value_bytes, " value bytes, more than the at most ", in.max_content_bytes(),
           " bytes that its ", in.file_size(), " gzipped bytes can inflate to");
  out.bytes.resize(value_bytes);
  if (value_bytes > 0) in.read_exact(out.bytes.data(), value_bytes, "IDX values");
  NN_CHECK(in.at_end(), IoError, "'", path, "' has trailing data after the ", value_bytes,
           " value bytes that ", header, " announces");
  big_endian_in_place(out.bytes.data(), value_bytes / elem, elem);
  return out;
}

void write_idx(const std::string& path, const IdxArray& array, bool gzip) {
  check_bytes(array, "write_idx");
  NN_CHECK(array.shape.size() <= 255, ValueError, "write_idx: ", array.shape.size(),
           " dimensions, IDX holds at most 255");
  std::string buf;
  buf.reserve(kIdxHeaderBytes + array.shape.size() * kIdxDimBytes + array.bytes.size());
  buf.push_back(0);
  buf.push_back(0);
  buf.push_back(static_cast<char>(array.type));
  buf.push_back(static_cast<char>(array.shape.size()));
  for (int64_t n : array.shape) {
    NN_CHECK(n >= 0 && n <= std::numeric_limits<int32_t>::max(), ValueError, "write_idx: size ", n,
             " in shape ", shape_str(array.shape), " does not fit IDX's int32");
    for (int shift = 24; shift >= 0; shift -= 8) buf.push_back(static_cast<char>(n >> shift));
  }
  const size_t at = buf.size();
  buf.append(reinterpret_cast<const char*>(array.bytes.data()), array.bytes.size());
  big_endian_in_place(reinterpret_cast<unsigned char*>(buf.data() + at), size_t(array.numel()),
                      idx_type_size(array.type));
  write_file(path, buf, gzip);
}

Tensor IdxArray::to_tensor(Dtype dtype) const {
  check_bytes(*this, "IdxArray::to_tensor");
  const bool floating_src = type == IdxType::Float32 || type == IdxType::Float64;
  // Convert on the host into the nearest of float32 / float64 / int64, then let the op table
  // handle any other dtype.
  Dtype direct = dtype;
  if (dtype != Dtype::Float32 && dtype != Dtype::Float64 && dtype != Dtype::Int64)
    direct = floating_src ? Dtype::Float64 : Dtype::Int64;
  Tensor out = empty(shape, {direct});
  const int64_t n = numel();
  visit_idx(type, [&]<class S>() {
    const auto* src = reinterpret_cast<const S*>(bytes.data());
    auto convert = [&]<class D>() {
      D* dst = out.data<D>();
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<D>(src[i]);
    };
    if (direct == Dtype::Float32)
      convert.template operator()<float>();
    else if (direct == Dtype::Float64)
      convert.template operator()<double>();
    else
      convert.template operator()<int64_t>();
  });
  return direct == dtype ? out : out.to(dtype);
}

Tensor idx_images(const IdxArray& array, bool channel_dim) {
  check_bytes(array, "idx_images");
  NN_CHECK(array.type == IdxType::UInt8 && array.shape.size() == 3, IoError,
           "idx_images: ", describe_source(array), " holds ", shape_str(array.shape), " ",
           idx_type_name(array.type), " values, expected ubyte images [N, H, W]");
  const int64_t n = array.shape[0], h = array.shape[1], w = array.shape[2];
  Tensor out = empty(channel_dim ? Shape{n, 1, h, w} : Shape{n, h, w});
  float* dst = out.data<float>();
  constexpr float kScale = 1.0f / 255.0f;
  for (size_t i = 0; i < array.bytes.size(); ++i) dst[i] = float(array.bytes[i]) * kScale;
  return out;
}

Tensor idx_labels(const IdxArray& array, int64_t num_classes) {
  const bool integer = array.type != IdxType::Float32 && array.type != IdxType::Float64;
  NN_CHECK(integer && array.shape.size() == 1, IoError, "idx_labels: ", describe_source(array),
           " holds ", shape_str(array.shape), " ", idx_type_name(array.type),
           " values, expected integer labels [N]");
  Tensor out = array.to_tensor(Dtype::Int64);
  if (num_classes > 0) {
    const int64_t* p = out.data<int64_t>();
    for (int64_t i = 0; i < out.numel(); ++i)
      NN_CHECK(p[i] >= 0 && p[i] < num_classes, IoError, "idx_labels: ", describe_source(array),
               " has label ", p[i], " at index ", i, ", expected a class in [0, ", num_classes,
               ")");
  }
  return out;
}

}  // namespace nn::data
