// CUDA rows of the fused softmax + cross-entropy: cross_entropy and cross_entropy_backward.
//
// cross_entropy: a group of threads owns one row of logits, one warp for short rows, the whole
// block for longer ones. Its state is (max, sum of exp), plus, for label smoothing,
// sum_c w_c (z_c - z_0) and sum_c w_c (shifted by the row's first logit so a large common offset
// cannot cancel), and the target's logit, picked up by whichever thread meets it; the group
// merges states with shuffles (and shared memory across warps) and its first thread writes
// loss, lse and the sample weight.
//  - Rows that fit in registers (the same tiers as softmax: up to 256 threads x 32 logits, 16
//    for float64) are loaded once into registers; each thread takes its slice's max first, then
//    its sum of exp, with no running rescale.
//  - Longer rows stream through once with the (max, sum) merged online per element.
// Loads are 16-byte vectors when the row stride and the pointer allow (the classes past the last
// whole vector are read one per thread), single elements otherwise.
// backward: the same groups, one pass over the row writing p * coef - ... (kernels/nn_math.h);
// the probabilities never go to memory, logits are read once with vector loads and the gradient
// written with vector stores when aligned. With weights and smoothing each group first sums the
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

constexpr int64_t kWarpRowMax = 1024;  // backward: rows up to this many classes get a warp
constexpr int kRegisterBytes = 128;    // forward: the largest tier, bytes per thread (as acc_t)

template <class A>
struct CeState {
  A max;   // running maximum
  A sum;   // sum of exp(z - max)
  A wz;    // sum of w_c (z_c - z_0)   (label smoothing only)
  A wsum;  // sum of w_c               (label smoothing only)
  A zy;    // the target's logit (0 in every thread but the one that holds it)
};

template <class A>
__device__ NN_INLINE CeState<A> ce_merge(const CeState<A>& a, const CeState<A>& b) {
  constexpr A kNegInf = -std::numeric_limits<A>::infinity();
  const A m = b.max > a.max ? b.max : a.max;
  // Both empty or all -inf so far: nothing to rescale (and -inf - -inf would be NaN); the sums
  // are then 0, or NaN from a NaN logit, which must survive.
  CeState<A> r{m, a.sum + b.sum, a.wz + b.wz, a.wsum + b.wsum, a.zy + b.zy};
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

template <class T, int V>
__device__ NN_INLINE Vec<T, V> load_vec(const T* p, int64_t i) {
  return *reinterpret_cast<const Vec<T, V>*>(p + i);
}

// What every logit adds besides (max, sum): the smoothing sums and the target's logit.
template <class T>
__device__ NN_INLINE void ce_extras(CeState<acc_t<T>>& s, const CeArgs<T>& args, acc_t<T> v,
                                    int64_t c, int64_t y, acc_t<T> z0) {
  if (args.smooth) {
    const acc_t<T> wc = class_weight(args, c);
    s.wz += wc * (v - z0);
    s.wsum += wc;
  }
  if (c == y) s.zy = v;
}

// Online (max, sum) update with one logit.
template <class A>
__device__ NN_INLINE void ce_online(CeState<A>& s, A v) {
  if (v > s.max) {
    // exp(v - v) is 1, or NaN for v = inf, where the CPU's exp(z - max) is NaN too.
    s.sum = s.sum * math::exp_(s.max - v) + math::exp_(v - v);
    s.max = v;
  } else if (v != -std::numeric_limits<A>::infinity()) {  // NaN lands here and propagates
    s.sum += math::exp_(v - s.max);
  }
}

// A group of kThreads owns a row: the first nvec = C / V classes as vectors (vector k of a
// thread at lane + k * kThreads), the rest (fewer than V) one per lane. kVecs > 0: the thread's
// vectors are held in kVecs registers slots and the row is reduced from them; kVecs == 0: the
// row streams through once, merged online.
template <class T, int kThreads, int V, int kVecs>
__global__ void __launch_bounds__(kBlockSize)
    cross_entropy_kernel(CeArgs<T> args, int64_t rows, T* loss, acc_t<T>* lse, T* sample_weight) {
  using A = acc_t<T>;
  using State = CeState<A>;
  constexpr int kRowsPerBlock = kBlockSize / kThreads;
  constexpr A kNegInf = -std::numeric_limits<A>::infinity();
  const int lane = threadIdx.x % kThreads;
  const int64_t classes = args.classes;
  const int64_t nvec = classes / V;
  const int64_t tail = nvec * V + lane;  // this lane's class past the vectors, if < classes
  // The row loop bound is uniform across a group, so the group reduction never diverges.
  for (int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kThreads; row < rows;
       row += int64_t(gridDim.x) * kRowsPerBlock) {
    const T* z = args.logits + row * args.ld;
    const A z0 = static_cast<A>(z[0]);
    const int64_t y = args.target[row];
    State s{kNegInf, A(0), A(0), A(0), A(0)};
    if constexpr (kVecs > 0) {
      // How many of its kVecs slots this thread fills.
      const int kv = lane < nvec ? int((nvec - 1 - lane) / kThreads) + 1 : 0;
      Vec<T, V> r[kVecs];
#pragma unroll
      for (int k = 0; k < kVecs; ++k)
        if (k < kv) r[k] = load_vec<T, V>(z, int64_t(lane + k * kThreads) * V);
      const bool has_tail = tail < classes;
      const A t = has_tail ? static_cast<A>(z[tail]) : kNegInf;
      A m = t > kNegInf ? t : kNegInf;  // NaN never wins the max; it poisons the sum below
#pragma unroll
      for (int k = 0; k < kVecs; ++k) {
        if (k < kv) {
#pragma unroll
          for (int j = 0; j < V; ++j) {
            const A v = static_cast<A>(r[k].v[j]);
            m = v > m ? v : m;
          }
        }
      }
      s.max = m;
#pragma unroll
      for (int k = 0; k < kVecs; ++k) {
        if (k < kv) {
#pragma unroll
          for (int j = 0; j < V; ++j) {
            const A v = static_cast<A>(r[k].v[j]);
            if (v != kNegInf) s.sum += math::exp_(v - m);  // inf - inf is NaN, as on the CPU
            ce_extras(s, args, v, int64_t(lane + k * kThreads) * V + j, y, z0);
          }
        }
      }
      if (has_tail) {
        if (t != kNegInf) s.sum += math::exp_(t - m);
        ce_extras(s, args, t, tail, y, z0);
      }
    } else {
      for (int64_t v = lane; v < nvec; v += kThreads) {
        const Vec<T, V> p = load_vec<T, V>(z, v * V);
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const A x = static_cast<A>(p.v[j]);
          ce_online(s, x);
          ce_extras(s, args, x, v * V + j, y, z0);
        }
      }
      if (tail < classes) {
        const A x = static_cast<A>(z[tail]);
        ce_online(s, x);
        ce_extras(s, args, x, tail, y, z0);
      }
    }
    s = group_allreduce<kThreads>(s, [](const State& a, const State& b) { return ce_merge(a, b); });
    if (lane == 0) {
      const A row_lse = s.max + math::log_(s.sum);
      if (lse) lse[row] = row_lse;
      A l = A(0), wy = A(0);
      if (y != args.ignore_index) {
        if (y < 0 || y >= classes) {
          l = wy = std::numeric_limits<A>::quiet_NaN();
        } else {
          wy = class_weight(args, y);
          l = (A(1) - args.eps) * wy * (row_lse - s.zy);
          // sum_c w_c (lse - z_c) = W (lse - z_0) - sum_c w_c (z_c - z_0)
          if (args.smooth) l += args.eps / A(classes) * (s.wsum * (row_lse - z0) - s.wz);
        }
      }
      loss[row] = T(l);
      if (sample_weight) sample_weight[row] = T(wy);
    }
  }
}

