// CPU random fills. Element i of the contiguous output is a pure function of (seed, offset, i)
// (core/rng.h), computed in acc_t<T> exactly as the CUDA kernel does, so both backends give
// the same numbers for the same generator state whatever the thread count. The affine maps are
// written as explicit fused multiply-adds because nvcc contracts `lo + scale * u` into one:
// an unfused host version would differ from the device in the last bit.
#include <cmath>

#include "core/rng.h"
#include "kernels/backend.h"
#include "kernels/cpu/loops.h"

namespace nn::cpu {

namespace {

template <class T, class Draw>
void fill_with(Tensor& out, Draw draw) {
  T* o = out.data<T>();
  const int64_t n = out.numel();
  parallel_for(n, n * 16, [&](int64_t begin, int64_t end) {  // ~16x a copy per Philox draw
    for (int64_t i = begin; i < end; ++i) o[i] = T(draw(uint64_t(i)));
  });
}

}  // namespace

void random(Tensor& out, RandomKind kind, double a, double b, uint64_t seed, uint64_t offset) {
  visit_floating(out.dtype(), "random", [&]<class T>() {
    using A = acc_t<T>;
    const A lo = static_cast<A>(a), hi = static_cast<A>(b);
    switch (kind) {
      case RandomKind::Uniform:
        // philox_uniform is in (0, 1]; 1 - u is in [0, 1), so the result is in [lo, hi) up to
        // rounding at hi.
        fill_with<T>(out, [&](uint64_t i) {
          return std::fma(hi - lo, A(1) - philox_uniform<A>(seed, offset, i), lo);
        });
        return;
      case RandomKind::Normal:
        fill_with<T>(out, [&](uint64_t i) { return std::fma(hi, philox_normal<A>(seed, offset, i), lo); });
        return;
      case RandomKind::Bernoulli:
        fill_with<T>(out, [&](uint64_t i) {
          return (A(1) - philox_uniform<A>(seed, offset, i)) < lo ? A(1) : A(0);
        });
        return;
    }
    NN_THROW(ValueError, "random: unknown distribution code ", int(kind));
  });
}

}  // namespace nn::cpu
