// CUDA rows of the op table for elementwise work: fill, copy (any dtype pair, any strides),
// unary, unary_backward, binary (comparisons give bool), where and random. The maths is the
// shared scalar code of kernels/math.h; the launch geometry is kernels/cuda/elementwise.cuh.
// int64 takes the integer ops of kernels/ops.h (is_integer_unary, is_integer_arithmetic),
// exact and wrapping as on the CPU, through the same launcher (int64 packs of 2 per 16 bytes).
// random: one thread per output element per grid-stride step, element i drawn from the
// counter (seed, offset, i) exactly as on the CPU, so both devices give the same numbers.

#include "core/rng.h"
#include "kernels/backend.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/math.h"

namespace nn::cuda {
namespace {

template <class T>
struct FillFn {
  T value;
  __device__ T operator()() const { return value; }
};

template <class To, class From>
struct CastFn {
  __device__ To operator()(From x) const { return cast<To>(x); }
};

// int64 maths that wraps on overflow (math::int_unary / int_binary, shared with the CPU).
template <UnaryOp Op>
struct IntUnaryFn {
  __device__ int64_t operator()(int64_t x) const { return math::int_unary<Op>(x); }
};

template <BinaryOp Op>
struct IntBinaryFn {
  __device__ int64_t operator()(int64_t a, int64_t b) const { return math::int_binary<Op>(a, b); }
};

template <UnaryOp Op, class T>
struct UnaryFn {
  acc_t<T> alpha, beta;
  __device__ T operator()(T x) const { return T(math::unary_fn<Op>(acc_t<T>(x), alpha, beta)); }
};

template <UnaryOp Op, class T>
struct UnaryGradFn {
  acc_t<T> alpha, beta;
  __device__ T operator()(T grad, T x) const {
    using A = acc_t<T>;
    return T(math::unary_grad_fn<Op>(A(grad), A(x), alpha, beta));
  }
};

template <BinaryOp Op, class T>
struct BinaryFn {
  __device__ T operator()(T a, T b) const {
    using A = acc_t<T>;
    return T(math::binary_fn<Op>(A(a), A(b)));
  }
};

template <BinaryOp Op, class T>
struct CompareFn {
  __device__ bool operator()(T a, T b) const {
    using A = acc_t<T>;
    return math::compare_fn<Op>(A(a), A(b));
  }
};

template <class T>
struct WhereFn {
  __device__ T operator()(bool c, T a, T b) const { return c ? a : b; }
};

// One thread per element (grid-stride); the draw itself is math::random_fn, shared with the CPU.
template <class T, RandomKind Kind>
__global__ void random_kernel(T* out, int64_t n, acc_t<T> a, acc_t<T> b, uint64_t seed,
                              uint64_t offset) {
  for (int64_t i = global_thread(); i < n; i += grid_threads())
    out[i] = T(math::random_fn<Kind>(seed, offset, uint64_t(i), a, b));
}

}  // namespace

void fill(Tensor& out, double value) {
  visit_all(out.dtype(), [&]<class T>() { launch_elementwise<T>(out, FillFn<T>{cast<T>(value)}); });
}

// One thread per element, grid-stride: the ramp is computed on the device, so building one (as the
// backward of max with indices does) never copies host data inside a step.
template <class T>
__global__ void arange_kernel(T* out, int64_t n, double start, double step) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) out[i] = cast<T>(start + double(i) * step);
}

void arange(Tensor& out, double start, double step) {
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceScope scope(out);
  visit_all(out.dtype(), [&]<class T>() {
    arange_kernel<T><<<grid_for(n, kBlockSize), kBlockSize, 0, scope.stream()>>>(out.data<T>(), n,
                                                                               start, step);
    NN_CUDA_CHECK_LAUNCH();
  });
}