// Backward over a row: V classes at a time (V == 1: any layout; V > 1: C % V == 0 and the
// logits, gradient and weight rows all aligned to the vector).
template <class T, int kThreads, int V>
__global__ void __launch_bounds__(kBlockSize)
    cross_entropy_backward_kernel(CeArgs<T> args, int64_t rows, const T* grad_loss,
                                  const acc_t<T>* lse, T* grad) {
  using A = acc_t<T>;
  constexpr int kRowsPerBlock = kBlockSize / kThreads;
  const int lane = threadIdx.x % kThreads;
  const int64_t classes = args.classes;
  const int64_t nvec = classes / V;
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
    const bool ignored = y == args.ignore_index, bad = !ignored && (y < 0 || y >= classes);
    if (ignored || bad) {
      const T fill = T(ignored ? A(0) : std::numeric_limits<A>::quiet_NaN());
      Vec<T, V> f;
#pragma unroll
      for (int j = 0; j < V; ++j) f.v[j] = fill;
      for (int64_t v = lane; v < nvec; v += kThreads)
        *reinterpret_cast<Vec<T, V>*>(out + v * V) = f;
      continue;
    }
    const A g = static_cast<A>(grad_loss[row]), row_lse = lse[row];
    const A target_coef = (A(1) - args.eps) * class_weight(args, y);
    const A coef = target_coef + smooth * wsum;
    for (int64_t v = lane; v < nvec; v += kThreads) {
      const int64_t c0 = v * V;
      const Vec<T, V> zv = load_vec<T, V>(z, c0);
      Vec<T, V> wv{};
      if (args.weight) wv = load_vec<T, V>(args.weight, c0);
      Vec<T, V> r;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A p = math::exp_(static_cast<A>(zv.v[j]) - row_lse);
        const A wj = args.weight ? static_cast<A>(wv.v[j]) : A(1);
        r.v[j] = T(g * math::cross_entropy_grad<A>(p, c0 + j == y, wj, coef, target_coef, smooth));
      }
      *reinterpret_cast<Vec<T, V>*>(out + c0) = r;
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

// Whether every row of the logits starts on a vector boundary (vectors of kV elements).
template <class T>
bool rows_aligned(const CeArgs<T>& a, int kV) {
  return a.ld % kV == 0 && is_aligned(a.logits, kVectorBytes);
}

// The forward's tier: the smallest register tier that holds a row (warp with a quarter or all
// of the budget, block with a quarter, half or all), else the streaming kernel.
template <class T, int V>
void launch_forward(const CeArgs<T>& args, int64_t rows, T* loss, acc_t<T>* lse, T* sw,
                    cudaStream_t stream) {
  constexpr int kElems = kRegisterBytes / int(sizeof(acc_t<T>));
  constexpr int kWarpRows = kBlockSize / kWarpSize;
  const int64_t c = args.classes;
  const unsigned warp_grid = grid_for(rows, kWarpRows), block_grid = grid_for(rows, 1);
  if (c <= int64_t(kWarpSize) * (kElems / 4))
    cross_entropy_kernel<T, kWarpSize, V, kElems / 4 / V>
        <<<warp_grid, kBlockSize, 0, stream>>>(args, rows, loss, lse, sw);
  else if (c <= int64_t(kWarpSize) * kElems)
    cross_entropy_kernel<T, kWarpSize, V, kElems / V>
        <<<warp_grid, kBlockSize, 0, stream>>>(args, rows, loss, lse, sw);
  else if (c <= int64_t(kBlockSize) * (kElems / 4))
    cross_entropy_kernel<T, kBlockSize, V, kElems / 4 / V>
        <<<block_grid, kBlockSize, 0, stream>>>(args, rows, loss, lse, sw);
  else if (c <= int64_t(kBlockSize) * (kElems / 2))
    cross_entropy_kernel<T, kBlockSize, V, kElems / 2 / V>
        <<<block_grid, kBlockSize, 0, stream>>>(args, rows, loss, lse, sw);
  else if (c <= int64_t(kBlockSize) * kElems)
    cross_entropy_kernel<T, kBlockSize, V, kElems / V>
        <<<block_grid, kBlockSize, 0, stream>>>(args, rows, loss, lse, sw);
  else
    cross_entropy_kernel<T, kBlockSize, V, 0>
        <<<block_grid, kBlockSize, 0, stream>>>(args, rows, loss, lse, sw);
  NN_CUDA_CHECK_LAUNCH();
}

template <class T, int V>
void launch_backward(const CeArgs<T>& args, int64_t rows, const T* gl, const acc_t<T>* ls, T* g,
                     cudaStream_t stream) {
  if (args.classes <= kWarpRowMax)
    cross_entropy_backward_kernel<T, kWarpSize, V>
        <<<grid_for(rows, kBlockSize / kWarpSize), kBlockSize, 0, stream>>>(args, rows, gl, ls, g);
  else
    cross_entropy_backward_kernel<T, kBlockSize, V>
        <<<grid_for(rows, 1), kBlockSize, 0, stream>>>(args, rows, gl, ls, g);
  NN_CUDA_CHECK_LAUNCH();
}

}  // namespace

