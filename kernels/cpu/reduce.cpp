// CPU reductions: reduce (Sum, Mean, Max, Min, Var over any set of axes) and reduce_index
// (Max, Min with the first index along one axis). Values of the floating dtypes accumulate in
// double; int64 and bool ones in int64, exactly (a sum wraps on overflow, as in PyTorch), and a
// sum of either is int64. Var uses Welford's update, merged across chunks with Chan's formula;
// NaN propagates.
//
// Decomposition: x is split into kept axes (one per output element, out is contiguous) and
// reduced axes (R elements per output). Two loop orders:
//  - per output: each output walks its R elements; outputs are spread over threads, or, when
//    there are too few outputs, each output's R elements are cut into fixed chunks whose
//    partial accumulators merge in order (the result does not depend on the thread count);
//  - blocked: when the kept axes are the contiguous ones (a column sum, a bias gradient), a
//    block of neighbouring outputs is accumulated together so every read is contiguous.
#include <array>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/loops.h"

namespace nn::cpu {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kBlock = 256;       // outputs accumulated together in the blocked order
constexpr int64_t kChunk = 16384;     // reduced elements per partial accumulator
constexpr int64_t kMaxChunks = 64;

// What the accumulators see of an element of T: double for the floating dtypes, int64 for int64
// and bool (exact beyond 2^53).
template <class T>
constexpr bool kIntegral = std::is_same_v<T, int64_t> || std::is_same_v<T, bool>;
template <class T>
using value_t = std::conditional_t<kIntegral<T>, int64_t, double>;

// What an output of an empty extent (rejected by the front end) would hold: NaN, 0 for int64.
template <class V>
V empty_value() {
  if constexpr (std::is_floating_point_v<V>)
    return V(kNaN);
  else
    return V(0);
}

// The start of a running max (kMax) or min: below or above every value of V.
template <class V, bool kMax>
V extreme_start() {
  if constexpr (std::is_integral_v<V>)
    return kMax ? std::numeric_limits<V>::lowest() : std::numeric_limits<V>::max();
  else
    return kMax ? V(-kInf) : V(kInf);
}

template <class V>
bool is_nan(V v) {
  if constexpr (std::is_floating_point_v<V>)
    return std::isnan(v);
  else
    return false;
}

template <class V>
struct SumAcc {
  using Value = V;
  V sum = 0;
  void add(V v, int64_t) {
    if constexpr (std::is_integral_v<V>)  // two's complement wrap, not undefined overflow
      sum = static_cast<V>(static_cast<uint64_t>(sum) + static_cast<uint64_t>(v));
    else
      sum += v;
  }
  void merge(const SumAcc& o) { add(o.sum, 0); }
};

template <class V, bool kMax>
struct ExtremeAcc {
  using Value = V;
  V best = extreme_start<V, kMax>();
  // Once best is NaN no comparison is true, so it stays NaN.
  void add(V v, int64_t) {
    if (is_nan(v) || (kMax ? v > best : v < best)) best = v;
  }
  void merge(const ExtremeAcc& o) { add(o.best, 0); }
};

struct VarAcc {
  using Value = double;
  double count = 0.0, mean = 0.0, m2 = 0.0;
  void add(double v, int64_t) {
    count += 1.0;
    double d = v - mean;
    mean += d / count;
    m2 += d * (v - mean);
  }
  void merge(const VarAcc& o) {
    if (o.count == 0.0) return;
    if (count == 0.0) {
      *this = o;
      return;
    }
    double n = count + o.count, d = o.mean - mean;
    mean += d * (o.count / n);
    m2 += o.m2 + d * d * (count * o.count / n);
    count = n;
  }
};

// The extreme value and the first index where it occurs; a NaN is more extreme than anything.
template <class V, bool kMax>
struct IndexAcc {
  using Value = V;
  V best = 0;
  int64_t index = -1;
  bool beats(V v) const {
    return index < 0 || (!is_nan(best) && (is_nan(v) || (kMax ? v > best : v < best)));
  }
  void add(V v, int64_t i) {
    if (beats(v)) best = v, index = i;
  }
  // `o` covers later indices, so on a tie the current one stays.
  void merge(const IndexAcc& o) {
    if (o.index >= 0 && beats(o.best)) *this = o;
  }
};

// Runs Acc over the `reduced` axes of x for every combination of the `kept` axes (in order)
// and calls finish(o, acc) for output o. Acc::add gets the value and its linear index among
// the R reduced elements.
template <class T, class Acc, class Finish>
void reduce_driver(const Tensor& x, const std::vector<int64_t>& kept,
                   const std::vector<int64_t>& reduced, Finish&& finish) {
  const T* xp = x.data<T>();
  OffsetCalc<1> kcalc = make_axes_calc(x, kept);
  OffsetCalc<1> rcalc = make_axes_calc(x, reduced);
  int64_t outputs = 1, r_count = 1;
  for (int64_t d : kept) outputs *= x.size(d);
  for (int64_t d : reduced) r_count *= x.size(d);
  if (outputs == 0) return;
  auto load = [xp](int64_t off) {
    using V = typename Acc::Value;
    if constexpr (kIntegral<T>)
      return static_cast<V>(xp[off]);
    else
      return static_cast<V>(static_cast<acc_t<T>>(xp[off]));
  };
  auto accumulate = [&](Acc& acc, int64_t base, int64_t begin, int64_t end) {
    walk_offsets<1>(rcalc, begin, end,
                    [&](int64_t r, const int64_t* off) { acc.add(load(base + off[0]), r); });
  };
  const int64_t work = outputs * std::max<int64_t>(r_count, 1);
  const int threads = max_threads();

  const bool kept_inner_dense = kcalc.ndim > 0 && kcalc.strides[kcalc.ndim - 1][0] == 1;
  const bool reduced_inner_dense = rcalc.ndim == 0 || rcalc.strides[rcalc.ndim - 1][0] == 1;
  const int64_t blocks = (outputs + kBlock - 1) / kBlock;
  if (kept_inner_dense && !reduced_inner_dense && (blocks >= threads || work < kParallelGrain)) {
    parallel_for(blocks, work, [&](int64_t block_begin, int64_t block_end) {
      std::array<Acc, kBlock> accs;  // on the stack: nothing may throw inside the region
      std::array<int64_t, kBlock> bases;
      for (int64_t b = block_begin; b < block_end; ++b) {
        const int64_t o0 = b * kBlock, n = std::min(kBlock, outputs - o0);
        walk_offsets<1>(kcalc, o0, o0 + n,
                        [&](int64_t o, const int64_t* off) { bases[o - o0] = off[0]; });
        std::fill(accs.begin(), accs.begin() + n, Acc{});
        walk_offsets<1>(rcalc, 0, r_count, [&](int64_t r, const int64_t* off) {
          for (int64_t j = 0; j < n; ++j) accs[j].add(load(bases[j] + off[0]), r);
        });
        for (int64_t j = 0; j < n; ++j) finish(o0 + j, accs[j]);
      }
    });
    return;
  }

  if (outputs >= threads || work < kParallelGrain) {
    parallel_for(outputs, work, [&](int64_t begin, int64_t end) {
      walk_offsets<1>(kcalc, begin, end, [&](int64_t o, const int64_t* off) {
        Acc acc{};
        accumulate(acc, off[0], 0, r_count);
        finish(o, acc);
      });
    });
    return;
  }

  // Few outputs, many elements each: fixed chunks of the reduced range, merged in order.
  const int64_t chunks = std::clamp<int64_t>(r_count / kChunk, 1, kMaxChunks);
  std::vector<Acc> partial(chunks);
  for (int64_t o = 0; o < outputs; ++o) {
    int64_t base[1];
    kcalc.offsets(o, base);
    std::fill(partial.begin(), partial.end(), Acc{});
    parallel_for(chunks, r_count, [&](int64_t c_begin, int64_t c_end) {
      for (int64_t c = c_begin; c < c_end; ++c)
        accumulate(partial[c], base[0], r_count * c / chunks, r_count * (c + 1) / chunks);
    });
    Acc acc = partial[0];
    for (int64_t c = 1; c < chunks; ++c) acc.merge(partial[c]);
    finish(o, acc);
  }
}

// Splits the axes of x into kept and reduced ones.
void split_axes(const Tensor& x, const std::vector<int64_t>& dims, std::vector<int64_t>& kept,
                std::vector<int64_t>& reduced) {
  std::vector<bool> is_reduced(x.dim(), false);
  for (int64_t d : dims) {
    NN_CHECK(d >= 0 && d < x.dim(), IndexError, "reduce: axis ", d, " out of range for a tensor of rank ",
             x.dim());
    is_reduced[d] = true;
  }
  for (int64_t d = 0; d < x.dim(); ++d) (is_reduced[d] ? reduced : kept).push_back(d);
}

// reduce for x of type T into out of type Out: T itself for the floating dtypes and for int64
// (Max, Min), int64 for a Sum of int64 or bool. Mean and Var need a floating T.
template <class T, class Out>
void reduce_typed(Tensor& out, ReduceOp op, const Tensor& x, const std::vector<int64_t>& kept,
                  const std::vector<int64_t>& reduced, int64_t r_count, int64_t correction) {
  using V = value_t<T>;
  const double count = static_cast<double>(r_count);
  Out* o = out.data<Out>();
  auto store = [o](int64_t i, V v) {
    if constexpr (std::is_same_v<Out, V>)
      o[i] = v;
    else
      o[i] = Out(static_cast<acc_t<Out>>(v));
  };
  switch (op) {
    case ReduceOp::Sum:
      reduce_driver<T, SumAcc<V>>(x, kept, reduced,
                                  [&](int64_t i, const SumAcc<V>& a) { store(i, a.sum); });
      return;
    case ReduceOp::Max:
      reduce_driver<T, ExtremeAcc<V, true>>(x, kept, reduced,
                                            [&](int64_t i, const ExtremeAcc<V, true>& a) {
                                              store(i, r_count == 0 ? empty_value<V>() : a.best);
                                            });
      return;
    case ReduceOp::Min:
      reduce_driver<T, ExtremeAcc<V, false>>(x, kept, reduced,
                                             [&](int64_t i, const ExtremeAcc<V, false>& a) {
                                               store(i, r_count == 0 ? empty_value<V>() : a.best);
                                             });
      return;
    case ReduceOp::Mean:
    case ReduceOp::Var:
      if constexpr (std::is_same_v<V, double>) {
        if (op == ReduceOp::Mean) {
          reduce_driver<T, SumAcc<double>>(x, kept, reduced,
                                           [&](int64_t i, const SumAcc<double>& a) {
                                             store(i, a.sum / count);  // an empty mean is 0/0 = NaN
                                           });
          return;
        }
        // As PyTorch: divide by max(0, count - correction), so too few elements give NaN or inf.
        const double denom = std::max(0.0, count - static_cast<double>(correction));
        reduce_driver<T, VarAcc>(x, kept, reduced,
                                 [&](int64_t i, const VarAcc& a) { store(i, a.m2 / denom); });
        return;
      } else {
        NN_THROW(DtypeError, "reduce: mean and var of ", dtype_name(x.dtype()),
                 " are not supported, expected a floating dtype");
      }
  }
  NN_THROW(ValueError, "reduce: unknown reduce op code ", int(op));
}

}  // namespace

