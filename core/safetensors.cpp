// safetensors save and load. The header is built and parsed with nlohmann/json (ordered, so the
// JSON lists tensors in data order as the reference writer does); the data moves with plain
// write()/pread() so that a multi-gigabyte checkpoint is never held twice in memory.
#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>
#include <system_error>
#include <tuple>
#include <unordered_set>

#include "core/atomic_file.h"
#include "core/error.h"

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; nn reads and writes it as raw host memory, so "
              "big-endian hosts are not supported");

namespace nn::io {

namespace {

using Json = nlohmann::ordered_json;

constexpr size_t kLengthBytes = 8;  // the header length field
constexpr size_t kHeaderAlign = 8;  // the reference pads the header so the data starts aligned
constexpr const char* kMetadataKey = "__metadata__";
// A valid header nests three levels: the top object (depth 0), an entry or the metadata (1), and
// a shape or data_offsets array (2). Anything deeper is malformed; refusing it early keeps a
// hostile header from building a deep tree.
constexpr int kMaxHeaderDepth = 2;
// pread may transfer less than asked (and at most ~2 GiB at once on Linux): ask in chunks.
constexpr size_t kMaxReadChunk = size_t(1) << 30;

// ---- dtypes ---------------------------------------------------------------------------------

using WidenFn = void (*)(const unsigned char* src, int64_t* dst, int64_t n);

template <class T>
void widen_to_int64(const unsigned char* src, int64_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, src + i * int64_t(sizeof(T)), sizeof(T));
    dst[i] = static_cast<int64_t>(v);
  }
}

struct FileDtype {
  std::string_view name;  // as safetensors spells it
  size_t size;            // bytes per element in the file
  Dtype dtype;            // what nn loads it as
  WidenFn widen;  // converts file elements to int64; nullptr when the bytes load as they are
};

constexpr FileDtype kFileDtypes[] = {
    {"F32", 4, Dtype::Float32, nullptr},
    {"F64", 8, Dtype::Float64, nullptr},
    {"BF16", 2, Dtype::BFloat16, nullptr},
    {"F16", 2, Dtype::Float16, nullptr},
    {"I64", 8, Dtype::Int64, nullptr},
    {"BOOL", 1, Dtype::Bool, nullptr},
    {"I8", 1, Dtype::Int64, &widen_to_int64<int8_t>},
    {"I16", 2, Dtype::Int64, &widen_to_int64<int16_t>},
    {"I32", 4, Dtype::Int64, &widen_to_int64<int32_t>},
    {"U8", 1, Dtype::Int64, &widen_to_int64<uint8_t>},
    {"U16", 2, Dtype::Int64, &widen_to_int64<uint16_t>},
    {"U32", 4, Dtype::Int64, &widen_to_int64<uint32_t>},
};
constexpr const char* kKnownDtypes =
    "F32, F64, BF16, F16, I64, BOOL, or I8, I16, I32, U8, U16, U32 "
    "(loaded as int64)";

const FileDtype* find_file_dtype(std::string_view name) {
  for (const FileDtype& d : kFileDtypes)
    if (d.name == name) return &d;
  return nullptr;
}

// The six native dtypes come first in kFileDtypes, one per nn dtype.
std::string_view file_dtype_name(Dtype dtype) {
  for (const FileDtype& d : kFileDtypes)
    if (d.dtype == dtype && d.widen == nullptr) return d.name;
  NN_THROW(DtypeError, "save_safetensors: dtype ", dtype_name(dtype), " has no safetensors name");
}

// ---- reading --------------------------------------------------------------------------------

// Every load error names the function and the file.
template <class... Args>
[[noreturn]] void fail(const char* op, const std::string& path, const Args&... args) {
  NN_THROW(IoError, op, ": '", path, "': ", args...);
}