void cross_entropy(Tensor& loss, Tensor& lse, Tensor& sample_weight, const Tensor& logits,
                   const Tensor& target, const Tensor& weight, double label_smoothing,
                   int64_t ignore_index) {
  const int64_t rows = logits.size(0);
  DeviceScope scope(loss);
  visit_floating(logits.dtype(), "cross_entropy", [&]<class T>() {
    using A = acc_t<T>;
    constexpr int kV = kVectorBytes / int(sizeof(T));
    const CeArgs<T> args = ce_args<T>(logits, target, weight, label_smoothing, ignore_index);
    T* l = loss.data<T>();
    A* ls = lse.defined() ? lse.data<A>() : nullptr;
    T* sw = sample_weight.defined() ? sample_weight.data<T>() : nullptr;
    if (rows_aligned(args, kV))
      launch_forward<T, kV>(args, rows, l, ls, sw, scope.stream());
    else
      launch_forward<T, 1>(args, rows, l, ls, sw, scope.stream());
  });
}

void cross_entropy_backward(Tensor& grad, const Tensor& grad_loss, const Tensor& logits,
                            const Tensor& target, const Tensor& lse, const Tensor& weight,
                            double label_smoothing, int64_t ignore_index) {
  const int64_t rows = logits.size(0);
  DeviceScope scope(grad);
  visit_floating(logits.dtype(), "cross_entropy_backward", [&]<class T>() {
    using A = acc_t<T>;
    constexpr int kV = kVectorBytes / int(sizeof(T));
    const CeArgs<T> args = ce_args<T>(logits, target, weight, label_smoothing, ignore_index);
    const T* gl = grad_loss.data<T>();
    const A* ls = lse.data<A>();
    T* g = grad.data<T>();
    // Vector stores need the gradient's rows (C apart) aligned too, and the weights.
    const bool vectorise = rows_aligned(args, kV) && args.classes % kV == 0 &&
                           is_aligned(g, kVectorBytes) &&
                           (args.weight == nullptr || is_aligned(args.weight, kVectorBytes));
    if (vectorise)
      launch_backward<T, kV>(args, rows, gl, ls, g, scope.stream());
    else
      launch_backward<T, 1>(args, rows, gl, ls, g, scope.stream());
  });
}

}  // namespace nn::cuda
