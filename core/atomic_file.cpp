// write_file_atomic: temporary file, fsync, rename, directory fsync.
#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <random>
#include <system_error>
#include <utility>

#include "core/error.h"

namespace nn::io {

namespace {

// A single write() is capped below 2 GiB on Linux; larger requests just loop.
constexpr size_t kMaxWriteChunk = size_t(1) << 30;
// Room for the temporary's prefix and suffix within NAME_MAX (255).
constexpr size_t kMaxTempStem = 128;
constexpr int kTempNameAttempts = 64;

std::string errno_text(int err) { return std::system_category().message(err); }

[[noreturn]] void throw_io(const std::string& path, const char* what, int err) {
  NN_THROW(IoError, "write_file_atomic: '", path, "': ", what, ": ", errno_text(err));
}

// "dir/name" -> {"dir", "name"}; "name" -> {".", "name"}; "/name" -> {"/", "name"}.
std::pair<std::string, std::string> split_path(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

// Random bits so that two processes (or two hosts on a shared file system) with the same pid
// do not race for one name; O_EXCL settles any remaining collision.
uint64_t temp_token() {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 gen{std::random_device{}()};
  return gen() ^ (counter.fetch_add(1) << 48);
}

// Owns the temporary until it is renamed: closes and unlinks it on every other way out.
class TempFile {
 public:
  TempFile(const std::string& dir, const std::string& name, const std::string& dest) {
    std::string stem = name.substr(0, kMaxTempStem);
    std::string prefix = (dir == "/" ? "/" : dir + "/") + "." + stem + ".tmp-";
    for (int attempt = 0; attempt < kTempNameAttempts; ++attempt) {
      path_ = prefix + std::to_string(::getpid()) + "-" + std::to_string(temp_token());
      // 0666: the umask applies as for any newly created file.
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ >= 0) return;
      if (errno != EEXIST) throw_io(dest, "cannot create a temporary file in its directory", errno);
    }
    NN_THROW(IoError, "write_file_atomic: '", dest,
             "': no unused temporary name in its directory after ", kTempNameAttempts, " attempts");
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  // Closes the descriptor, reporting a deferred write error (NFS reports some only here).
  int close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }
  void commit() { committed_ = true; }

 private:
  std::string path_;
  int fd_ = -1;
  bool committed_ = false;
};

// Makes the rename itself durable. Best effort: some file systems refuse to sync a directory,
// and the new content is already complete and in place by now.
void sync_directory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

}  // namespace

void FileSink::write(const void* data, size_t nbytes) {
  const char* p = static_cast<const char*>(data);
  while (nbytes > 0) {
    ssize_t n = ::write(fd_, p, std::min(nbytes, kMaxWriteChunk));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_io(path_, "writing failed", errno);
    }
    if (n == 0) throw_io(path_, "writing made no progress", EIO);
    p += n;
    nbytes -= size_t(n);
    written_ += uint64_t(n);
  }
}

void write_file_atomic(const std::string& path, const WriteCallback& writer) {
  NN_CHECK(!path.empty(), ValueError, "write_file_atomic: the path is empty");
  NN_CHECK(path.back() != '/', ValueError, "write_file_atomic: '", path,
           "' names a directory, expected a file path");
  auto [dir, name] = split_path(path);
  TempFile tmp(dir, name, path);
  {
    FileSink sink(tmp.fd(), path);
    writer(sink);
  }
  if (::fsync(tmp.fd()) != 0) throw_io(path, "fsync failed", errno);
  if (tmp.close() != 0) throw_io(path, "closing the temporary file failed", errno);
  if (::rename(tmp.path().c_str(), path.c_str()) != 0)
    throw_io(path, "renaming the temporary file over it failed", errno);
  tmp.commit();
  sync_directory(dir);
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  write_file_atomic(path, [bytes](FileSink& sink) { sink.write(bytes); });
}

}  // namespace nn::io
