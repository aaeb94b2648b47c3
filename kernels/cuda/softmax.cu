// CUDA softmax and log_softmax, forward and backward, along any axis of contiguous tensors.
// The tensor is viewed as [outer, n, inner], the softmax axis of length n in the middle.
// Every op is "reduce a row to a small state, then rewrite the row from it":
//   forward:             state = (max m, sum of exp(x - m));
//                        y = exp(x - m) / sum,  or  log y = (x - m) - log(sum)
//   softmax backward:    state = sum(g * y);  dx = y * (g - state)
//   log_softmax backward: state = sum(g);     dx = g - exp(y) * state
//
// Decomposition:
//  - inner == 1 (the usual last axis), rows that fit in registers (up to 256 threads x 32
//    elements per input, 16 for float64: 8192 elements, 4096 float64): a group of threads owns one
//    row, one warp for short rows, the whole block for longer ones. Each thread loads its slice
//    once (16-byte vector loads when n and the pointers allow, element loads otherwise) into
//    registers, reduces it there (forward: its own max first, then its sum, so no running
//    rescale), the group merges states with warp shuffles (and shared memory across warps), and
//    the thread writes its slice from the same registers: the row is read from memory once.
//    The register tier (elements per thread, threads per row) is a template parameter picked by
//    row length, so short rows do not pay for registers they do not use.
//  - inner == 1, longer rows: a block owns a row and reads it twice (online max/sum merged per
//    element, then the write pass).
//  - inner > 1: one thread owns one (outer, inner) column and walks its n elements with
//    stride `inner`; neighbouring threads read neighbouring elements, so loads coalesce.
#include <array>
#include <limits>

#include "kernels/backend.h"
#include "kernels/cuda/common.cuh"
#include "kernels/math.h"

namespace nn::cuda {
namespace {

// Register budget of the largest tier: bytes of each input a thread holds, counted in the
// arithmetic type (32 values; 16 for float64), so the half types, which a thread unpacks to
// float32, stay at about 64 data registers for backward's two inputs too.
constexpr int kRegisterBytes = 128;

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

// A row policy reads kInputs tensors (in[]) and writes out. Given V elements of every input at
// one position (x[k] for input k): accumulate folds them into a state online, reduce_registers
// folds a thread's whole register slice (the first kv of kVecs vectors), merge combines the
// states of two threads, finalize turns the row's state into what apply needs to write V
// outputs.
template <class T, bool kLog>
struct SoftmaxForward {
  using Elem = T;
  using A = acc_t<T>;
  using State = MaxSum<A>;
  static constexpr int kInputs = 1;
  static constexpr A kNegInf = -std::numeric_limits<A>::infinity();
  T* out;
  const T* in[kInputs];

  __device__ State init() const { return {kNegInf, A(0)}; }
  template <int V>
  __device__ State accumulate(State s, const Vec<T, V>* x) const {
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const A v = A(x[0].v[j]);
      if (v > s.max) {
        // exp(v - v) is 1, or NaN for v = inf, where the CPU's exp(x - max) is NaN too.
        s.sum = s.sum * math::exp_(s.max - v) + math::exp_(v - v);
        s.max = v;
      } else if (v != kNegInf) {  // NaN lands here and propagates
        s.sum += math::exp_(v - s.max);
      }
    }
    return s;
  }
  template <int kVecs, int V>
  __device__ State reduce_registers(const Vec<T, V> (&r)[kVecs][kInputs], int kv) const {
    A m = kNegInf;
#pragma unroll
    for (int k = 0; k < kVecs; ++k) {
      if (k < kv) {
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const A v = A(r[k][0].v[j]);
          m = v > m ? v : m;  // NaN never wins here; it poisons the sum below
        }
      }
    }
    A sum = A(0);
#pragma unroll
    for (int k = 0; k < kVecs; ++k) {
      if (k < kv) {
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const A v = A(r[k][0].v[j]);
          if (v != kNegInf) sum += math::exp_(v - m);  // inf - inf is NaN, as on the CPU
        }
      }
    }
    return {m, sum};
  }
  __device__ State merge(const State& a, const State& b) const {
    const A m = b.max > a.max ? b.max : a.max;
    // Both empty or all -inf so far: nothing to rescale (and -inf - -inf would be NaN); the
    // sums are 0, or NaN from a NaN element, which must survive.
    if (m == kNegInf) return {m, a.sum + b.sum};
    return {m, a.sum * math::exp_(a.max - m) + b.sum * math::exp_(b.max - m)};
  }
  // (max, log(sum)) for log_softmax, (max, sum) for softmax.
  __device__ State finalize(State s) const {
    if constexpr (kLog) s.sum = math::log_(s.sum);
    return s;
  }
  template <int V>
  __device__ Vec<T, V> apply(const State& f, const Vec<T, V>* x) const {
    Vec<T, V> r;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const A shifted = A(x[0].v[j]) - f.max;
      r.v[j] = kLog ? T(shifted - f.sum) : T(math::exp_(shifted) / f.sum);
    }
    return r;
  }
};

