// CPU row of the fused optimizer step: a loop over the group's tensors, each one's elements
// split over threads. The update of one element is math::optimizer_update (kernels/nn_math.h),
// the same code the CUDA multi-tensor kernel runs. grad_scale lives in host memory here, so
// reading it is free.
//
// The library is built for the baseline x86-64, where every fma_ of the update is a call into
// libm; on a CPU with AVX2 and FMA the same loop runs from a copy compiled for them (the fused
// multiply-add is exact either way, so both copies give the same bits).
#include "kernels/backend.h"
#include "kernels/cpu/loops.h"
#include "kernels/nn_math.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define NN_OPTIM_FMA_COPY 1
#endif

namespace nn::cpu {

namespace {

// Element-operations one update costs, roughly: the grain of the parallel split.
constexpr int64_t kUpdateCost = 16;

template <class T>
T* data_or_null(const std::vector<Tensor>& list, size_t i) {
  return list.empty() ? nullptr : list[i].data<T>();
}

// One tensor's elements [begin, end); s0..s2 may be null (states the kind does not use).
template <OptimizerKind K, class T, class A>
struct Update {
  const math::OptimScalars<A>& h;
  A scale;
  T* p;
  const T* g;
  T* s0;
  T* s1;
  T* s2;

  __attribute__((always_inline)) inline void run(int64_t begin, int64_t end) const {
    for (int64_t i = begin; i < end; ++i) {
      A pv = static_cast<A>(p[i]);
      A a0 = s0 ? static_cast<A>(s0[i]) : A(0);
      A a1 = s1 ? static_cast<A>(s1[i]) : A(0);
      A a2 = s2 ? static_cast<A>(s2[i]) : A(0);
      math::optimizer_update<K, A>(h, pv, static_cast<A>(g[i]) * scale, a0, a1, a2);
      p[i] = T(pv);
      if (s0) s0[i] = T(a0);
      if (s1) s1[i] = T(a1);
      if (s2) s2[i] = T(a2);
    }
  }
};

#if defined(NN_OPTIM_FMA_COPY)
template <OptimizerKind K, class T, class A>
__attribute__((target("avx2,fma"))) void run_fma(const Update<K, T, A>& u, int64_t begin,
                                                 int64_t end) {
  u.run(begin, end);
}

bool cpu_has_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
#endif

}  // namespace

void optimizer_step(ParamGroupTensors& group, const OptimizerHyper& hyper,
                    const Tensor& grad_scale) {
  const double scale = grad_scale.defined() ? grad_scale.item() : 1.0;
  visit_floating(group.params[0].dtype(), "optimizer_step", [&]<class T>() {
    using A = acc_t<T>;
    const math::OptimScalars<A> h = math::optim_scalars<A>(hyper);
    const A sc = static_cast<A>(scale);
    visit_optimizer(hyper.kind, [&]<OptimizerKind K>() {
      for (size_t t = 0; t < group.params.size(); ++t) {
        const int64_t n = group.params[t].numel();
        const Update<K, T, A> u{h,
                                sc,
                                group.params[t].data<T>(),
                                group.grads[t].data<T>(),
                                data_or_null<T>(group.state0, t),
                                data_or_null<T>(group.state1, t),
                                data_or_null<T>(group.state2, t)};
        parallel_for(n, n * kUpdateCost, [&](int64_t begin, int64_t end) {
#if defined(NN_OPTIM_FMA_COPY)
          if (cpu_has_fma()) {
            run_fma(u, begin, end);
            return;
          }
#endif
          u.run(begin, end);
        });
      }
    });
  });
}

}  // namespace nn::cpu
