// CUDA softmax and log_softmax, forward and backward, along any axis of contiguous tensors.
// The tensor is viewed as [outer, n, inner], the softmax axis of length n in the middle.
// Every op is "reduce a row to a small state, then rewrite the row from it":
//   forward:             state = (running max m, sum of exp(x - m)), merged online, so x is
//                        read twice (state, write) instead of three times;
//                        y = exp(x - m) / sum,  or  log y = (x - m) - log(sum)
//   softmax backward:    state = sum(g * y);  dx = y * (g - state)
//   log_softmax backward: state = sum(g);     dx = g - exp(y) * state
//
// Decomposition:
//  - inner == 1 (the usual last axis): a group of threads owns one row, one warp when
//    n <= kWarpRowMax, the whole block otherwise; its threads stride over the row with 16-byte
//    vector loads when n and the pointers allow, and merge their states with warp shuffles
//    (and shared memory across warps).
//  - inner > 1: one thread owns one (outer, inner) column and walks its n elements with
//    stride `inner`; neighbouring threads read neighbouring elements, so loads coalesce.
#include <array>
#include <limits>

#include "kernels/backend.h"
#include "kernels/cuda/common.cuh"
#include "kernels/math.h"

namespace nn::cuda {
namespace {

constexpr int64_t kWarpRowMax = 1024;  // rows up to this length get one warp, longer a block

template <class A>
struct MaxSum {
  A max;
  A sum;  // of exp(x - max)
};

template <class T, int V>
__device__ NN_INLINE Vec<T, V> load_vec(const T* p, int64_t i) {
  return *reinterpret_cast<const Vec<T, V>*>(p + i);
}
template <class T, int V>
__device__ NN_INLINE void store_vec(T* p, int64_t i, const Vec<T, V>& v) {
  *reinterpret_cast<Vec<T, V>*>(p + i) = v;
}

// A row policy: init / accumulate V elements at element offset i / merge, then finalize the
// merged state once per row and write V elements at i from it.
template <class T, bool kLog>
struct SoftmaxForward {
  using Elem = T;
  using A = acc_t<T>;
  using State = MaxSum<A>;
  T* out;
  const T* x;

  __device__ State init() const { return {-std::numeric_limits<A>::infinity(), A(0)}; }
  __device__ static State step(State s, A v) {
    if (v > s.max) {
      // exp(v - v) is 1, or NaN for v = inf, where the CPU's exp(x - max) is NaN too.
      s.sum = s.sum * math::exp_(s.max - v) + math::exp_(v - v);
      s.max = v;
    } else if (v != -std::numeric_limits<A>::infinity()) {  // NaN lands here and propagates
      s.sum += math::exp_(v - s.max);
    }
    return s;
  }
  __device__ State merge(const State& a, const State& b) const {
    const A m = b.max > a.max ? b.max : a.max;
    // Both empty or all -inf so far: nothing to rescale (and -inf - -inf would be NaN).
    if (m == -std::numeric_limits<A>::infinity()) return {m, A(0)};
    return {m, a.sum * math::exp_(a.max - m) + b.sum * math::exp_(b.max - m)};
  }
  template <int V>
  __device__ State accumulate(State s, int64_t i) const {
    const Vec<T, V> p = load_vec<T, V>(x, i);
#pragma unroll
    for (int k = 0; k < V; ++k) s = step(s, A(p.v[k]));
    return s;
  }
  // (max, log(sum)) for log_softmax, (max, sum) for softmax.
  __device__ State finalize(State s) const {
    if constexpr (kLog) s.sum = math::log_(s.sum);
    return s;
  }
  template <int V>
  __device__ void write(const State& f, int64_t i) const {
    const Vec<T, V> p = load_vec<T, V>(x, i);
    Vec<T, V> r;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const A shifted = A(p.v[k]) - f.max;
      r.v[k] = kLog ? T(shifted - f.sum) : T(math::exp_(shifted) / f.sum);
    }
    store_vec<T, V>(out, i, r);
  }
};

template <class T, bool kLog>
struct SoftmaxBackward {
  using Elem = T;
  using A = acc_t<T>;
  using State = A;
  T* out;
  const T* grad;
  const T* y;

  __device__ State init() const { return A(0); }
  __device__ State merge(State a, State b) const { return a + b; }
  template <int V>
  __device__ State accumulate(State s, int64_t i) const {
    const Vec<T, V> g = load_vec<T, V>(grad, i);
    if constexpr (kLog) {
#pragma unroll
      for (int k = 0; k < V; ++k) s += A(g.v[k]);
    } else {
      const Vec<T, V> yv = load_vec<T, V>(y, i);
#pragma unroll
      for (int k = 0; k < V; ++k) s += A(g.v[k]) * A(yv.v[k]);
    }
    return s;
  }
  __device__ State finalize(State s) const { return s; }
  template <int V>
  __device__ void write(State dot, int64_t i) const {
    const Vec<T, V> g = load_vec<T, V>(grad, i);
    const Vec<T, V> yv = load_vec<T, V>(y, i);
    Vec<T, V> r;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const A gk = A(g.v[k]), yk = A(yv.v[k]);
      r.v[k] = kLog ? T(gk - math::exp_(yk) * dot) : T(yk * (gk - dot));
    }
    store_vec<T, V>(out, i, r);
  }
};

