// Draws of shapes and parameters, and the float64 reference helpers (broadcast maps,
// reductions, lanes along an axis, matmul) shared by the rows of the op table. Plain host code.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "tests/op_harness.h"

namespace nn::test {

inline const Domain kSym{-2.0, 2.0};
inline const Domain kPos{0.1, 4.0};
inline const Domain kInts{-2.0, 2.0, true};
inline const Domain kBool{0.0, 1.0, false, true};

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- shape and parameter draws --------------------------------------------------------------
inline int64_t uniform_int(std::mt19937& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}
inline bool coin(std::mt19937& rng, double p = 0.5) { return std::bernoulli_distribution(p)(rng); }

// Sizes 2..5, with size-1 dims (broadcasting corners) and, when allowed, size-0 dims.
inline Shape random_shape(std::mt19937& rng, int64_t min_rank, int64_t max_rank, bool allow_empty,
                          int64_t min_size = 1) {
  Shape s(uniform_int(rng, min_rank, max_rank));
  for (int64_t& d : s) {
    d = uniform_int(rng, std::max<int64_t>(min_size, 2), 5);
    if (min_size <= 1 && coin(rng, 0.2)) d = 1;
  }
  if (allow_empty && !s.empty() && coin(rng, 0.08))
    s[uniform_int(rng, 0, int64_t(s.size()) - 1)] = 0;
  return s;
}

// k shapes that broadcast together: leading dims dropped and size-1 dims sprinkled per input.
inline Draw broadcast_draw(std::mt19937& rng, int k, bool allow_empty) {
  Shape out = random_shape(rng, 0, 4, allow_empty);
  Draw d;
  for (int i = 0; i < k; ++i) {
    Shape s = out;
    if (coin(rng, 0.3)) s.erase(s.begin(), s.begin() + uniform_int(rng, 0, int64_t(s.size())));
    for (int64_t& x : s)
      if (coin(rng, 0.25)) x = 1;
    d.shapes.push_back(s);
  }
  d.shapes[uniform_int(rng, 0, k - 1)] = out;  // keep the full shape reachable from one input
  return d;
}

inline Draw same_shape_draw(std::mt19937& rng, int k) {
  Shape s = random_shape(rng, 0, 4, true);
  return Draw{std::vector<Shape>(k, s)};
}

// Reduced axes: a random subset (empty = all), some spelled negative.
inline std::vector<int64_t> random_dims(std::mt19937& rng, int64_t rank) {
  std::vector<int64_t> dims;
  if (coin(rng, 0.2)) return dims;
  for (int64_t d = 0; d < rank; ++d)
    if (coin(rng)) dims.push_back(coin(rng) ? d : d - rank);
  return dims;
}

inline int64_t random_axis(std::mt19937& rng, int64_t rank) {
  int64_t d = uniform_int(rng, 0, rank - 1);
  return coin(rng) ? d : d - rank;
}

inline int64_t wrap(int64_t d, int64_t rank) { return d < 0 ? d + rank : d; }

// ---- reference helpers ----------------------------------------------------------------------
template <class F>
inline HostTensor map_broadcast(const std::vector<HostTensor>& in, F f) {
  std::vector<Shape> shapes;
  for (const HostTensor& t : in) shapes.push_back(t.shape);
  HostTensor out{broadcast_shapes(shapes), {}};
  out.v.resize(out.numel());
  std::vector<double> args(in.size());
  for (int64_t i = 0; i < out.numel(); ++i) {
    std::vector<int64_t> idx = unravel(i, out.shape);
    for (size_t k = 0; k < in.size(); ++k)
      args[k] = in[k].v[broadcast_offset(in[k].shape, out.shape, idx)];
    out.v[i] = f(args);
  }
  return out;
}

// Reduces x over `dims` (empty = all) with f(lane values) -> value.
template <class F>
inline HostTensor reduce_ref(const HostTensor& x, std::vector<int64_t> dims, bool keepdim, F f) {
  const int64_t rank = int64_t(x.shape.size());
  std::vector<bool> red(rank, dims.empty());
  for (int64_t d : dims) red[wrap(d, rank)] = true;
  Shape kept = x.shape;
  for (int64_t d = 0; d < rank; ++d)
    if (red[d]) kept[d] = 1;
  std::vector<std::vector<double>> lanes(shape_numel(kept));
  for (int64_t i = 0; i < x.numel(); ++i) {
    std::vector<int64_t> idx = unravel(i, x.shape);
    for (int64_t d = 0; d < rank; ++d)
      if (red[d]) idx[d] = 0;
    lanes[ravel(idx, kept)].push_back(x.v[i]);
  }
  HostTensor out{kept, {}};
  for (const auto& lane : lanes) out.v.push_back(f(lane));
  if (!keepdim) {
    out.shape.clear();
    for (int64_t d = 0; d < rank; ++d)
      if (!red[d]) out.shape.push_back(x.shape[d]);
  }
  return out;
}

// Applies f(lane) -> lane of the same length along `dim` of x (several inputs, same shape).
template <class F>
inline HostTensor along_dim(const std::vector<HostTensor>& in, int64_t dim, F f) {
  const Shape& s = in[0].shape;
  const int64_t rank = int64_t(s.size());
  HostTensor out{s, std::vector<double>(in[0].v.size())};
  if (rank == 0) {
    std::vector<std::vector<double>> lanes;
    for (const HostTensor& t : in) lanes.push_back(t.v);
    out.v = f(lanes);
    return out;
  }
  dim = wrap(dim, rank);
  int64_t n = s[dim], inner = 1;
  for (int64_t d = dim + 1; d < rank; ++d) inner *= s[d];
  const int64_t outer = n == 0 ? 0 : int64_t(in[0].v.size()) / (n * inner);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < inner; ++j) {
      std::vector<std::vector<double>> lanes(in.size(), std::vector<double>(n));
      for (size_t k = 0; k < in.size(); ++k)
        for (int64_t i = 0; i < n; ++i) lanes[k][i] = in[k].v[(o * n + i) * inner + j];
      std::vector<double> r = f(lanes);
      for (int64_t i = 0; i < n; ++i) out.v[(o * n + i) * inner + j] = r[i];
    }
  }
  return out;
}

