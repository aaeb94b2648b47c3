// Private helpers of the CPU backend: a parallel loop over the backend's thread pool, strided elementwise iteration over an OffsetCalc, and value conversion between the six dtypes.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "core/dtype.h"
#include "core/tensor.h"
#include "kernels/cpu/parallel.h"
#include "kernels/indexing.h"

namespace nn::cpu {

// Below this many elements (or units of comparable work) a loop stays on one thread: starting
// a parallel region costs more than it saves.
constexpr int64_t kParallelGrain = 32768;

// Splits [0, n) into one contiguous range per thread and calls f(begin, end) on each, in
// parallel when `work` (an estimate of the total cost in element-operations) reaches the grain.
template <class F>
void parallel_for(int64_t n, int64_t work, F&& f) {
  if (n <= 0) return;
  const int64_t threads = std::min<int64_t>(max_threads(), n);
  if (threads > 1 && work >= kParallelGrain) {
    run_parallel(threads, [&](int64_t t) {
      int64_t begin = n * t / threads, end = n * (t + 1) / threads;
      if (begin < end) f(begin, end);
    });
    return;
  }
  f(int64_t(0), n);
}

// Calls f(i, off) for i in [begin, end), where off[k] is the element offset of linear index i
// in tensor k. Walks the range with an odometer, so no division happens per element.
template <int N, class F>
void walk_offsets(const OffsetCalc<N>& calc, int64_t begin, int64_t end, F&& f) {
  if (begin >= end) return;
  int64_t off[N] = {};
  if (calc.contiguous()) {
    for (int64_t i = begin; i < end; ++i) {
      for (int k = 0; k < N; ++k) off[k] = i;
      f(i, off);
    }
    return;
  }
  const int last = calc.ndim - 1;
  int64_t idx[kMaxDims] = {};
  int64_t rem = begin;
  for (int d = last; d >= 0; --d) {
    idx[d] = rem % calc.sizes[d];
    rem /= calc.sizes[d];
    for (int k = 0; k < N; ++k) off[k] += idx[d] * calc.strides[d][k];
  }
  int64_t i = begin;
  while (i < end) {
    int64_t run = std::min(calc.sizes[last] - idx[last], end - i);
    for (int64_t r = 0; r < run; ++r, ++i) {
      f(i, off);
      for (int k = 0; k < N; ++k) off[k] += calc.strides[last][k];
    }
    idx[last] += run;
    // Carry into the outer dimensions, rewinding the ones that wrapped.
    for (int d = last; d > 0 && idx[d] == calc.sizes[d]; --d) {
      for (int k = 0; k < N; ++k) off[k] += calc.strides[d - 1][k] - calc.sizes[d] * calc.strides[d][k];
      idx[d] = 0;
      ++idx[d - 1];
    }
  }
}

// Calls f(off) for every element of `shape`, where off[k] is the element offset of tensor k
// (relative to its data_ptr()), one contiguous range of elements per thread.
template <int N, class F>
void for_each_offset(const Shape& shape, const std::array<const Tensor*, N>& tensors, F&& f) {
  int64_t numel = shape_numel(shape);
  if (numel == 0) return;
  OffsetCalc<N> calc = make_offset_calc<N>(shape, tensors);
  parallel_for(numel, numel, [&](int64_t begin, int64_t end) {
    walk_offsets<N>(calc, begin, end, [&](int64_t, const int64_t* off) { f(off); });
  });
}

// The widest exact form of a stored value: acc_t for floating types, itself for int64 and bool.
template <class T>
inline auto widen(T v) {
  if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, bool>) return v;
  else return static_cast<acc_t<T>>(v);
}

// Converts one value between any two of the six dtypes (C++ types). Floating to int64
// truncates toward zero, saturates at the int64 range and maps NaN to 0 (a plain cast is
// undefined behaviour there); anything to bool is "not equal to zero" (NaN is true).
template <class To, class From>
inline To convert(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else {
    auto w = widen(v);
    using W = decltype(w);
    if constexpr (std::is_same_v<To, bool>) {
      return w != W(0);
    } else if constexpr (std::is_same_v<To, int64_t>) {
      if constexpr (std::is_floating_point_v<W>) {
        if (w != w) return 0;
        constexpr double kLimit = 9223372036854775807.0;  // 2^63
        if (double(w) >= kLimit) return std::numeric_limits<int64_t>::max();
        if (double(w) <= -kLimit) return std::numeric_limits<int64_t>::min();
      }
      return static_cast<int64_t>(w);
    } else if constexpr (std::is_same_v<To, bfloat16> || std::is_same_v<To, float16>) {
      return To(static_cast<float>(w));
    } else {
      return static_cast<To>(w);
    }
  }
}

}  // namespace nn::cpu