void copy(Tensor& out, const Tensor& src) {
  if (out.numel() == 0) return;
  if (out.dtype() == src.dtype() && out.is_contiguous() && src.is_contiguous()) {
    if (out.data_ptr() == src.data_ptr()) return;
    DeviceScope scope(out);
    NN_CUDA_CHECK(cudaMemcpyAsync(out.data_ptr(), src.data_ptr(), out.nbytes(),
                                  cudaMemcpyDeviceToDevice, scope.stream()));
    return;
  }
  visit_all(out.dtype(), [&]<class To>() {
    visit_all(src.dtype(),
              [&]<class From>() { launch_elementwise<To, From>(out, CastFn<To, From>{}, src); });
  });
}

void unary(Tensor& out, UnaryOp op, const Tensor& x, double alpha, double beta) {
  if (out.dtype() == Dtype::Int64) {
    visit_unary(op, [&]<UnaryOp Op>() {
      if constexpr (is_integer_unary(Op))
        launch_elementwise<int64_t, int64_t>(out, IntUnaryFn<Op>{}, x);
      else
        NN_THROW(DtypeError, unary_op_name(op),
                 ": dtype int64 is not supported, expected a floating dtype");
    });
    return;
  }
  visit_floating(out.dtype(), unary_op_name(op), [&]<class T>() {
    using A = acc_t<T>;
    visit_unary(op, [&]<UnaryOp Op>() {
      launch_elementwise<T, T>(out, UnaryFn<Op, T>{A(alpha), A(beta)}, x);
    });
  });
}

void unary_backward(Tensor& out, UnaryOp op, const Tensor& grad, const Tensor& x, double alpha,
                    double beta) {
  visit_floating(out.dtype(), unary_op_name(op), [&]<class T>() {
    using A = acc_t<T>;
    visit_unary(op, [&]<UnaryOp Op>() {
      launch_elementwise<T, T, T>(out, UnaryGradFn<Op, T>{A(alpha), A(beta)}, grad, x);
    });
  });
}

// Comparisons accept every dtype (int64 labels against an argmax, say), arithmetic the floating
// ones and int64 (the integer ops only), as on the CPU.
void binary(Tensor& out, BinaryOp op, const Tensor& a, const Tensor& b) {
  if (is_comparison(op)) {
    visit_all(a.dtype(), [&]<class T>() {
      visit_binary(op, [&]<BinaryOp Op>() {
        if constexpr (is_comparison(Op))
          launch_elementwise<bool, T, T>(out, CompareFn<Op, T>{}, a, b);
      });
    });
    return;
  }
  if (a.dtype() == Dtype::Int64) {
    visit_binary(op, [&]<BinaryOp Op>() {
      if constexpr (is_integer_arithmetic(Op))
        launch_elementwise<int64_t, int64_t, int64_t>(out, IntBinaryFn<Op>{}, a, b);
      else
        NN_THROW(DtypeError, binary_op_name(op),
                 ": dtype int64 is not supported, expected a floating dtype");
    });
    return;
  }
  visit_floating(a.dtype(), binary_op_name(op), [&]<class T>() {
    visit_binary(op, [&]<BinaryOp Op>() {
      if constexpr (!is_comparison(Op)) launch_elementwise<T, T, T>(out, BinaryFn<Op, T>{}, a, b);
    });
  });
}

void where(Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  visit_all(out.dtype(),
            [&]<class T>() { launch_elementwise<T, bool, T, T>(out, WhereFn<T>{}, cond, a, b); });
}

void random(Tensor& out, RandomKind kind, double a, double b, uint64_t seed, uint64_t offset) {
  const int64_t n = out.numel();
  if (n == 0) return;
  NN_CHECK(out.is_contiguous(), ValueError, "random: output must be contiguous, got strides ",
           shape_str(out.strides()), " for shape ", shape_str(out.shape()));
  visit_floating(out.dtype(), "random", [&]<class T>() {
    using A = acc_t<T>;
    T* o = out.data<T>();
    DeviceScope scope(out);
    visit_random_kind(kind, [&]<RandomKind Kind>() {
      random_kernel<T, Kind><<<grid_for(n, kBlockSize), kBlockSize, 0, scope.stream()>>>(
          o, n, A(a), A(b), seed, offset);
      NN_CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace nn::cuda
