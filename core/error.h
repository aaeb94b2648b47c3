// The nn::Error hierarchy. Library code throws these and never aborts, exits or prints.
// A message names the op, what was wrong and what was expected:
//   "linear: input has 784 features, weight expects 512".
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace nn {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

class ShapeError : public Error {  // shapes do not agree, wrong rank
 public:
  using Error::Error;
};
class DtypeError : public Error {  // unsupported or mismatched dtype
 public:
  using Error::Error;
};
class DeviceError : public Error {  // wrong or mixed devices, no GPU, built without CUDA
 public:
  using Error::Error;
};
class IndexError : public Error {  // an index, dimension or view range out of bounds
 public:
  using Error::Error;
};
class ValueError : public Error {  // a bad argument value (negative size, p outside [0, 1])
 public:
  using Error::Error;
};
class OutOfMemoryError : public Error {  // an allocation failed even after freeing caches
 public:
  using Error::Error;
};
class IoError : public Error {  // a missing, truncated or corrupt file
 public:
  using Error::Error;
};
class CudaError : public Error {  // a CUDA runtime, cuBLAS or cuDNN call failed
 public:
  using Error::Error;
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace nn

// NN_CHECK(cond, ShapeError, "matmul: inner sizes differ: ", k1, " vs ", k2);
#define NN_CHECK(cond, ErrorType, ...)                             \
  do {                                                             \
    if (!(cond)) throw ::nn::ErrorType(::nn::detail::concat(__VA_ARGS__)); \
  } while (0)

#define NN_THROW(ErrorType, ...) throw ::nn::ErrorType(::nn::detail::concat(__VA_ARGS__))
