// Atomic file replacement: a file at `path` is either its old self or the complete new content,
// never something half-written, even if the writer throws or the process dies midway.
//
// write_file_atomic writes into a temporary file in path's directory (a unique hidden name),
// flushes and fsyncs it, renames it over `path` and then fsyncs the directory (best effort: a
// file system that cannot sync a directory still gets the rename). On any failure the temporary
// is removed and `path` is left as it was. POSIX only.
//
// Throws IoError naming `path`, the step that failed and the system's errno text. An exception
// thrown by the writer callback itself (a CudaError while copying a tensor, say) propagates
// unchanged after the clean-up. The new file gets mode 0666 minus the umask; a symbolic link at
// `path` is replaced by the file, not followed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace nn::io {

// The writer callback's handle on the temporary file.
class FileSink {
 public:
  FileSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

  // Appends nbytes; throws IoError (ENOSPC, EIO, ...) naming the destination path.
  void write(const void* data, size_t nbytes);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  uint64_t bytes_written() const { return written_; }
  const std::string& path() const { return path_; }  // the final destination, not the temporary

 private:
  int fd_;
  std::string path_;
  uint64_t written_ = 0;
};

using WriteCallback = std::function<void(FileSink&)>;

// Replaces `path` with what `writer` writes. ValueError for an empty path.
void write_file_atomic(const std::string& path, const WriteCallback& writer);
// Replaces `path` with `bytes`.
void write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace nn::io
