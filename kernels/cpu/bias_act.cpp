// CPU rows of the standalone activation ops: bias_activation (y = act(x + b[c]) over
// [outer, C, inner]) and activation_backward (grad * act'(saved)). Both are the oracle of the
// CUDA kernels, so they share their scalar maths (kernels/nn_math.h) and compute in acc_t<T>
// (float32 for the half types), rounding once into T.
//
// bias_activation: a thread owns a contiguous range of [outer * C] rows of `inner` elements and
// tracks the channel of its row incrementally, so no division happens per element.
#include "kernels/backend.h"
#include "kernels/cpu/loops.h"
#include "kernels/nn_math.h"

namespace nn::cpu {

namespace {

// Rough cost of one element in element-operations, for the parallel grain: the transcendental
// activations cost tens of flops.
constexpr int64_t kActivationCost = 8;

}  // namespace

void bias_activation(Tensor& out, Tensor& pre, const Tensor& x, const Tensor& bias, int64_t inner,
                     Activation act) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const int64_t channels = bias.defined() ? bias.numel() : 1;
  const int64_t rows = n / inner;
  visit_floating(out.dtype(), "bias_activation", [&]<class T>() {
    using A = acc_t<T>;
    const T* xp = x.data<T>();
    const T* bp = bias.defined() ? bias.data<T>() : nullptr;
    T* op = out.data<T>();
    T* pp = pre.defined() ? pre.data<T>() : nullptr;
    visit_activation(act, [&]<Activation Act>() {
      parallel_for(rows, n * kActivationCost, [&](int64_t r0, int64_t r1) {
        int64_t c = r0 % channels;
        for (int64_t r = r0; r < r1; ++r) {
          const A b = bp ? static_cast<A>(bp[c]) : A(0);
          for (int64_t i = r * inner, end = i + inner; i < end; ++i) {
            const A z = static_cast<A>(xp[i]) + b;
            if (pp) pp[i] = T(z);
            op[i] = T(math::activation_fn<Act, A>(z));
          }
          if (++c == channels) c = 0;
        }
      });
    });
  });
}

void activation_backward(Tensor& out, const Tensor& grad, const Tensor& saved, Activation act) {
  const int64_t n = out.numel();
  if (n == 0) return;
  visit_floating(out.dtype(), "activation_backward", [&]<class T>() {
    using A = acc_t<T>;
    const T* g = grad.data<T>();
    const T* s = saved.defined() ? saved.data<T>() : g;  // None reads no saved tensor
    T* o = out.data<T>();
    visit_activation(act, [&]<Activation Act>() {
      parallel_for(n, n * kActivationCost, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i)
          o[i] = T(math::activation_grad<Act, A>(static_cast<A>(g[i]), static_cast<A>(s[i])));
      });
    });
  });
}

}  // namespace nn::cpu