class InputFile {
 public:
  InputFile(const std::string& path, const char* op) : path_(path), op_(op) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail(op_, path_, "cannot open: ", std::system_category().message(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      int err = errno;
      ::close(fd_);
      fail(op_, path_, "cannot stat: ", std::system_category().message(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd_);
      fail(op_, path_, "is not a regular file");
    }
    size_ = uint64_t(st.st_size);
  }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile() { ::close(fd_); }

  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  const char* op() const { return op_; }

  // Reads exactly n bytes at `offset`; `what` says what they were for the error message.
  void read_at(void* dst, uint64_t n, uint64_t offset, const std::string& what) const {
    char* p = static_cast<char*>(dst);
    while (n > 0) {
      ssize_t got = ::pread(fd_, p, size_t(std::min<uint64_t>(n, kMaxReadChunk)), off_t(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0)
        fail(op_, path_, "reading ", what, " failed: ", std::system_category().message(errno));
      // The size was checked against fstat: a short file now means it changed under us.
      if (got == 0) fail(op_, path_, "unexpected end of file while reading ", what);
      p += got;
      n -= uint64_t(got);
      offset += uint64_t(got);
    }
  }

 private:
  std::string path_;
  const char* op_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

struct Entry {
  std::string name;
  const FileDtype* dtype = nullptr;
  Shape shape;
  int64_t numel = 0;
  uint64_t begin = 0;  // byte offsets into the data section
  uint64_t end = 0;
  size_t index = 0;  // position in the header: orders empty tensors that share an offset
};

struct Header {
  std::vector<Entry> entries;  // sorted by data offset
  Metadata metadata;
  uint64_t data_start = 0;  // file offset of the data section
};

Json parse_json(const InputFile& f, const std::string& text) {
  std::unordered_set<std::string> names;
  auto guard = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) &&
        depth > kMaxHeaderDepth)
      fail(f.op(), f.path(), "the header nests deeper than a safetensors header can (", depth + 1,
           " levels)");
    // The parser would keep only the last of two equal keys; a checkpoint must not be ambiguous.
    if (event == Json::parse_event_t::key && depth == 1 &&
        !names.insert(parsed.get<std::string>()).second)
      fail(f.op(), f.path(), "the header names '", parsed.get<std::string>(), "' twice");
    return true;
  };
  try {
    return Json::parse(text, guard);
  } catch (const Json::exception& e) {
    fail(f.op(), f.path(), "the header is not valid JSON: ", e.what());
  }
}

Metadata parse_metadata(const InputFile& f, const Json& value) {
  Metadata out;
  if (value.is_null()) return out;
  if (!value.is_object()) fail(f.op(), f.path(), "__metadata__ is not a JSON object of strings");
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string())
      fail(f.op(), f.path(), "__metadata__ value of '", key, "' is ", v.type_name(),
           ", expected a string");
    out.emplace(key, v.get<std::string>());
  }
  return out;
}

// A non-negative integer that fits in int64 (sizes) or uint64 (offsets), else an IoError.
uint64_t json_count(const InputFile& f, const std::string& name, const char* field, const Json& v,
                    uint64_t max) {
  if (v.is_number_unsigned() && v.get<uint64_t>() <= max) return v.get<uint64_t>();
  // nlohmann counts unsigned numbers as integers too: ask about unsigned first.
  const char* why = v.is_number_unsigned()  ? "is too large"
                    : v.is_number_integer() ? "is negative"
                    : v.is_number()         ? "is not an integer"
                                            : "is not a number";
  fail(f.op(), f.path(), "tensor '", name, "': ", field, " value ", v.dump(), " ", why);
}

