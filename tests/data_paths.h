// Finding the real data sets tests train and check on, and scratch directories for the files
// tests write. Nothing here names a system path: Fashion-MNIST is found by the library's own
// search (NN_FASHION_MNIST_DIR, then Debian's dataset-fashion-mnist), scikit-learn's digits
// through dpkg or Python at run time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>

#include <unistd.h>

#include "core/error.h"
#include "data/mnist.h"

namespace nn::test {

// What a test prints when Fashion-MNIST is missing (CI installs the package).
inline constexpr const char* kFashionMnistMissing =
    "Fashion-MNIST is missing: install Debian's dataset-fashion-mnist (apt-get install "
    "dataset-fashion-mnist) or set NN_FASHION_MNIST_DIR";

// The Fashion-MNIST directory, or empty when it is not installed.
inline std::string fashion_mnist_dir() {
  try {
    return data::find_fashion_mnist_dir();
  } catch (const IoError&) {
    return {};
  }
}

// The first line of a command's output, or empty.
inline std::string first_output_line(const std::string& command) {
  std::FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return {};
  std::string line;
  char buf[4096];
  if (std::fgets(buf, sizeof buf, pipe) != nullptr) line = buf;
  pclose(pipe);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  return line;
}

// scikit-learn's digits.csv.gz (1797 rows of 64 pixels and a label), or empty when absent.
inline std::string sklearn_digits_csv() {
  const std::string candidates[] = {
      first_output_line("dpkg -L python3-sklearn 2>/dev/null | grep '/digits\\.csv\\.gz$'"),
      first_output_line("python3 -c 'import os, sklearn.datasets as d; "
                        "print(os.path.join(os.path.dirname(d.__file__), \"data\", "
                        "\"digits.csv.gz\"))' 2>/dev/null"),
  };
  std::error_code ec;
  for (const std::string& p : candidates)
    if (!p.empty() && std::filesystem::is_regular_file(p, ec)) return p;
  return {};
}

// A fresh directory under the system's temporary directory, removed with its contents.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path_ = std::filesystem::temp_directory_path() /
            ("nn_test_" + std::to_string(getpid()) + "_" + std::to_string(stamp) + "_" +
             std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace nn::test
