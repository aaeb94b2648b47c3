// FileReader: stdio for plain files, zlib's gz* stream API for gzipped ones. The gzip magic is
// sniffed from the first two bytes rather than trusted from the file name, so a gunzipped file
// that kept its .gz name (or the reverse) still reads.
#include "data/file_reader.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

#if defined(NN_WITH_ZLIB)
#include <zlib.h>
#endif

namespace nn::data {
namespace {

// gzread takes an unsigned and returns an int: stay well inside both.
constexpr size_t kMaxChunk = size_t(1) << 30;

std::string errno_text() { return std::strerror(errno); }

#if !defined(NN_WITH_ZLIB)
[[noreturn]] void throw_no_zlib(const std::string& path) {
  NN_THROW(IoError, "'", path,
           "' is gzipped but libnn_cuda was built without zlib; gunzip the file (gunzip -k '", path,
           "') or rebuild with zlib (Debian: zlib1g-dev)");
}
#endif

}  // namespace

bool has_zlib() {
#if defined(NN_WITH_ZLIB)
  return true;
#else
  return false;
#endif
}

struct FileReader::Impl {
  std::FILE* plain = nullptr;
#if defined(NN_WITH_ZLIB)
  gzFile gz = nullptr;
#endif
  ~Impl() {
    if (plain) std::fclose(plain);
#if defined(NN_WITH_ZLIB)
    if (gz) gzclose(gz);
#endif
  }
};

FileReader::FileReader(const std::string& path) : path_(path), impl_(std::make_unique<Impl>()) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  NN_CHECK(!ec && std::filesystem::exists(status), IoError, "cannot open '", path,
           "': no such file");
  NN_CHECK(std::filesystem::is_regular_file(status), IoError, "cannot read '", path,
           "': not a regular file");
  file_size_ = std::filesystem::file_size(path, ec);
  NN_CHECK(!ec, IoError, "cannot read the size of '", path, "': ", ec.message());

  impl_->plain = std::fopen(path.c_str(), "rb");
  NN_CHECK(impl_->plain != nullptr, IoError, "cannot open '", path, "': ", errno_text());
  unsigned char magic[2] = {0, 0};
  const size_t got = std::fread(magic, 1, 2, impl_->plain);
  gzipped_ = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  if (!gzipped_) {
    std::rewind(impl_->plain);
    return;
  }
  std::fclose(impl_->plain);
  impl_->plain = nullptr;
#if defined(NN_WITH_ZLIB)
  impl_->gz = gzopen(path.c_str(), "rb");
  NN_CHECK(impl_->gz != nullptr, IoError, "cannot open '", path, "': ", errno_text());
  gzbuffer(impl_->gz, 1 << 18);
#else
  throw_no_zlib(path);
#endif
}

FileReader::~FileReader() = default;

uint64_t FileReader::max_content_bytes() const {
  if (!gzipped_) return file_size_;
  return file_size_ * kMaxInflateRatio + kInflateSlack;
}

size_t FileReader::read_some(void* dst, size_t n) {
  auto* out = static_cast<unsigned char*>(dst);
  size_t total = 0;
  while (total < n) {
    const size_t want = std::min(n - total, kMaxChunk);
    size_t got = 0;
    if (impl_->plain) {
      got = std::fread(out + total, 1, want, impl_->plain);
      NN_CHECK(!std::ferror(impl_->plain), IoError, "error reading '", path_, "' after ",
               bytes_read_ + total, " bytes: ", errno_text());
    } else {
#if defined(NN_WITH_ZLIB)
      const int r = gzread(impl_->gz, out + total, static_cast<unsigned>(want));
      int code = Z_OK;
      const char* msg = gzerror(impl_->gz, &code);
      // A truncated stream returns what it inflated and sets Z_BUF_ERROR; corrupt data sets
      // Z_DATA_ERROR (a bad block or a checksum mismatch at the end).
      NN_CHECK(r >= 0 && (code == Z_OK || code == Z_STREAM_END), IoError, "corrupt gzip file '",
               path_, "' after ", bytes_read_ + total + size_t(std::max(r, 0)),
               " uncompressed bytes: ", msg ? msg : "unknown zlib error",
               code == Z_BUF_ERROR ? " (the file is truncated)" : "");
      got = static_cast<size_t>(r);
#endif
    }
    total += got;
    if (got < want) break;
  }
  bytes_read_ += total;
  return total;
}

void FileReader::read_exact(void* dst, size_t n, std::string_view what) {
  const uint64_t before = bytes_read_;
  const size_t got = read_some(dst, n);
  NN_CHECK(got == n, IoError, "'", path_, "' is truncated: expected ", n, " bytes of ", what,
           " at offset ", before, ", got ", got, gzipped_ ? " (uncompressed)" : "",
           "; the file has ", file_size_, " bytes");
}

bool FileReader::at_end() {
  unsigned char byte = 0;
  return read_some(&byte, 1) == 0;
}

std::string read_file(const std::string& path, uint64_t max_bytes) {
  FileReader reader(path);
  std::string out;
  if (!reader.gzipped()) {
    NN_CHECK(reader.file_size() <= max_bytes, IoError, "'", path, "' has ", reader.file_size(),
             " bytes, more than the limit of ", max_bytes);
    out.resize(reader.file_size());
    reader.read_exact(out.data(), out.size(), "content");
    NN_CHECK(reader.at_end(), IoError, "'", path, "' grew while it was read");
    return out;
  }
  constexpr size_t kChunk = size_t(1) << 20;
  for (;;) {
    const size_t old = out.size();
    NN_CHECK(old <= max_bytes, IoError, "'", path, "' inflates to more than the limit of ",
             max_bytes, " bytes");
    out.resize(old + kChunk);
    const size_t got = reader.read_some(out.data() + old, kChunk);
    out.resize(old + got);
    if (got < kChunk) break;
  }
  NN_CHECK(out.size() <= max_bytes, IoError, "'", path, "' inflates to ", out.size(),
           " bytes, more than the limit of ", max_bytes);
  return out;
}

void write_file(const std::string& path, std::string_view bytes, bool gzip) {
  if (!gzip) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    NN_CHECK(f != nullptr, IoError, "cannot create '", path, "': ", errno_text());
    const size_t put = bytes.empty() ? 0 : std::fwrite(bytes.data(), 1, bytes.size(), f);
    const bool closed = std::fclose(f) == 0;
    NN_CHECK(put == bytes.size() && closed, IoError, "cannot write ", bytes.size(), " bytes to '",
             path, "': ", errno_text());
    return;
  }
#if defined(NN_WITH_ZLIB)
  gzFile f = gzopen(path.c_str(), "wb");
  NN_CHECK(f != nullptr, IoError, "cannot create '", path, "': ", errno_text());
  size_t done = 0;
  while (done < bytes.size()) {
    const size_t n = std::min(bytes.size() - done, kMaxChunk);
    const int w = gzwrite(f, bytes.data() + done, static_cast<unsigned>(n));
    if (w <= 0) {
      int code = Z_OK;
      const std::string msg = gzerror(f, &code);
      gzclose(f);
      NN_THROW(IoError, "cannot write gzip data to '", path, "': ", msg);
    }
    done += static_cast<size_t>(w);
  }
  NN_CHECK(gzclose(f) == Z_OK, IoError, "cannot finish the gzip file '", path, "'");
#else
  NN_THROW(IoError, "cannot write '", path,
           "' gzipped: libnn_cuda was built without zlib (Debian: zlib1g-dev)");
#endif
}

}  // namespace nn::data
