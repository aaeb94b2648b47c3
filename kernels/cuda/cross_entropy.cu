// CUDA rows of the fused softmax + cross-entropy: cross_entropy and cross_entropy_backward.
//
// cross_entropy: a group of threads owns one row of logits, one warp when C <= kWarpRowMax, the
// whole block otherwise. Its threads stride over the row (neighbouring threads read neighbouring
// logits, so loads coalesce) and keep a running (max, sum of exp) merged online as in softmax,
// plus, for label smoothing, sum_c w_c (z_c - z_0) and sum_c w_c, shifted by the row's first
// logit so a large common offset cannot cancel; the group merges its states with shuffles (and
// shared memory across warps) and its first thread writes loss, lse and the sample weight.
// backward: the same groups, one pass over the row writing p * coef - ... (kernels/nn_math.h);
// the probabilities never go to memory. With weights and smoothing each group first sums the
// class weights once.
// A target outside [0, C) (not ignored) cannot be reported without a host sync: that sample's
// loss and sample weight become NaN, and its gradient row NaN.
#include <limits>
#include <type_traits>

#include "kernels/backend.h"
#include "kernels/cuda/common.cuh"
#include "kernels/nn_math.h"

namespace nn::cuda {
namespace {

// ---- cross-entropy --------------------------------------------------------------------------

constexpr int64_t kWarpRowMax = 1024;  // rows up to this many classes get a warp, longer a block

template <class A>
struct CeState {
  A max;   // running maximum
  A sum;   // sum of exp(z - max)
  A wz;    // sum of w_c (z_c - z_0)   (label smoothing only)
  A wsum;  // sum of w_c               (label smoothing only)
};

template <class A>
__device__ NN_INLINE CeState<A> ce_merge(const CeState<A>& a, const CeState<A>& b) {
  constexpr A kNegInf = -std::numeric_limits<A>::infinity();
  const A m = b.max > a.max ? b.max : a.max;
  CeState<A> r{m, A(0), a.wz + b.wz, a.wsum + b.wsum};
  // Both empty or all -inf so far: nothing to rescale (and -inf - -inf would be NaN).
  if (m != kNegInf) r.sum = a.sum * math::exp_(a.max - m) + b.sum * math::exp_(b.max - m);
  return r;
}

template <class T>
struct CeArgs {
  using A = acc_t<T>;
  const T* logits;
  int64_t ld;  // row stride of logits
  const int64_t* target;
  const T* weight;  // null: every class weighs 1
  int64_t classes;
  int64_t ignore_index;
  A eps;
  bool smooth;  // eps > 0
};

template <class T>
__device__ NN_INLINE acc_t<T> class_weight(const CeArgs<T>& a, int64_t c) {
  using A = acc_t<T>;
  return a.weight ? static_cast<A>(a.weight[c]) : A(1);
}

template <class T, int kThreads>
__global__ void __launch_bounds__(kBlockSize)
    cross_entropy_kernel(CeArgs<T> args, int64_t rows, T* loss, acc_t<T>* lse, T* sample_weight) {
  using A = acc_t<T>;
  using State = CeState<A>;
  constexpr int kRowsPerBlock = kBlockSize / kThreads;
  constexpr A kNegInf = -std::numeric_limits<A>::infinity();
  const int lane = threadIdx.x % kThreads;
  const int64_t classes = args.classes;
  // The row loop bound is uniform across a group, so the group reduction never diverges.
  for (int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kThreads; row < rows;
       row += int64_t(gridDim.x) * kRowsPerBlock) {
    const T* z = args.logits + row * args.ld;
    const A z0 = static_cast<A>(z[0]);
    State s{kNegInf, A(0), A(0), A(0)};
    for (int64_t c = lane; c < classes; c += kThreads) {
      const A v = static_cast<A>(z[c]);
      if (v > s.max) {
        // exp(v - v) is 1, or NaN for v = inf, where the CPU's exp(z - max) is NaN too.
        s.sum = s.sum * math::exp_(s.max - v) + math::exp_(v - v);
        s.max = v;
      } else if (v != kNegInf) {  // NaN lands here and propagates
        s.sum += math::exp_(v - s.max);
      }
      if (args.smooth) {
        const A wc = class_weight(args, c);
        s.wz += wc * (v - z0);
        s.wsum += wc;
      }
    }
    s = group_allreduce<kThreads>(s, [](const State& a, const State& b) { return ce_merge(a, b); });
    if (lane == 0) {
      const A row_lse = s.max + math::log_(s.sum);
      if (lse) lse[row] = row_lse;
      const int64_t y = args.target[row];
      A l = A(0), wy = A(0);
      if (y != args.ignore_index) {
        if (y < 0 || y >= classes) {
          l = wy = std::numeric_limits<A>::quiet_NaN();
        } else {
          wy = class_weight(args, y);
          l = (A(1) - args.eps) * wy * (row_lse - static_cast<A>(z[y]));
          // sum_c w_c (lse - z_c) = W (lse - z_0) - sum_c w_c (z_c - z_0)
          if (args.smooth) l += args.eps / A(classes) * (s.wsum * (row_lse - z0) - s.wz);
        }
      }
      loss[row] = T(l);
      if (sample_weight) sample_weight[row] = T(wy);
    }
  }
}

template <class T, int kThreads>
__global__ void __launch_bounds__(kBlockSize)
    cross_entropy_backward_kernel(CeArgs<T> args, int64_t rows, const T* grad_loss,
                                  const acc_t<T>* lse, T* grad) {
  using A = acc_t<T>;
  constexpr int kRowsPerBlock = kBlockSize / kThreads;
  const int lane = threadIdx.x % kThreads;
  const int64_t classes = args.classes;
  const A smooth = args.eps / A(classes);
  // W = sum of the class weights, the same for every row: summed once per group.
  A wsum = A(classes);
  if (args.smooth && args.weight) {
    A part = A(0);
    for (int64_t c = lane; c < classes; c += kThreads) part += static_cast<A>(args.weight[c]);
    wsum = group_allreduce<kThreads>(part, [](A a, A b) { return a + b; });
  }
  for (int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kThreads; row < rows;
       row += int64_t(gridDim.x) * kRowsPerBlock) {
    const T* z = args.logits + row * args.ld;
    T* out = grad + row * classes;
    const int64_t y = args.target[row];
    if (y == args.ignore_index) {
      for (int64_t c = lane; c < classes; c += kThreads) out[c] = T(A(0));
      continue;
    }
    if (y < 0 || y >= classes) {
      for (int64_t c = lane; c < classes; c += kThreads)
        out[c] = T(std::numeric_limits<A>::quiet_NaN());
      continue;
    }
    const A g = static_cast<A>(grad_loss[row]), row_lse = lse[row];
    const A target_coef = (A(1) - args.eps) * class_weight(args, y);
    const A coef = target_coef + smooth * wsum;
    for (int64_t c = lane; c < classes; c += kThreads) {
      const A p = math::exp_(static_cast<A>(z[c]) - row_lse);
      out[c] = T(g * math::cross_entropy_grad<A>(p, c == y, class_weight(args, c), coef,
                                                 target_coef, smooth));
    }
  }
}

template <class T>
CeArgs<T> ce_args(const Tensor& logits, const Tensor& target, const Tensor& weight,
                  double label_smoothing, int64_t ignore_index) {
  CeArgs<T> a;
  a.logits = logits.data<T>();
  a.ld = logits.stride(0);
  a.target = target.data<int64_t>();
  a.weight = weight.defined() ? weight.data<T>() : nullptr;
  a.classes = logits.size(1);
  a.ignore_index = ignore_index;
  a.eps = static_cast<acc_t<T>>(label_smoothing);
  a.smooth = label_smoothing > 0.0;
  return a;
}

// Calls launch.template operator()<kThreads>(grid) with the group size the row length wants.
template <class F>
void launch_rows(int64_t rows, int64_t classes, F&& launch) {
  if (classes <= kWarpRowMax)
    launch.template operator()<kWarpSize>(grid_for(rows, kBlockSize / kWarpSize));
  else
    launch.template operator()<kBlockSize>(grid_for(rows, 1));
}

}  // namespace

void cross_entropy(Tensor& loss, Tensor& lse, Tensor& sample_weight, const Tensor& logits,
                   const Tensor& target, const Tensor& weight, double label_smoothing,
                   int64_t ignore_index) {
  const int64_t rows = logits.size(0), classes = logits.size(1);
  DeviceScope scope(loss);
  visit_floating(logits.dtype(), "cross_entropy", [&]<class T>() {
    using A = acc_t<T>;
    const CeArgs<T> args = ce_args<T>(logits, target, weight, label_smoothing, ignore_index);
    T* l = loss.data<T>();
    A* ls = lse.defined() ? lse.data<A>() : nullptr;
    T* sw = sample_weight.defined() ? sample_weight.data<T>() : nullptr;
    launch_rows(rows, classes, [&]<int kThreads>(unsigned grid) {
      cross_entropy_kernel<T, kThreads>
          <<<grid, kBlockSize, 0, scope.stream()>>>(args, rows, l, ls, sw);
      NN_CUDA_CHECK_LAUNCH();
    });
  });
}

void cross_entropy_backward(Tensor& grad, const Tensor& grad_loss, const Tensor& logits,
                            const Tensor& target, const Tensor& lse, const Tensor& weight,
                            double label_smoothing, int64_t ignore_index) {
  const int64_t rows = logits.size(0), classes = logits.size(1);
  DeviceScope scope(grad);
  visit_floating(logits.dtype(), "cross_entropy_backward", [&]<class T>() {
    using A = acc_t<T>;
    const CeArgs<T> args = ce_args<T>(logits, target, weight, label_smoothing, ignore_index);
    const T* gl = grad_loss.data<T>();
    const A* ls = lse.data<A>();
    T* g = grad.data<T>();
    launch_rows(rows, classes, [&]<int kThreads>(unsigned grid) {
      cross_entropy_backward_kernel<T, kThreads>
          <<<grid, kBlockSize, 0, scope.stream()>>>(args, rows, gl, ls, g);
      NN_CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace nn::cuda