inline double lane_sum(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0);
}
inline double lane_mean(const std::vector<double>& v) {
  return v.empty() ? kNaN : lane_sum(v) / double(v.size());
}
inline double lane_var(const std::vector<double>& v, int64_t correction) {
  double m = lane_mean(v), ss = 0.0;
  for (double x : v) ss += (x - m) * (x - m);
  return ss / double(int64_t(v.size()) - correction);
}
// First index of the extreme value (max when want_max).
inline int64_t lane_arg(const std::vector<double>& v, bool want_max) {
  int64_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (want_max ? v[i] > v[best] : v[i] < v[best]) best = int64_t(i);
  return best;
}

// a @ b with NumPy 1-D promotion and broadcast batch dims; trans flags swap the last two dims.
inline HostTensor matmul_ref(HostTensor a, HostTensor b, bool ta, bool tb) {
  auto transpose_last = [](HostTensor t) {
    const size_t r = t.shape.size();
    Shape s = t.shape;
    std::swap(s[r - 1], s[r - 2]);
    HostTensor o{s, std::vector<double>(t.v.size())};
    for (int64_t i = 0; i < o.numel(); ++i) {
      std::vector<int64_t> idx = unravel(i, s);
      std::swap(idx[r - 1], idx[r - 2]);
      o.v[i] = t.v[ravel(idx, t.shape)];
    }
    return o;
  };
  if (ta) a = transpose_last(a);
  if (tb) b = transpose_last(b);
  const bool a1 = a.shape.size() == 1, b1 = b.shape.size() == 1;
  if (a1) a.shape.insert(a.shape.begin(), 1);
  if (b1) b.shape.push_back(1);
  const size_t ra = a.shape.size(), rb = b.shape.size();
  const int64_t m = a.shape[ra - 2], k = a.shape[ra - 1], n = b.shape[rb - 1];
  Shape batch = broadcast_shapes(
      {Shape(a.shape.begin(), a.shape.end() - 2), Shape(b.shape.begin(), b.shape.end() - 2)});
  Shape ba(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
  Shape os = batch;
  os.push_back(m);
  os.push_back(n);
  HostTensor out{os, std::vector<double>(shape_numel(os), 0.0)};
  const int64_t nb = shape_numel(batch);
  for (int64_t bi = 0; bi < nb; ++bi) {
    std::vector<int64_t> bidx = unravel(bi, batch);
    const int64_t oa = broadcast_offset(ba, batch, bidx) * m * k;
    const int64_t ob = broadcast_offset(bb, batch, bidx) * k * n;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0.0;
        for (int64_t p = 0; p < k; ++p) acc += a.v[oa + i * k + p] * b.v[ob + p * n + j];
        out.v[(bi * m + i) * n + j] = acc;
      }
  }
  if (a1) out.shape.erase(out.shape.end() - 2);
  if (b1) out.shape.pop_back();
  return out;
}

}  // namespace nn::test
