// CPU random fills. Element i of the contiguous output is math::random_fn(seed, offset, i),
// the same function the CUDA kernel runs, so both backends give the same numbers for the same
// generator state whatever the thread count.
#include "kernels/backend.h"
#include "kernels/cpu/loops.h"
#include "kernels/math.h"

namespace nn::cpu {

void random(Tensor& out, RandomKind kind, double a, double b, uint64_t seed, uint64_t offset) {
  visit_floating(out.dtype(), "random", [&]<class T>() {
    using A = acc_t<T>;
    const A lo = static_cast<A>(a), hi = static_cast<A>(b);
    T* o = out.data<T>();
    const int64_t n = out.numel();
    visit_random_kind(kind, [&]<RandomKind Kind>() {
      parallel_for(n, n * 16, [&](int64_t begin, int64_t end) {  // ~16x a copy per Philox draw
        for (int64_t i = begin; i < end; ++i)
          o[i] = T(math::random_fn<Kind>(seed, offset, uint64_t(i), lo, hi));
      });
    });
  });
}

}  // namespace nn::cpu