template <class T, bool kLog>
struct SoftmaxBackward {
  using Elem = T;
  using A = acc_t<T>;
  using State = A;
  static constexpr int kInputs = 2;  // grad, y
  T* out;
  const T* in[kInputs];

  __device__ State init() const { return A(0); }
  template <int V>
  __device__ State accumulate(State s, const Vec<T, V>* x) const {
#pragma unroll
    for (int j = 0; j < V; ++j) s += kLog ? A(x[0].v[j]) : A(x[0].v[j]) * A(x[1].v[j]);
    return s;
  }
  template <int kVecs, int V>
  __device__ State reduce_registers(const Vec<T, V> (&r)[kVecs][kInputs], int kv) const {
    State s = init();
#pragma unroll
    for (int k = 0; k < kVecs; ++k)
      if (k < kv) s = accumulate<V>(s, r[k]);
    return s;
  }
  __device__ State merge(State a, State b) const { return a + b; }
  __device__ State finalize(State s) const { return s; }
  template <int V>
  __device__ Vec<T, V> apply(State dot, const Vec<T, V>* x) const {
    Vec<T, V> r;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const A gj = A(x[0].v[j]), yj = A(x[1].v[j]);
      r.v[j] = kLog ? T(gj - math::exp_(yj) * dot) : T(yj * (gj - dot));
    }
    return r;
  }
};

template <int V, class P>
__device__ NN_INLINE void load_inputs(const P& p, int64_t i,
                                      Vec<typename P::Elem, V> (&x)[P::kInputs]) {
#pragma unroll
  for (int k = 0; k < P::kInputs; ++k) x[k] = load_vec<typename P::Elem, V>(p.in[k], i);
}

// inner == 1, rows that fit: kThreads consecutive threads own a row of n elements (n % V == 0);
// a thread holds vectors lane, lane + kThreads, ... (at most kElems elements) in registers.
template <int kThreads, int kElems, int V, class P>
__global__ void __launch_bounds__(kBlockSize)
    softmax_rows_registers_kernel(P p, int64_t rows, int64_t n) {
  using T = typename P::Elem;
  using State = typename P::State;
  static_assert(kElems % V == 0, "softmax: a register tier holds whole vectors");
  constexpr int kVecs = kElems / V;
  constexpr int kRowsPerBlock = kBlockSize / kThreads;
  const int lane = threadIdx.x % kThreads;
  const auto merge = [&p](const State& a, const State& b) { return p.merge(a, b); };
  const int64_t nvec = n / V;
  // How many of its kVecs slots this thread fills: the same for every row.
  const int kv = lane < nvec ? int((nvec - 1 - lane) / kThreads) + 1 : 0;
  // The row loop bound is uniform across a group, so the group reduction never diverges.
  for (int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kThreads; row < rows;
       row += int64_t(gridDim.x) * kRowsPerBlock) {
    const int64_t base = row * n;
    Vec<T, V> r[kVecs][P::kInputs];
#pragma unroll
    for (int k = 0; k < kVecs; ++k)
      if (k < kv) load_inputs<V>(p, base + int64_t(lane + k * kThreads) * V, r[k]);
    const State f =
        p.finalize(group_allreduce<kThreads>(p.template reduce_registers<kVecs, V>(r, kv), merge));
#pragma unroll
    for (int k = 0; k < kVecs; ++k)
      if (k < kv)
        store_vec<T, V>(p.out, base + int64_t(lane + k * kThreads) * V,
                        p.template apply<V>(f, r[k]));
  }
}