Entry parse_entry(const InputFile& f, const std::string& name, const Json& value,
                  uint64_t data_len) {
  auto bad = [&](const auto&... args) {
    return IoError(detail::concat(f.op(), ": '", f.path(), "': tensor '", name, "': ", args...));
  };
  if (!value.is_object()) throw bad("the entry is ", value.type_name(), ", expected a JSON object");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!value.contains(key)) throw bad("the entry has no \"", key, "\"");
  Entry e;
  e.name = name;

  const Json& dtype = value["dtype"];
  if (!dtype.is_string()) throw bad("dtype is ", dtype.dump(), ", expected a string");
  e.dtype = find_file_dtype(dtype.get<std::string>());
  if (!e.dtype)
    throw bad("dtype ", dtype.dump(), " is not supported, expected one of ", kKnownDtypes);

  const Json& shape = value["shape"];
  if (!shape.is_array()) throw bad("shape is ", shape.dump(), ", expected an array of sizes");
  // The strides of even an empty tensor multiply the non-zero sizes, so they must fit as well.
  constexpr auto kMaxI64 = uint64_t(std::numeric_limits<int64_t>::max());
  uint64_t dense = 1;
  bool has_zero = false;
  for (const Json& s : shape) {
    uint64_t d = json_count(f, name, "shape", s, kMaxI64);
    has_zero = has_zero || d == 0;
    if (d > 1 && dense > kMaxI64 / d)
      throw bad("shape ", shape.dump(), " has more elements than int64 holds");
    dense *= std::max<uint64_t>(d, 1);
    e.shape.push_back(int64_t(d));
  }
  e.numel = has_zero ? 0 : int64_t(dense);

  const Json& offsets = value["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    throw bad("data_offsets is ", offsets.dump(), ", expected [begin, end]");
  e.begin = json_count(f, name, "data_offsets", offsets[0], std::numeric_limits<uint64_t>::max());
  e.end = json_count(f, name, "data_offsets", offsets[1], std::numeric_limits<uint64_t>::max());
  if (e.begin > e.end) throw bad("data_offsets ", offsets.dump(), " has begin after end");
  if (e.end > data_len)
    throw bad("data_offsets ", offsets.dump(), " end past the data section of ", data_len,
              " bytes (a truncated file?)");
  if (uint64_t(e.numel) > kMaxI64 / e.dtype->size ||
      uint64_t(e.numel) * e.dtype->size != e.end - e.begin)
    throw bad("data_offsets ", offsets.dump(), " span ", e.end - e.begin, " bytes, but shape ",
              shape_str(e.shape), " of ", e.dtype->name, " needs ", e.numel, " x ", e.dtype->size);
  return e;
}

Header read_header(const InputFile& f) {
  if (f.size() < kLengthBytes)
    fail(f.op(), f.path(), "the file has ", f.size(), " bytes, too short for the ", kLengthBytes,
         "-byte header length");
  unsigned char len_bytes[kLengthBytes];
  f.read_at(len_bytes, kLengthBytes, 0, "the header length");
  uint64_t len = 0;
  for (size_t i = kLengthBytes; i-- > 0;) len = (len << 8) | len_bytes[i];
  if (len > kMaxSafetensorsHeader)
    fail(f.op(), f.path(), "header length ", len, " exceeds the limit of ", kMaxSafetensorsHeader,
         " bytes (corrupt file?)");
  if (len > f.size() - kLengthBytes)
    fail(f.op(), f.path(), "header length ", len, " runs past the end of the file (",
         f.size() - kLengthBytes, " bytes follow the length)");

  std::string text(size_t(len), '\0');
  f.read_at(text.data(), len, kLengthBytes, "the header");
  Json json = parse_json(f, text);
  if (!json.is_object())
    fail(f.op(), f.path(), "the header is ", json.type_name(), ", expected a JSON object");

  Header h;
  h.data_start = kLengthBytes + len;
  uint64_t data_len = f.size() - h.data_start;
  for (const auto& [key, value] : json.items()) {
    if (key == kMetadataKey) {
      h.metadata = parse_metadata(f, value);
      continue;
    }
    h.entries.push_back(parse_entry(f, key, value, data_len));
    h.entries.back().index = h.entries.size() - 1;
  }

  // The entries must tile the data section: each begins where the previous one ended.
  std::sort(h.entries.begin(), h.entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.index) < std::tie(b.begin, b.end, b.index);
  });
  uint64_t covered = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : h.entries) {
    if (e.begin < covered)
      fail(f.op(), f.path(), "tensor '", e.name, "' (bytes ", e.begin, "..", e.end,
           ") overlaps tensor '", prev->name, "' (bytes ", prev->begin, "..", prev->end, ")");
    if (e.begin > covered)
      fail(f.op(), f.path(), "bytes ", covered, "..", e.begin,
           " of the data section before tensor '", e.name, "' belong to no tensor");
    covered = e.end;
    prev = &e;
  }
  if (covered != data_len)
    fail(f.op(), f.path(), "the data section has ", data_len, " bytes but its tensors cover ",
         covered, " (bytes after the last tensor)");
  return h;
}

