// Argument checks and shape helpers shared by the op table's front end (kernels/*.cpp).
// Internal to the library: never included by a public header. Each check throws the nn::Error
// subclass the op contract promises, with a message that names the op and the offending values.
#pragma once

#include <cstdlib>
#include <initializer_list>
#include <string>

#include "core/tensor.h"

namespace nn::detail {

// A named operand, so messages can say "add: a is on cuda:0, b on cpu".
struct Arg {
  const char* name;
  const Tensor& t;
};

// Every operand defined (ValueError) and all on one device (DeviceError).
void check_inputs(const char* op, std::initializer_list<Arg> args);
// A floating dtype (DtypeError; for int64 and bool the message says to convert first).
void check_floating(const char* op, const Arg& a);
// A floating dtype or int64, the dtypes of integer arithmetic (DtypeError).
void check_floating_or_int64(const char* op, const Arg& a);
// Equal dtypes (DtypeError "matmul: a is float32, b is float64; expected one dtype ...").
void check_same_dtype(const char* op, const Arg& a, const Arg& b);
// Equal shapes (ShapeError).
void check_same_shape(const char* op, const Arg& a, const Arg& b);
// Sizes >= 0 (ValueError).
void check_sizes(const char* op, const Shape& shape);
// An in-place target must not write one memory location twice (a stride-0 dimension).
void check_writable(const char* op, const Tensor& t);

// The NumPy broadcast of `shapes`; ShapeError "add: shapes [2, 3] and [4] cannot broadcast".
Shape broadcast_shapes(const char* op, std::initializer_list<Shape> shapes);

// True when a and b are the same view of the same storage (exact aliasing, safe in place).
bool same_view(const Tensor& a, const Tensor& b);
// True when src may overlap dst without being exactly the same view: reading src while writing
// dst could then see already-written values, so src must be copied first.
bool overlaps_partially(const Tensor& dst, const Tensor& src);

// The initial value of a process-wide backend switch (LinearBackend, ConvBackend): the
// environment variable `var` parsed by `parse`, or `fallback` when it is unset or empty.
// A value `parse` rejects is a ValueError naming the variable and `expected`.
template <class E>
E backend_from_env(const char* var, E fallback, E (*parse)(const std::string&),
                   const char* expected) {
  const char* env = std::getenv(var);
  if (env == nullptr || *env == '\0') return fallback;
  try {
    return parse(env);
  } catch (const ValueError&) {
    NN_THROW(ValueError, var, "=\"", env, "\" is not one of ", expected);
  }
}

}  // namespace nn::detail
