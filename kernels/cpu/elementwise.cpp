// CPU elementwise rows of the op table: fill, copy (any dtype to any dtype), unary and its
// backward, binary (arithmetic and comparisons), where. One strided loop (loops.h) serves them
// all; the scalar maths comes from kernels/math.h so the CUDA backend computes the same thing.
// int64 takes the integer ops of kernels/ops.h (is_integer_unary, is_integer_arithmetic),
// computed exactly in int64; bool takes comparisons and where.
#include <cstring>
#include <type_traits>

#include "kernels/backend.h"
#include "kernels/cpu/loops.h"
#include "kernels/math.h"

namespace nn::cpu {

namespace {

using math::int_binary;
using math::int_unary;

void unary_int64(Tensor& out, UnaryOp op, const Tensor& x) {
  int64_t* o = out.data<int64_t>();
  const int64_t* xp = x.data<int64_t>();
  visit_unary(op, [&]<UnaryOp Op>() {
    if constexpr (is_integer_unary(Op)) {
      for_each_offset<2>(out.shape(), {&out, &x},
                         [&](const int64_t* off) { o[off[0]] = int_unary<Op>(xp[off[1]]); });
    } else {
      NN_THROW(DtypeError, unary_op_name(op),
               ": dtype int64 is not supported, expected a floating dtype");
    }
  });
}

}  // namespace

void fill(Tensor& out, double value) {
  visit_all(out.dtype(), [&]<class T>() {
    const T v = convert<T>(value);
    T* o = out.data<T>();
    for_each_offset<1>(out.shape(), {&out}, [&](const int64_t* off) { o[off[0]] = v; });
  });
}

void arange(Tensor& out, double start, double step) {
  visit_all(out.dtype(), [&]<class T>() {
    T* o = out.data<T>();
    for (int64_t i = 0, n = out.numel(); i < n; ++i) o[i] = convert<T>(start + double(i) * step);
  });
}

void copy(Tensor& out, const Tensor& src) {
  if (out.dtype() == src.dtype() && out.is_contiguous() && src.is_contiguous()) {
    if (out.data_ptr() != src.data_ptr() && out.numel() > 0)
      std::memcpy(out.data_ptr(), src.data_ptr(), out.nbytes());
    return;
  }
  visit_all(out.dtype(), [&]<class O>() {
    visit_all(src.dtype(), [&]<class S>() {
      O* o = out.data<O>();
      const S* s = src.data<S>();
      for_each_offset<2>(out.shape(), {&out, &src},
                         [&](const int64_t* off) { o[off[0]] = convert<O>(s[off[1]]); });
    });
  });
}

void unary(Tensor& out, UnaryOp op, const Tensor& x, double alpha, double beta) {
  if (out.dtype() == Dtype::Int64) return unary_int64(out, op, x);
  visit_floating(out.dtype(), "unary", [&]<class T>() {
    using A = acc_t<T>;
    T* o = out.data<T>();
    const T* xp = x.data<T>();
    const A al = static_cast<A>(alpha), be = static_cast<A>(beta);
    visit_unary(op, [&]<UnaryOp Op>() {
      for_each_offset<2>(out.shape(), {&out, &x}, [&](const int64_t* off) {
        o[off[0]] = T(math::unary_fn<Op, A>(static_cast<A>(xp[off[1]]), al, be));
      });
    });
  });
}

void unary_backward(Tensor& out, UnaryOp op, const Tensor& grad, const Tensor& x, double alpha,
                    double beta) {
  visit_floating(out.dtype(), "unary_backward", [&]<class T>() {
    using A = acc_t<T>;
    T* o = out.data<T>();
    const T* g = grad.data<T>();
    const T* xp = x.data<T>();
    const A al = static_cast<A>(alpha), be = static_cast<A>(beta);
    visit_unary(op, [&]<UnaryOp Op>() {
      for_each_offset<3>(out.shape(), {&out, &grad, &x}, [&](const int64_t* off) {
        o[off[0]] = T(math::unary_grad_fn<Op, A>(static_cast<A>(g[off[1]]),
                                                 static_cast<A>(xp[off[2]]), al, be));
      });
    });
  });
}

namespace {

// Comparisons accept every dtype (int64 labels against an argmax, say) and compute in acc_t<T>;
// arithmetic takes the floating dtypes (in acc_t<T>) and int64 (the integer ops, exactly).
template <class T>
void binary_typed(Tensor& out, BinaryOp op, const Tensor& a, const Tensor& b) {
  using A = acc_t<T>;
  const T* ap = a.data<T>();
  const T* bp = b.data<T>();
  visit_binary(op, [&]<BinaryOp Op>() {
    if constexpr (is_comparison(Op)) {
      bool* o = out.data<bool>();
      for_each_offset<3>(out.shape(), {&out, &a, &b}, [&](const int64_t* off) {
        o[off[0]] = math::compare_fn<Op, A>(static_cast<A>(ap[off[1]]), static_cast<A>(bp[off[2]]));
      });
    } else if constexpr (std::is_same_v<T, int64_t> && is_integer_arithmetic(Op)) {
      T* o = out.data<T>();
      for_each_offset<3>(out.shape(), {&out, &a, &b}, [&](const int64_t* off) {
        o[off[0]] = int_binary<Op>(ap[off[1]], bp[off[2]]);
      });
    } else if constexpr (std::is_floating_point_v<A> && !std::is_same_v<T, bool>) {
      T* o = out.data<T>();
      for_each_offset<3>(out.shape(), {&out, &a, &b}, [&](const int64_t* off) {
        o[off[0]] = T(math::binary_fn<Op, A>(static_cast<A>(ap[off[1]]), static_cast<A>(bp[off[2]])));
      });
    } else {
      NN_THROW(DtypeError, "binary: ", binary_op_name(op), " is not supported for dtype ",
               dtype_name(a.dtype()),
               is_integer_arithmetic(op) ? ", expected a floating dtype or int64"
                                         : ", expected a floating dtype");
    }
  });
}

}  // namespace

void binary(Tensor& out, BinaryOp op, const Tensor& a, const Tensor& b) {
  visit_all(a.dtype(), [&]<class T>() { binary_typed<T>(out, op, a, b); });
}

void where(Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  visit_all(out.dtype(), [&]<class T>() {
    T* o = out.data<T>();
    const bool* c = cond.data<bool>();
    const T* ap = a.data<T>();
    const T* bp = b.data<T>();
    for_each_offset<4>(out.shape(), {&out, &cond, &a, &b},
                       [&](const int64_t* off) { o[off[0]] = c[off[1]] ? ap[off[2]] : bp[off[3]]; });
  });
}

}  // namespace nn::cpu