Tensor read_tensor(const InputFile& f, const Header& h, const Entry& e) {
  Tensor t = empty(e.shape, {e.dtype->dtype, Device::cpu()});
  uint64_t nbytes = e.end - e.begin;
  if (nbytes == 0) return t;
  std::string what = "tensor '" + e.name + "'";
  if (e.dtype->widen) {
    std::vector<unsigned char> raw(nbytes);
    f.read_at(raw.data(), nbytes, h.data_start + e.begin, what);
    e.dtype->widen(raw.data(), static_cast<int64_t*>(t.data_ptr()), e.numel);
    return t;
  }
  f.read_at(t.data_ptr(), nbytes, h.data_start + e.begin, what);
  if (e.dtype->dtype == Dtype::Bool) {
    // A byte other than 0 or 1 in a C++ bool is undefined behaviour; numpy reads it as true.
    auto* p = static_cast<unsigned char*>(t.data_ptr());
    for (uint64_t i = 0; i < nbytes; ++i) p[i] = p[i] != 0;
  }
  return t;
}

}  // namespace

const Tensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const Metadata& metadata) {
  constexpr const char* op = "save_safetensors";
  Json header = Json::object();
  if (!metadata.empty()) {
    Json meta = Json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header[kMetadataKey] = std::move(meta);
  }
  std::unordered_set<std::string_view> names;
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    NN_CHECK(!name.empty(), ValueError, op, ": '", path, "': tensor #", i, " has an empty name");
    NN_CHECK(name != kMetadataKey, ValueError, op, ": '", path, "': tensor #", i,
             " is named __metadata__, which safetensors reserves for the metadata");
    NN_CHECK(names.insert(name).second, ValueError, op, ": '", path, "': the name '", name,
             "' is given twice");
    NN_CHECK(t.defined(), ValueError, op, ": '", path, "': tensor '", name, "' is undefined");
    uint64_t nbytes = t.nbytes();
    Json entry = Json::object();
    entry["dtype"] = file_dtype_name(t.dtype());
    entry["shape"] = t.shape();
    entry["data_offsets"] = {offset, offset + nbytes};
    header[name] = std::move(entry);
    offset += nbytes;
  }

  std::string text;
  try {
    text = header.dump();
  } catch (const Json::exception& e) {
    NN_THROW(ValueError, op, ": '", path,
             "': a tensor name or metadata string is not valid UTF-8 (", e.what(), ")");
  }
  text.append((kHeaderAlign - text.size() % kHeaderAlign) % kHeaderAlign, ' ');
  NN_CHECK(text.size() <= kMaxSafetensorsHeader, ValueError, op, ": '", path, "': the header of ",
           text.size(), " bytes exceeds the ", kMaxSafetensorsHeader,
           " bytes that safetensors readers accept (fewer tensors or shorter metadata)");

  write_file_atomic(path, [&](FileSink& sink) {
    unsigned char len[kLengthBytes];
    for (size_t i = 0; i < kLengthBytes; ++i)
      len[i] = static_cast<unsigned char>(text.size() >> (8 * i));
    sink.write(len, kLengthBytes);
    sink.write(text);
    // One tensor at a time on the host: a checkpoint is never staged whole in memory.
    for (const auto& [name, t] : tensors) {
      if (t.numel() == 0) continue;
      Tensor host = t.contiguous().to(Device::cpu());
      sink.write(host.data_ptr(), host.nbytes());
    }
  });
}

SafetensorsFile load_safetensors(const std::string& path, Device device) {
  constexpr const char* op = "load_safetensors";
  cuda::check_device(device, op);
  InputFile f(path, op);
  Header h = read_header(f);
  SafetensorsFile out;
  out.metadata = std::move(h.metadata);
  out.tensors.reserve(h.entries.size());
  for (const Entry& e : h.entries) {
    Tensor t = read_tensor(f, h, e);
    out.tensors.emplace_back(e.name, device.is_cpu() ? t : t.to(device));
  }
  return out;
}

Metadata read_safetensors_metadata(const std::string& path) {
  InputFile f(path, "read_safetensors_metadata");
  return read_header(f).metadata;
}

}  // namespace nn::io
