// CUDA reductions: reduce (Sum, Mean, Max, Min, Var over any set of axes, any strides) and
// reduce_index (Max, Min and the first index where it occurs, along one axis). Each thread
// accumulates in acc_t<T> (float for float32 and the half types, double for float64) or, for
// int64 and bool, in int64 (exact; a sum wraps on overflow, and a sum of either is int64);
// partial states merge in warp-shuffle trees; Var is Welford's update, partials merged with
// Chan's formula; NaN propagates (and counts as the extreme for reduce_index).
//
// x is split into kept axes (one output each; out is contiguous) and reduced axes (R elements
// per output). Two decompositions:
//  - rows: a group of threads (one warp when R is small, the whole block otherwise) owns one
//    output; its threads stride over the R elements (16-byte loads when the reduced axes are
//    dense and the row is aligned) and merge in a group tree. Used when the reduced axes are
//    the contiguous ones, or when neither is. When there are few outputs and long rows (a sum
//    over everything, a gradient norm), each row is cut into chunks owned by separate blocks,
//    whose partial states a second kernel merges in order (scratch from the caching allocator).
//  - columns: when the kept axes are the contiguous ones (a column sum, a bias gradient), a
//    block owns kColumnTile neighbouring outputs: threadIdx.x picks the output, so every load
//    of a warp is one contiguous segment, and threadIdx.y strides over R; the kColumnSplit
//    partials of an output merge through shared memory.
#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/allocator.h"
#include "kernels/backend.h"
#include "kernels/cuda/common.cuh"
#include "kernels/indexing.h"
#include "kernels/math.h"

