// Strided iteration shared by both backends. An OffsetCalc<N> maps a linear element index of
// an output shape to the element offsets of N tensors of that shape (any strides, 0 where
// broadcast). Dimensions that are contiguous in every tensor are merged first, so most calls
// end with one dimension and a cheap loop.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/macros.h"
#include "core/tensor.h"

namespace nn {

constexpr int kMaxDims = 12;

template <int N>
struct OffsetCalc {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[kMaxDims][N] = {};

  // Element offsets (in elements, relative to each tensor's data_ptr()) of linear index i.
  NN_HOST_DEVICE NN_INLINE void offsets(int64_t i, int64_t (&out)[N]) const {
    for (int k = 0; k < N; ++k) out[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      int64_t size = sizes[d];
      int64_t idx = i % size;
      i /= size;
      for (int k = 0; k < N; ++k) out[k] += idx * strides[d][k];
    }
  }
  // True when every tensor is dense and in order: offset i is element i for all of them.
  bool contiguous() const {
    if (ndim == 0) return true;
    if (ndim != 1) return false;
    for (int k = 0; k < N; ++k)
      if (strides[0][k] != 1) return false;
    return true;
  }
};

// Builds the calculator for tensors that all have `shape` (broadcast inputs expanded first).
template <int N>
OffsetCalc<N> make_offset_calc(const Shape& shape, const std::array<const Tensor*, N>& tensors) {
  OffsetCalc<N> c;
  // Drop size-1 dimensions, then merge d into d+1 where every tensor is contiguous across them.
  int64_t sizes[64];
  int64_t strides[64][N];
  int nd = 0;
  NN_CHECK(shape.size() <= 64, ShapeError, "tensor rank ", shape.size(), " exceeds 64");
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    sizes[nd] = shape[d];
    for (int k = 0; k < N; ++k) strides[nd][k] = tensors[k]->strides()[d];
    ++nd;
  }
  int merged = 0;
  for (int d = 0; d < nd; ++d) {
    if (merged > 0) {
      bool can_merge = true;
      for (int k = 0; k < N; ++k)
        if (strides[merged - 1][k] != strides[d][k] * sizes[d]) can_merge = false;
      if (can_merge) {
        sizes[merged - 1] *= sizes[d];
        for (int k = 0; k < N; ++k) strides[merged - 1][k] = strides[d][k];
        continue;
      }
    }
    sizes[merged] = sizes[d];
    for (int k = 0; k < N; ++k) strides[merged][k] = strides[d][k];
    ++merged;
  }
  NN_CHECK(merged <= kMaxDims, ShapeError, "tensor with ", merged,
           " non-mergeable dimensions exceeds the limit of ", kMaxDims);
  c.ndim = merged;
  for (int d = 0; d < merged; ++d) {
    c.sizes[d] = sizes[d];
    for (int k = 0; k < N; ++k) c.strides[d][k] = strides[d][k];
  }
  return c;
}

// A calculator over the axes of x listed in `axes` (a subset, in order), with x's strides:
// walks the kept or the reduced part of a reduction.
inline OffsetCalc<1> make_axes_calc(const Tensor& x, const std::vector<int64_t>& axes) {
  Shape shape, strides;
  for (int64_t d : axes) {
    shape.push_back(x.size(d));
    strides.push_back(x.stride(d));
  }
  Tensor view(x.storage(), shape, strides, x.offset(), x.dtype());
  return make_offset_calc<1>(shape, {&view});
}

}  // namespace nn