// inner == 1, longer rows: kThreads consecutive threads own a row and read it twice.
template <int kThreads, int V, class P>
__global__ void __launch_bounds__(kBlockSize) softmax_rows_kernel(P p, int64_t rows, int64_t n) {
  using T = typename P::Elem;
  using State = typename P::State;
  constexpr int kRowsPerBlock = kBlockSize / kThreads;
  const int lane = threadIdx.x % kThreads;
  const auto merge = [&p](const State& a, const State& b) { return p.merge(a, b); };
  const int64_t nvec = n / V;
  for (int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kThreads; row < rows;
       row += int64_t(gridDim.x) * kRowsPerBlock) {
    const int64_t base = row * n;
    State s = p.init();
    for (int64_t v = lane; v < nvec; v += kThreads) {
      Vec<T, V> x[P::kInputs];
      load_inputs<V>(p, base + v * V, x);
      s = p.template accumulate<V>(s, x);
    }
    const State f = p.finalize(group_allreduce<kThreads>(s, merge));
    for (int64_t v = lane; v < nvec; v += kThreads) {
      Vec<T, V> x[P::kInputs];
      load_inputs<V>(p, base + v * V, x);
      store_vec<T, V>(p.out, base + v * V, p.template apply<V>(f, x));
    }
  }
}

// inner > 1: one thread owns one (outer, inner) column.
template <class P>
__global__ void __launch_bounds__(kBlockSize)
    softmax_columns_kernel(P p, int64_t outer, int64_t n, int64_t inner) {
  using T = typename P::Elem;
  using State = typename P::State;
  for (int64_t c = global_thread(); c < outer * inner; c += grid_threads()) {
    const int64_t base = (c / inner) * n * inner + c % inner;
    State s = p.init();
    for (int64_t r = 0; r < n; ++r) {
      Vec<T, 1> x[P::kInputs];
      load_inputs<1>(p, base + r * inner, x);
      s = p.template accumulate<1>(s, x);
    }
    const State f = p.finalize(s);
    for (int64_t r = 0; r < n; ++r) {
      Vec<T, 1> x[P::kInputs];
      load_inputs<1>(p, base + r * inner, x);
      store_vec<T, 1>(p.out, base + r * inner, p.template apply<1>(f, x));
    }
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

template <int kThreads, int kElems, int V, class P>
void launch_registers(const P& p, const Layout& l, cudaStream_t stream) {
  softmax_rows_registers_kernel<kThreads, kElems, V>
      <<<grid_for(l.outer, kBlockSize / kThreads), kBlockSize, 0, stream>>>(p, l.outer, l.n);
}

// The register tiers, smallest that holds the row first: a warp with a quarter or all of the
// register budget, then a block with a quarter, half or all of it; past that, two reads.
template <int V, class P>
void launch_rows(const P& p, const Layout& l, cudaStream_t stream) {
  constexpr int kElems = kRegisterBytes / int(sizeof(typename P::A));
  static_assert(kElems / 4 >= V, "softmax: the smallest tier must hold a vector");
  if (l.n <= int64_t(kWarpSize) * (kElems / 4))
    launch_registers<kWarpSize, kElems / 4, V>(p, l, stream);
  else if (l.n <= int64_t(kWarpSize) * kElems)
    launch_registers<kWarpSize, kElems, V>(p, l, stream);
  else if (l.n <= int64_t(kBlockSize) * (kElems / 4))
    launch_registers<kBlockSize, kElems / 4, V>(p, l, stream);
  else if (l.n <= int64_t(kBlockSize) * (kElems / 2))
    launch_registers<kBlockSize, kElems / 2, V>(p, l, stream);
  else if (l.n <= int64_t(kBlockSize) * kElems)
    launch_registers<kBlockSize, kElems, V>(p, l, stream);
  else
    softmax_rows_kernel<kBlockSize, V>
        <<<grid_for(l.outer, 1), kBlockSize, 0, stream>>>(p, l.outer, l.n);
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
    if (vectorise)
      launch_rows<kV>(p, l, scope.stream());
    else
      launch_rows<1>(p, l, scope.stream());
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
      launch_softmax("softmax", SoftmaxForward<T, kLog>{out.data<T>(), {x.data<T>()}}, l,
                     std::array<const Tensor*, 2>{&out, &x});
    });
  });
}

void softmax_backward(Tensor& out, const Tensor& grad_y, const Tensor& y, int64_t dim, bool log) {
  const Layout l = layout_of(y, dim, "softmax_backward");
  visit_floating(y.dtype(), "softmax_backward", [&]<class T>() {
    visit_log(log, [&]<bool kLog>() {
      launch_softmax("softmax_backward",
                     SoftmaxBackward<T, kLog>{out.data<T>(), {grad_y.data<T>(), y.data<T>()}}, l,
                     std::array<const Tensor*, 3>{&out, &grad_y, &y});
    });
  });
}

}  // namespace nn::cuda
