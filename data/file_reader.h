// Reading and writing the bytes of data files, gzipped or not. A file that starts with the gzip
// magic (0x1f 0x8b) is inflated on the fly through zlib; without zlib in the build (NN_WITH_ZLIB
// undefined) opening one throws IoError saying so and asking to gunzip it.
//
// Every failure is an IoError naming the path: a missing or unreadable file, a read past the
// end (with the expected and actual byte counts), or a corrupt gzip stream (zlib's message).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace nn::data {

// Whether the library was built with zlib (gzipped files can be read and written).
bool has_zlib();

// Deflate cannot expand more than about 1032:1, so a gzip file of n bytes inflates to at most
// kMaxInflateRatio * n + kInflateSlack bytes; a header that claims more is corrupt.
constexpr uint64_t kMaxInflateRatio = 1032;
constexpr uint64_t kInflateSlack = 1 << 16;

class FileReader {
 public:
  // Opens `path` for reading and sniffs the gzip magic. Throws IoError.
  explicit FileReader(const std::string& path);
  ~FileReader();
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  const std::string& path() const { return path_; }
  bool gzipped() const { return gzipped_; }
  uint64_t file_size() const { return file_size_; }  // bytes on disk
  // The most bytes the (uncompressed) content can hold: the file size, or the inflate bound.
  uint64_t max_content_bytes() const;

  // Reads up to n bytes; fewer only at the end of the content. Throws IoError on a corrupt or
  // unreadable stream.
  size_t read_some(void* dst, size_t n);
  // Reads exactly n bytes of `what` (named in the error), else throws IoError giving the
  // expected and the actual counts.
  void read_exact(void* dst, size_t n, std::string_view what);
  // True when no content byte is left; a final check (it consumes a byte when one is left).
  // For gzip this reads to the end of the stream, which verifies its checksum (a mismatch
  // throws IoError).
  bool at_end();
  uint64_t bytes_read() const { return bytes_read_; }  // content bytes so far

 private:
  struct Impl;
  std::string path_;
  bool gzipped_ = false;
  uint64_t file_size_ = 0;
  uint64_t bytes_read_ = 0;
  std::unique_ptr<Impl> impl_;
};

// The whole content of `path` (inflated when gzipped); IoError when it exceeds max_bytes.
std::string read_file(const std::string& path, uint64_t max_bytes = uint64_t(1) << 32);

// Writes `bytes` to `path` (replacing it), gzipped when `gzip` (IoError without zlib).
void write_file(const std::string& path, std::string_view bytes, bool gzip = false);

}  // namespace nn::data
