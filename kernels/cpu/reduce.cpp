// CPU reductions: reduce (Sum, Mean, Max, Min, Var over any set of axes) and reduce_index
// (Max, Min with the first index along one axis). Values accumulate in double whatever the
// dtype; Var uses Welford's update, merged across chunks with Chan's formula; NaN propagates.
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

struct SumAcc {
  double sum = 0.0;
  void add(double v, int64_t) { sum += v; }
  void merge(const SumAcc& o) { sum += o.sum; }
};

template <bool kMax>
struct ExtremeAcc {
  double best = kMax ? -kInf : kInf;
  // Once best is NaN no comparison is true, so it stays NaN.
  void add(double v, int64_t) {
    if (std::isnan(v) || (kMax ? v > best : v < best)) best = v;
  }
  void merge(const ExtremeAcc& o) { add(o.best, 0); }
};

struct VarAcc {
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
template <bool kMax>
struct IndexAcc {
  double best = 0.0;
  int64_t index = -1;
  bool beats(double v) const {
    return index < 0 || (!std::isnan(best) && (std::isnan(v) || (kMax ? v > best : v < best)));
  }
  void add(double v, int64_t i) {
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
  auto load = [xp](int64_t off) { return static_cast<double>(static_cast<acc_t<T>>(xp[off])); };
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

}  // namespace

void reduce(Tensor& out, ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims,
            int64_t correction) {
  std::vector<int64_t> kept, reduced;
  split_axes(x, dims, kept, reduced);
  int64_t r_count = 1;
  for (int64_t d : reduced) r_count *= x.size(d);
  const double count = static_cast<double>(r_count);

  visit_floating(x.dtype(), "reduce", [&]<class T>() {
    T* o = out.data<T>();
    auto store = [o](int64_t i, double v) { o[i] = T(static_cast<acc_t<T>>(v)); };
    switch (op) {
      case ReduceOp::Sum:
      case ReduceOp::Mean: {
        const bool mean = op == ReduceOp::Mean;
        reduce_driver<T, SumAcc>(x, kept, reduced, [&](int64_t i, const SumAcc& a) {
          store(i, mean ? a.sum / count : a.sum);  // an empty mean is 0/0 = NaN
        });
        return;
      }
      case ReduceOp::Max:
        reduce_driver<T, ExtremeAcc<true>>(x, kept, reduced, [&](int64_t i, const ExtremeAcc<true>& a) {
          store(i, r_count == 0 ? kNaN : a.best);
        });
        return;
      case ReduceOp::Min:
        reduce_driver<T, ExtremeAcc<false>>(x, kept, reduced, [&](int64_t i, const ExtremeAcc<false>& a) {
          store(i, r_count == 0 ? kNaN : a.best);
        });
        return;
      case ReduceOp::Var: {
        // As PyTorch: divide by max(0, count - correction), so too few elements give NaN or inf.
        const double denom = std::max(0.0, count - static_cast<double>(correction));
        reduce_driver<T, VarAcc>(x, kept, reduced,
                                 [&](int64_t i, const VarAcc& a) { store(i, a.m2 / denom); });
        return;
      }
    }
    NN_THROW(ValueError, "reduce: unknown reduce op code ", int(op));
  });
}

void reduce_index(Tensor& values, Tensor& indices, ReduceOp op, const Tensor& x, int64_t dim) {
  NN_CHECK(op == ReduceOp::Max || op == ReduceOp::Min, ValueError,
           "reduce_index: op must be Max or Min, got code ", int(op));
  std::vector<int64_t> kept, reduced;
  split_axes(x, {dim}, kept, reduced);
  visit_floating(x.dtype(), "reduce_index", [&]<class T>() {
    T* v = values.data<T>();
    int64_t* idx = indices.data<int64_t>();
    auto run = [&]<bool kMax>() {
      reduce_driver<T, IndexAcc<kMax>>(x, kept, reduced, [&](int64_t i, const IndexAcc<kMax>& a) {
        // An empty axis (rejected by the front end) leaves NaN and index 0 rather than garbage.
        v[i] = T(static_cast<acc_t<T>>(a.index < 0 ? kNaN : a.best));
        idx[i] = a.index < 0 ? 0 : a.index;
      });
    };
    if (op == ReduceOp::Max)
      run.template operator()<true>();
    else
      run.template operator()<false>();
  });
}

}  // namespace nn::cpu
