// CPU softmax and log_softmax, forward and backward, along any axis of contiguous tensors.
// The tensor is viewed as [outer, n, inner] with the softmax axis of length n in the middle.
// A task is a tile of up to kTile columns of one outer slice: it keeps one running maximum and
// sum per column and sweeps the n rows in order, so reads are contiguous whatever the axis.
// Exponentials are computed in acc_t<T> (as the CUDA kernels do) and summed in double; the
// row maximum is subtracted first so large logits do not overflow.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/backend.h"
#include "kernels/cpu/loops.h"
#include "kernels/math.h"

namespace nn::cpu {

namespace {

struct Layout {
  int64_t outer = 1, n = 1, inner = 1;
};

Layout layout_of(const Tensor& t, int64_t dim, const char* op) {
  NN_CHECK(dim >= 0 && dim < t.dim(), IndexError, op, ": dim ", dim, " out of range for a tensor of rank ",
           t.dim());
  Layout l;
  for (int64_t d = 0; d < dim; ++d) l.outer *= t.size(d);
  l.n = t.size(dim);
  for (int64_t d = dim + 1; d < t.dim(); ++d) l.inner *= t.size(d);
  return l;
}

// Calls body(base, width, scratch_a, scratch_b) for every tile: `width` (<= kTile) neighbouring
// columns of one outer slice, starting at element `base`, rows l.inner apart. Tiles are spread
// over threads; the scratch buffers (one double per column) live on each thread's stack.
constexpr int64_t kTile = 512;

template <class Body>
void for_each_tile(const Layout& l, Body&& body) {
  if (l.outer * l.n * l.inner == 0) return;
  const int64_t tiles = (l.inner + kTile - 1) / kTile;
  parallel_for(l.outer * tiles, l.outer * l.n * l.inner * 4, [&](int64_t begin, int64_t end) {
    double a[kTile], b[kTile];
    for (int64_t t = begin; t < end; ++t) {
      const int64_t o = t / tiles, j0 = (t % tiles) * kTile;
      body(o * l.n * l.inner + j0, std::min(kTile, l.inner - j0), a, b);
    }
  });
}

}  // namespace

void softmax(Tensor& out, const Tensor& x, int64_t dim, bool log) {
  const Layout l = layout_of(x, dim, "softmax");
  visit_floating(x.dtype(), "softmax", [&]<class T>() {
    using A = acc_t<T>;
    constexpr bool kExact = std::is_same_v<T, A>;
    const T* xp = x.data<T>();
    T* yp = out.data<T>();
    for_each_tile(l, [&](int64_t base, int64_t width, double* max, double* sum) {
      const T* xs = xp + base;
      T* ys = yp + base;
      for (int64_t j = 0; j < width; ++j) max[j] = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < width; ++j) sum[j] = 0.0;
      for (int64_t r = 0; r < l.n; ++r)
        for (int64_t j = 0; j < width; ++j) {
          double v = static_cast<A>(xs[r * l.inner + j]);
          if (std::isnan(v) || v > max[j]) max[j] = v;  // a NaN max stays NaN: no v exceeds it
        }
      for (int64_t r = 0; r < l.n; ++r)
        for (int64_t j = 0; j < width; ++j) {
          A shifted = static_cast<A>(xs[r * l.inner + j]) - static_cast<A>(max[j]);
          A e = math::exp_(shifted);
          sum[j] += static_cast<double>(e);
          // softmax keeps exp(x - max) to normalise below when T holds it without rounding.
          if constexpr (kExact) {
            if (!log) ys[r * l.inner + j] = e;
          }
        }
      for (int64_t r = 0; r < l.n; ++r)
        for (int64_t j = 0; j < width; ++j) {
          const int64_t k = r * l.inner + j;
          if (log) {
            // (x - max) first: it is exact near the maximum, where precision matters most.
            ys[k] = T((static_cast<A>(xs[k]) - static_cast<A>(max[j])) - static_cast<A>(std::log(sum[j])));
          } else {
            // A half-precision y would have rounded exp before the division: recompute it.
            A e;
            if constexpr (kExact)
              e = ys[k];
            else
              e = math::exp_(static_cast<A>(xs[k]) - static_cast<A>(max[j]));
            ys[k] = T(static_cast<A>(static_cast<double>(e) / sum[j]));
          }
        }
    });
  });
}

void softmax_backward(Tensor& out, const Tensor& grad_y, const Tensor& y, int64_t dim, bool log) {
  const Layout l = layout_of(y, dim, "softmax_backward");
  visit_floating(y.dtype(), "softmax_backward", [&]<class T>() {
    using A = acc_t<T>;
    const T* gp = grad_y.data<T>();
    const T* yp = y.data<T>();
    T* op = out.data<T>();
    for_each_tile(l, [&](int64_t base, int64_t width, double* dot, double*) {
      const T* gs = gp + base;
      const T* ys = yp + base;
      T* os = op + base;
      // softmax:     dx = y * (g - sum(g * y))
      // log_softmax: dx = g - exp(y) * sum(g)
      for (int64_t j = 0; j < width; ++j) dot[j] = 0.0;
      for (int64_t r = 0; r < l.n; ++r)
        for (int64_t j = 0; j < width; ++j) {
          const int64_t k = r * l.inner + j;
          double g = static_cast<A>(gs[k]);
          dot[j] += log ? g : g * static_cast<double>(static_cast<A>(ys[k]));
        }
      for (int64_t r = 0; r < l.n; ++r)
        for (int64_t j = 0; j < width; ++j) {
          const int64_t k = r * l.inner + j;
          A g = static_cast<A>(gs[k]), yv = static_cast<A>(ys[k]), s = static_cast<A>(dot[j]);
          os[k] = T(log ? g - math::exp_(yv) * s : yv * (g - s));
        }
    });
  });
}

}  // namespace nn::cpu