// inner == 1: kThreads consecutive threads own a row of n elements, V at a time (n % V == 0).
template <int kThreads, int V, class P>
__global__ void __launch_bounds__(kBlockSize) softmax_rows_kernel(P p, int64_t rows, int64_t n) {
  using State = typename P::State;
  constexpr int kRowsPerBlock = kBlockSize / kThreads;
  const int lane = threadIdx.x % kThreads;
  const auto merge = [&p](const State& a, const State& b) { return p.merge(a, b); };
  const int64_t nvec = n / V;
  // The row loop bound is uniform across a group, so the group reduction never diverges.
  for (int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kThreads; row < rows;
       row += int64_t(gridDim.x) * kRowsPerBlock) {
    const int64_t base = row * n;
    State s = p.init();
    for (int64_t v = lane; v < nvec; v += kThreads) s = p.template accumulate<V>(s, base + v * V);
    const State f = p.finalize(group_allreduce<kThreads>(s, merge));
    for (int64_t v = lane; v < nvec; v += kThreads) p.template write<V>(f, base + v * V);
  }
}

// inner > 1: one thread owns one (outer, inner) column.
template <class P>
__global__ void __launch_bounds__(kBlockSize)
    softmax_columns_kernel(P p, int64_t outer, int64_t n, int64_t inner) {
  using State = typename P::State;
  for (int64_t c = global_thread(); c < outer * inner; c += grid_threads()) {
    const int64_t base = (c / inner) * n * inner + c % inner;
    State s = p.init();
    for (int64_t r = 0; r < n; ++r) s = p.template accumulate<1>(s, base + r * inner);
    const State f = p.finalize(s);
    for (int64_t r = 0; r < n; ++r) p.template write<1>(f, base + r * inner);
  }
}

struct Layout {
  int64_t outer = 1, n = 1, inner = 1;
};

Layout layout_of(const Tensor& t, int64_t dim, const char* op) {
  NN_CHECK(dim >= 0 && dim < t.dim(), IndexError, op, ": dim ", dim,
           " out of range for a tensor of rank ", t.dim());
  Layout l;
  for (int64_t d = 0; d < dim; ++d) l.outer *= t.size(d);
  l.n = t.size(dim);
  for (int64_t d = dim + 1; d < t.dim(); ++d) l.inner *= t.size(d);
  return l;
}

template <int kThreads, class P>
void launch_rows(const P& p, const Layout& l, bool vectorise, cudaStream_t stream) {
  constexpr int kV = kVectorBytes / int(sizeof(typename P::Elem));
  const unsigned grid = grid_for(l.outer, kBlockSize / kThreads);
  if (vectorise)
    softmax_rows_kernel<kThreads, kV><<<grid, kBlockSize, 0, stream>>>(p, l.outer, l.n);
  else
    softmax_rows_kernel<kThreads, 1><<<grid, kBlockSize, 0, stream>>>(p, l.outer, l.n);
}

// Runs policy P over the layout; `tensors` are every tensor P reads or writes (all contiguous).
template <class P, size_t N>
void launch_softmax(const char* op, const P& p, const Layout& l,
                    const std::array<const Tensor*, N>& tensors) {
  if (l.outer * l.n * l.inner == 0) return;
  for (const Tensor* t : tensors)
    NN_CHECK(t->is_contiguous(), ValueError, op, ": tensors must be contiguous, got strides ",
             shape_str(t->strides()), " for shape ", shape_str(t->shape()));
  DeviceScope scope(*tensors[0]);
  if (l.inner == 1) {
    constexpr int kV = kVectorBytes / int(sizeof(typename P::Elem));
    bool vectorise = l.n % kV == 0;
    for (const Tensor* t : tensors)
      vectorise = vectorise && is_aligned(t->data_ptr(), kVectorBytes);
    if (l.n <= kWarpRowMax)
      launch_rows<kWarpSize>(p, l, vectorise, scope.stream());
    else
      launch_rows<kBlockSize>(p, l, vectorise, scope.stream());
  } else {
    softmax_columns_kernel<<<grid_for(l.outer * l.inner, kBlockSize), kBlockSize, 0,
                             scope.stream()>>>(p, l.outer, l.n, l.inner);
  }
  NN_CUDA_CHECK_LAUNCH();
}

template <class F>
void visit_log(bool log, F&& f) {
  if (log)
    f.template operator()<true>();
  else
    f.template operator()<false>();
}

}  // namespace

void softmax(Tensor& out, const Tensor& x, int64_t dim, bool log) {
  const Layout l = layout_of(x, dim, "softmax");
  visit_floating(x.dtype(), "softmax", [&]<class T>() {
    visit_log(log, [&]<bool kLog>() {
      launch_softmax("softmax", SoftmaxForward<T, kLog>{out.data<T>(), x.data<T>()}, l,
                     std::array<const Tensor*, 2>{&out, &x});
    });
  });
}

void softmax_backward(Tensor& out, const Tensor& grad_y, const Tensor& y, int64_t dim, bool log) {
  const Layout l = layout_of(y, dim, "softmax_backward");
  visit_floating(y.dtype(), "softmax_backward", [&]<class T>() {
    visit_log(log, [&]<bool kLog>() {
      launch_softmax("softmax_backward",
                     SoftmaxBackward<T, kLog>{out.data<T>(), grad_y.data<T>(), y.data<T>()}, l,
                     std::array<const Tensor*, 3>{&out, &grad_y, &y});
    });
  });
}

}  // namespace nn::cuda