namespace nn::cuda {
namespace {

constexpr int64_t kWarpRowMax = 1024;   // rows up to this length get one warp, longer a block
constexpr int kColumnTile = kWarpSize;  // outputs per column block
constexpr int kColumnSplit = kBlockSize / kColumnTile;  // threads sharing one output's R
// Rows longer than 2 * kSplitChunk with fewer than kSplitFewOutputs outputs are split into up
// to kMaxSplits chunks of at least kSplitChunk elements, reduced by separate blocks.
constexpr int64_t kSplitFewOutputs = 128;
constexpr int64_t kSplitChunk = 16384;
constexpr int64_t kMaxSplits = 1024;

// ---- reducers: a State, init / step / merge on the device, store of the final state --------
// A reducer's A is the type each element is converted to before step(): acc_t<T> for the
// floating dtypes, int64 for int64 and bool (exact where float would round).

template <class T>
constexpr bool kIntegral = std::is_same_v<T, int64_t> || std::is_same_v<T, bool>;
template <class T>
using value_t = std::conditional_t<kIntegral<T>, int64_t, acc_t<T>>;

// What an output of an empty extent holds: NaN, as on the CPU, or 0 for int64.
template <class A>
__device__ NN_INLINE A empty_value() {
  if constexpr (std::is_floating_point_v<A>)
    return std::numeric_limits<A>::quiet_NaN();
  else
    return A(0);
}

// Sum, and Mean when divisor != 1 (floating only). Sums of int64 and bool go to an int64 out
// and wrap on overflow through uint64_t, as on the CPU.
template <class T, class Out = T>
struct SumReducer {
  using A = value_t<T>;
  using State = A;
  Out* out;
  A divisor;
  __device__ State init() const { return A(0); }
  __device__ State merge(State a, State b) const {
    if constexpr (std::is_integral_v<A>)
      return static_cast<A>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
    else
      return a + b;
  }
  __device__ State step(State s, A x, int64_t) const { return merge(s, x); }
  __device__ void store(int64_t o, State s) const {
    if constexpr (std::is_integral_v<A>)
      out[o] = s;
    else
      out[o] = Out(s / divisor);
  }
};

template <class T, bool kMax>
struct ExtremeReducer {
  using A = value_t<T>;
  using State = A;
  T* out;
  bool empty;  // no reduced elements: NaN (0 for int64), as on the CPU
  __device__ State init() const {
    if constexpr (std::is_integral_v<A>)
      return kMax ? std::numeric_limits<A>::lowest() : std::numeric_limits<A>::max();
    else
      return kMax ? -std::numeric_limits<A>::infinity() : std::numeric_limits<A>::infinity();
  }
  // Once a is NaN no comparison is true, so it stays NaN; a NaN b wins.
  __device__ State merge(State a, State b) const {
    return (math::isnan_(b) || (kMax ? b > a : b < a)) ? b : a;
  }
  __device__ State step(State s, A x, int64_t) const { return merge(s, x); }
  __device__ void store(int64_t o, State s) const { out[o] = T(empty ? empty_value<A>() : s); }
};

template <class A>
struct WelfordState {
  A mean;
  A m2;
  int64_t count;
};

template <class T>
struct VarReducer {
  using A = acc_t<T>;
  using State = WelfordState<A>;
  T* out;
  A denom;  // max(0, R - correction)
  __device__ State init() const { return {A(0), A(0), 0}; }
  __device__ State step(State s, A x, int64_t) const {
    s.count += 1;
    A d = x - s.mean;
    s.mean += d / A(s.count);
    s.m2 += d * (x - s.mean);
    return s;
  }
  __device__ State merge(State a, State b) const {
    if (b.count == 0) return a;
    if (a.count == 0) return b;
    const int64_t n = a.count + b.count;
    const A d = b.mean - a.mean;
    const A wb = A(b.count) / A(n);
    return {a.mean + d * wb, a.m2 + b.m2 + d * d * A(a.count) * wb, n};
  }
  __device__ void store(int64_t o, State s) const { out[o] = T(s.m2 / denom); }
};

template <class A>
struct IndexState {
  A value;
  int64_t index;  // kNoIndex until an element is seen
};
constexpr int64_t kNoIndex = std::numeric_limits<int64_t>::max();

template <class T, bool kMax>
struct IndexReducer {
  using A = value_t<T>;
  using State = IndexState<A>;
  T* values;
  int64_t* indices;
  __device__ State init() const { return {A(0), kNoIndex}; }
  // The more extreme of two states (NaN beats any number), the lower index on a tie, so the
  // result is the first extreme whatever order the partials merge in.
  __device__ State merge(State a, State b) const {
    if (a.index == kNoIndex) return b;
    if (b.index == kNoIndex) return a;
    const bool a_nan = math::isnan_(a.value), b_nan = math::isnan_(b.value);
    if (a_nan != b_nan) return a_nan ? a : b;
    if (!a_nan && a.value != b.value) return (kMax ? b.value > a.value : b.value < a.value) ? b : a;
    return b.index < a.index ? b : a;
  }
  __device__ State step(State s, A x, int64_t j) const { return merge(s, State{x, j}); }
  __device__ void store(int64_t o, State s) const {
    const bool empty = s.index == kNoIndex;  // an empty axis: NaN and index 0, as on the CPU
    values[o] = T(empty ? empty_value<A>() : s.value);
    indices[o] = empty ? 0 : s.index;
  }
};

// ---- kernels ------------------------------------------------------------------------------

// Where each output's row starts (kept) and where its j-th element is (reduced), in elements.
struct ReduceGeometry {
  int64_t outputs;
  int64_t count;  // R
  OffsetCalc<1> kept;
  OffsetCalc<1> reduced;
};

// Rows: kThreads consecutive threads own one task, the reduced elements [begin, end) of one
// output (see the file comment). With `parts` > 1 an output's R elements are cut into `parts`
// chunks of `chunk` (a multiple of the vector width, so alignment holds) and each task writes
// its partial state to `partials` instead of the output. kDense: the reduced axes are one
// dense run, so element j of a row is at row + j.
template <int kThreads, bool kDense, class T, class R>
__global__ void __launch_bounds__(kBlockSize)
    reduce_rows_kernel(const T* __restrict__ x, ReduceGeometry g, int64_t parts, int64_t chunk,
                       typename R::State* partials, R r) {
  using A = typename R::A;
  using State = typename R::State;
  constexpr int kTasksPerBlock = kBlockSize / kThreads;
  constexpr int kV = kVectorBytes / sizeof(T);
  const int lane = threadIdx.x % kThreads;
  const auto merge = [&r](const State& a, const State& b) { return r.merge(a, b); };
  const int64_t tasks = g.outputs * parts;
  // The task loop bound is uniform across a group, so the group reduction never diverges.
  for (int64_t task = int64_t(blockIdx.x) * kTasksPerBlock + threadIdx.x / kThreads; task < tasks;
       task += int64_t(gridDim.x) * kTasksPerBlock) {
    const int64_t o = task / parts;
    const int64_t begin = (task % parts) * chunk;
    const int64_t end = begin + chunk < g.count ? begin + chunk : g.count;
    int64_t base[1];
    g.kept.offsets(o, base);
    const T* row = x + base[0];
    State s = r.init();
    if constexpr (kDense) {
      int64_t j0 = begin;
      if (is_aligned(row + begin, kVectorBytes)) {
        const Vec<T, kV>* packs = reinterpret_cast<const Vec<T, kV>*>(row + begin);
        const int64_t nvec = (end - begin) / kV;
        for (int64_t v = lane; v < nvec; v += kThreads) {
          const Vec<T, kV> pack = packs[v];
#pragma unroll
          for (int k = 0; k < kV; ++k) s = r.step(s, A(pack.v[k]), begin + v * kV + k);
        }
        j0 = begin + nvec * kV;
      }
      for (int64_t j = j0 + lane; j < end; j += kThreads) s = r.step(s, A(row[j]), j);
    } else {
      for (int64_t j = begin + lane; j < end; j += kThreads) {
        int64_t off[1];
        g.reduced.offsets(j, off);
        s = r.step(s, A(row[off[0]]), j);
      }
    }
    s = group_allreduce<kThreads>(s, merge);
    if (lane == 0) {
      if (partials != nullptr)
        partials[task] = s;
      else
        r.store(o, s);
    }
  }
}

// Second pass of a split reduction: one thread merges an output's partials, in order.
template <class R>
__global__ void __launch_bounds__(kBlockSize)
    reduce_partials_kernel(const typename R::State* partials, int64_t outputs, int64_t parts, R r) {
  for (int64_t o = global_thread(); o < outputs; o += grid_threads()) {
    typename R::State s = partials[o * parts];
    for (int64_t k = 1; k < parts; ++k) s = r.merge(s, partials[o * parts + k]);
    r.store(o, s);
  }
}

// Columns: a (kColumnTile x kColumnSplit) block owns kColumnTile neighbouring outputs.
template <class T, class R>
__global__ void __launch_bounds__(kBlockSize)
    reduce_columns_kernel(const T* __restrict__ x, ReduceGeometry g, R r) {
  using A = typename R::A;
  using State = typename R::State;
  __shared__ alignas(State) unsigned char raw[kColumnSplit * kColumnTile * sizeof(State)];
  State(*partial)[kColumnTile] = reinterpret_cast<State(*)[kColumnTile]>(raw);
  for (int64_t tile = blockIdx.x; tile * kColumnTile < g.outputs; tile += gridDim.x) {
    const int64_t o = tile * kColumnTile + threadIdx.x;
    State s = r.init();
    if (o < g.outputs) {
      int64_t base[1];
      g.kept.offsets(o, base);
      for (int64_t j = threadIdx.y; j < g.count; j += kColumnSplit) {
        int64_t off[1];
        g.reduced.offsets(j, off);
        s = r.step(s, A(x[base[0] + off[0]]), j);
      }
    }
    partial[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && o < g.outputs) {
#pragma unroll
      for (int k = 1; k < kColumnSplit; ++k) s = r.merge(s, partial[k][threadIdx.x]);
      r.store(o, s);
    }
    __syncthreads();  // the next tile overwrites `partial`
  }
}

// ---- host side ----------------------------------------------------------------------------

ReduceGeometry make_geometry(const Tensor& x, const std::vector<int64_t>& dims, const char* op) {
  std::vector<bool> is_reduced(size_t(x.dim()), false);
  for (int64_t d : dims) {
    NN_CHECK(d >= 0 && d < x.dim(), IndexError, op, ": axis ", d,
             " out of range for a tensor of rank ", x.dim());
    is_reduced[size_t(d)] = true;
  }
  std::vector<int64_t> kept, reduced;
  ReduceGeometry g{1, 1, {}, {}};
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (is_reduced[size_t(d)]) {
      reduced.push_back(d);
      g.count *= x.size(d);
    } else {
      kept.push_back(d);
      g.outputs *= x.size(d);
    }
  }
  g.kept = make_axes_calc(x, kept);
  g.reduced = make_axes_calc(x, reduced);
  return g;
}

// Scratch memory from the caching allocator, given back when the scope ends; the allocator is
// stream-ordered, so the kernels enqueued before that still own it.
class Scratch {
 public:
  Scratch(size_t nbytes, int device) : p_(allocate(nbytes, device)) {}
  ~Scratch() {
    try {
      deallocate(p_);
    } catch (...) {  // cannot happen for a pointer from allocate(); a destructor must not throw
    }
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get() const { return p_; }

 private:
  void* p_;
};

template <int kThreads, class T, class R>
void launch_rows(const T* x, const ReduceGeometry& g, int64_t parts, int64_t chunk,
                 typename R::State* partials, const R& r, bool dense, cudaStream_t stream) {
  const unsigned grid = grid_for(g.outputs * parts, kBlockSize / kThreads);
  if (dense)
    reduce_rows_kernel<kThreads, true>
        <<<grid, kBlockSize, 0, stream>>>(x, g, parts, chunk, partials, r);
  else
    reduce_rows_kernel<kThreads, false>
        <<<grid, kBlockSize, 0, stream>>>(x, g, parts, chunk, partials, r);
  NN_CUDA_CHECK_LAUNCH();
}

template <class T, class R>
void launch_reduce(const Tensor& x, const ReduceGeometry& g, const R& r) {
  using State = typename R::State;
  if (g.outputs == 0) return;
  const T* xp = x.data<T>();
  DeviceScope scope(x);
  const bool reduced_dense = g.reduced.ndim == 0 || g.reduced.contiguous();
  const bool kept_inner_dense =
      g.kept.ndim > 0 && g.kept.strides[g.kept.ndim - 1][0] == 1 && g.count > 1;
  if (kept_inner_dense && !reduced_dense && g.outputs >= kSplitFewOutputs) {
    const dim3 block(kColumnTile, kColumnSplit);
    reduce_columns_kernel<<<grid_for(g.outputs, kColumnTile), block, 0, scope.stream()>>>(xp, g, r);
    NN_CUDA_CHECK_LAUNCH();
  } else if (g.count <= kWarpRowMax) {
    launch_rows<kWarpSize>(xp, g, 1, g.count, static_cast<State*>(nullptr), r, reduced_dense,
                           scope.stream());
  } else if (g.outputs >= kSplitFewOutputs || g.count < 2 * kSplitChunk) {
    launch_rows<kBlockSize>(xp, g, 1, g.count, static_cast<State*>(nullptr), r, reduced_dense,
                            scope.stream());
  } else {
    // Few long rows: a block per output would leave most of the GPU idle, so each row is cut
    // into `parts` chunks reduced by separate blocks, then merged in order by a second pass.
    const int64_t parts = std::min<int64_t>(g.count / kSplitChunk, kMaxSplits);
    constexpr int64_t kV = kVectorBytes / sizeof(T);
    const int64_t chunk = ceil_div(ceil_div(g.count, parts), kV) * kV;
    Scratch scratch(size_t(g.outputs * parts) * sizeof(State), x.device().index);
    State* partials = static_cast<State*>(scratch.get());
    launch_rows<kBlockSize>(xp, g, parts, chunk, partials, r, reduced_dense, scope.stream());
    reduce_partials_kernel<<<grid_for(g.outputs, kBlockSize), kBlockSize, 0, scope.stream()>>>(
        partials, g.outputs, parts, r);
    NN_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void reduce(Tensor& out, ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims,
            int64_t correction) {
  const ReduceGeometry g = make_geometry(x, dims, "reduce");
  if (x.dtype() == Dtype::Int64 || x.dtype() == Dtype::Bool) {
    int64_t* o = out.data<int64_t>();
    auto integral = [&]<class T>() {
      switch (op) {
        case ReduceOp::Sum:
          return launch_reduce<T>(x, g, SumReducer<T, int64_t>{o, 1});
        case ReduceOp::Max:
        case ReduceOp::Min:
          if constexpr (std::is_same_v<T, int64_t>) {
            if (op == ReduceOp::Max)
              return launch_reduce<T>(x, g, ExtremeReducer<T, true>{o, g.count == 0});
            return launch_reduce<T>(x, g, ExtremeReducer<T, false>{o, g.count == 0});
          }
          break;
        case ReduceOp::Mean:
        case ReduceOp::Var:
          break;
      }
      NN_THROW(DtypeError, "reduce: op code ", int(op), " does not take ", dtype_name(x.dtype()),
               ", expected a floating dtype");
    };
    if (x.dtype() == Dtype::Int64)
      integral.template operator()<int64_t>();
    else
      integral.template operator()<bool>();
    return;
  }
  visit_floating(x.dtype(), "reduce", [&]<class T>() {
    using A = acc_t<T>;
    T* o = out.data<T>();
    switch (op) {
      case ReduceOp::Sum:
        return launch_reduce<T>(x, g, SumReducer<T>{o, A(1)});
      case ReduceOp::Mean:
        return launch_reduce<T>(x, g, SumReducer<T>{o, A(g.count)});
      case ReduceOp::Max:
        return launch_reduce<T>(x, g, ExtremeReducer<T, true>{o, g.count == 0});
      case ReduceOp::Min:
        return launch_reduce<T>(x, g, ExtremeReducer<T, false>{o, g.count == 0});
      case ReduceOp::Var: {
        // As PyTorch: divide by max(0, R - correction), so too few elements give NaN or inf.
        const int64_t denom = g.count > correction ? g.count - correction : 0;
        return launch_reduce<T>(x, g, VarReducer<T>{o, A(denom)});
      }
    }
    NN_THROW(ValueError, "reduce: unknown reduce op code ", int(op));
  });
}

void reduce_index(Tensor& values, Tensor& indices, ReduceOp op, const Tensor& x, int64_t dim) {
  NN_CHECK(op == ReduceOp::Max || op == ReduceOp::Min, ValueError,
           "reduce_index: op must be Max or Min, got code ", int(op));
  const ReduceGeometry g = make_geometry(x, {dim}, "reduce_index");
  auto typed = [&]<class T>() {
    T* v = values.data<T>();
    int64_t* i = indices.data<int64_t>();
    if (op == ReduceOp::Max)
      launch_reduce<T>(x, g, IndexReducer<T, true>{v, i});
    else
      launch_reduce<T>(x, g, IndexReducer<T, false>{v, i});
  };
  if (x.dtype() == Dtype::Int64)
    typed.template operator()<int64_t>();
  else
    visit_floating(x.dtype(), "reduce_index", typed);
}

}  // namespace nn::cuda