void reduce(Tensor& out, ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims,
            int64_t correction) {
  std::vector<int64_t> kept, reduced;
  split_axes(x, dims, kept, reduced);
  int64_t r_count = 1;
  for (int64_t d : reduced) r_count *= x.size(d);
  auto run = [&]<class T, class Out>() {
    reduce_typed<T, Out>(out, op, x, kept, reduced, r_count, correction);
  };
  switch (x.dtype()) {
    case Dtype::Int64:
      return run.template operator()<int64_t, int64_t>();
    case Dtype::Bool:
      NN_CHECK(op == ReduceOp::Sum, DtypeError, "reduce: only sum takes bool, got op code ",
               int(op));
      return run.template operator()<bool, int64_t>();
    default:
      visit_floating(x.dtype(), "reduce", [&]<class T>() { run.template operator()<T, T>(); });
  }
}

void reduce_index(Tensor& values, Tensor& indices, ReduceOp op, const Tensor& x, int64_t dim) {
  NN_CHECK(op == ReduceOp::Max || op == ReduceOp::Min, ValueError,
           "reduce_index: op must be Max or Min, got code ", int(op));
  std::vector<int64_t> kept, reduced;
  split_axes(x, {dim}, kept, reduced);
  auto typed = [&]<class T>() {
    using V = value_t<T>;
    T* v = values.data<T>();
    int64_t* idx = indices.data<int64_t>();
    auto run = [&]<bool kMax>() {
      reduce_driver<T, IndexAcc<V, kMax>>(x, kept, reduced,
                                          [&](int64_t i, const IndexAcc<V, kMax>& a) {
                                            const V best = a.index < 0 ? empty_value<V>() : a.best;
                                            if constexpr (kIntegral<T>)
                                              v[i] = best;
                                            else
                                              v[i] = T(static_cast<acc_t<T>>(best));
                                            idx[i] = a.index < 0 ? 0 : a.index;
                                          });
    };
    if (op == ReduceOp::Max)
      run.template operator()<true>();
    else
      run.template operator()<false>();
  };
  if (x.dtype() == Dtype::Int64)
    typed.template operator()<int64_t>();
  else
    visit_floating(x.dtype(), "reduce_index", typed);
}

}  // namespace nn::cpu
