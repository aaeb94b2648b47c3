// CPU rows of max/avg pooling and adaptive average pooling, forward and backward, NCHW.
// A task owns whole planes (one (n, c) pair each): forward reads each output's window once (max
// pooling a row of outputs at a time, tap by tap) and writes the output; backward zeroes the plane
// and adds each output's gradient into its window, so overlapping windows accumulate without any
// two tasks touching one element. Arithmetic is in acc_t (float for the half types); a half-typed
// plane's gradient accumulates in a float buffer and is rounded once. 2x2 stride-2 max pooling
// (most CNNs') has its own branch-free path, four float outputs per SSE2 step.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "kernels/backend.h"
#include "kernels/cpu/loops.h"

namespace nn::cpu {

namespace {

// The index of a max-pooling window that covers only padding (dilation can skip over the input).
constexpr int64_t kNoInput = -1;

// One axis of a pooling window: output i reads input rows [start, end) of the input, and the
// window (padding included) spans `span` rows.
struct Window {
  int64_t start, end, span;
};

// Avg pooling (PyTorch's rule): the window is clipped to the padded input for `span`, to the
// input itself for [start, end).
Window avg_window(int64_t i, int64_t stride, int64_t pad, int64_t kernel, int64_t in) {
  const int64_t lo = i * stride - pad;
  const int64_t hi = std::min(lo + kernel, in + pad);
  return {std::max<int64_t>(lo, 0), std::min(hi, in), hi - lo};
}

Window adaptive_window(int64_t i, int64_t in, int64_t out) {
  const int64_t lo = i * in / out, hi = ((i + 1) * in + out - 1) / out;
  return {lo, hi, hi - lo};
}

// Gradient of one plane, accumulated in A: dx itself when T is A, else a float buffer that is
// rounded into dx when the plane is done.
template <class T>
class PlaneGrad {
 public:
  using A = acc_t<T>;
  PlaneGrad(T* dx, int64_t size) : dx_(dx), size_(size) {
    if constexpr (std::is_same_v<T, A>) {
      acc_ = dx;
    } else {
      buf_.assign(size_t(size), A(0));
      acc_ = buf_.data();
    }
    std::fill(acc_, acc_ + size_, A(0));
  }
  A* data() { return acc_; }
  void finish() {
    if constexpr (!std::is_same_v<T, A>)
      for (int64_t i = 0; i < size_; ++i) dx_[i] = T(acc_[i]);
  }

 private:
  T* dx_;
  int64_t size_;
  A* acc_ = nullptr;
  std::vector<A> buf_;
};

// Calls f(plane index) for the N C planes, a range of them per thread; `per_plane` is the work
// of one.
template <class F>
void for_planes(int64_t planes, int64_t per_plane, F&& f) {
  parallel_for(planes, planes * per_plane, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) f(p);
  });
}

// The output positions [lo, hi) along one axis for which kernel tap k (input position
// i stride - pad + k dilation) lies inside the input.
struct Span {
  int64_t lo, hi;
};
Span tap_span(int64_t k, int64_t stride, int64_t pad, int64_t dilation, int64_t in, int64_t out) {
  const int64_t offset = k * dilation - pad;
  int64_t lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  int64_t hi = in - 1 - offset < 0 ? 0 : (in - 1 - offset) / stride + 1;
  lo = std::min(lo, out);
  return {lo, std::clamp(hi, lo, out)};
}

// One kernel tap over a row of outputs [span.lo, span.hi): output ow reads in[base + ow stride].
// Taps come in row-major window order: replacing only on a larger value or the first NaN keeps
// the first maximum of a tie and the first NaN. kStride: the stride as a constant (0: `stride`).
template <class T, int64_t kStride>
void max_taps(acc_t<T>* best, int64_t* at, const T* in, int64_t base, int64_t stride, Span span) {
  using A = acc_t<T>;
  const int64_t s = kStride ? kStride : stride;
  for (int64_t ow = span.lo; ow < span.hi; ++ow) {
    const int64_t pos = base + ow * s;
    const A v = static_cast<A>(in[pos]);
    const A b = best[ow];
    const int64_t a = at[ow];
    const bool take = (a == kNoInput) | ((b == b) & !(v <= b));
    best[ow] = take ? v : b;
    at[ow] = take ? pos : a;
  }
}

// Replaces (best, at) with (v, pos) when v is larger or the first NaN (see max_taps).
template <class A>
inline void max_take(A& best, int64_t& at, A v, int64_t pos) {
  const bool take = (best == best) & !(v <= best);
  best = take ? v : best;
  at = take ? pos : at;
}

#if defined(__SSE2__)
// Four float outputs of a 2x2 stride-2 row at a time (the scalar loop of max_pool_2x2 below, in
// SSE2 lanes): the even and odd taps of each input row are split apart by shuffles, and the
// winning tap's offset in the plane is built in int32 lanes and widened to int64. Returns how
// many outputs it wrote (a multiple of 4) and sets `nan` when a window it read holds a NaN.
int64_t max_pool_2x2_row_sse(const float* r0, const float* r1, float* out, int64_t* idx, int64_t wo,
                             int64_t w, int64_t top, bool& nan) {
  const __m128i one = _mm_set1_epi32(1), zero = _mm_setzero_si128();
  const __m128i bottom_row = _mm_set1_epi32(int32_t(w)), lane = _mm_set_epi32(6, 4, 2, 0);
  int nan_bits = 0;
  int64_t ow = 0;
  for (; ow + 4 <= wo; ow += 4) {
    const __m128 t0 = _mm_loadu_ps(r0 + 2 * ow), t1 = _mm_loadu_ps(r0 + 2 * ow + 4);
    const __m128 b0 = _mm_loadu_ps(r1 + 2 * ow), b1 = _mm_loadu_ps(r1 + 2 * ow + 4);
    const __m128 a = _mm_shuffle_ps(t0, t1, _MM_SHUFFLE(2, 0, 2, 0));
    const __m128 b = _mm_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 1, 3, 1));
    const __m128 c = _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0));
    const __m128 d = _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1));
    const __m128 top_max = _mm_max_ps(a, b), bottom_max = _mm_max_ps(c, d);
    _mm_storeu_ps(out + ow, _mm_max_ps(top_max, bottom_max));
    nan_bits |= _mm_movemask_ps(_mm_or_ps(_mm_cmpunord_ps(a, b), _mm_cmpunord_ps(c, d)));
    if (idx) {
      const __m128i k_top = _mm_and_si128(_mm_castps_si128(_mm_cmpgt_ps(b, a)), one);
      const __m128i k_bottom =
          _mm_add_epi32(bottom_row, _mm_and_si128(_mm_castps_si128(_mm_cmpgt_ps(d, c)), one));
      const __m128i pick = _mm_castps_si128(_mm_cmpgt_ps(bottom_max, top_max));
      const __m128i k = _mm_xor_si128(k_top, _mm_and_si128(_mm_xor_si128(k_top, k_bottom), pick));
      const __m128i pos =
          _mm_add_epi32(k, _mm_add_epi32(_mm_set1_epi32(int32_t(top + 2 * ow)), lane));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(idx + ow), _mm_unpacklo_epi32(pos, zero));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(idx + ow + 2), _mm_unpackhi_epi32(pos, zero));
    }
  }
  nan |= nan_bits != 0;
  return ow;
}
#endif

// 2x2 windows, stride 2, no padding or dilation, every window inside the input (almost every
// CNN's pooling): an output's four taps come from two input rows, with no bounds to check. The
// row's maxima are a tournament without branches (the top pair's winner, the bottom pair's, then
// the two; a tie keeps the earlier tap, as max_taps does), which assumes no NaN: a row whose
// windows hold a NaN is redone tap by tap with max_take.
template <class T>
void max_pool_2x2(T* yp, int64_t* ip, const T* xp, int64_t planes, int64_t h, int64_t w, int64_t ho,
                  int64_t wo) {
  using A = acc_t<T>;
  // The SSE2 rows build the offsets in int32 lanes.
  [[maybe_unused]] const bool sse_offsets = h * w <= std::numeric_limits<int32_t>::max();
  parallel_for(planes, planes * h * w, [&](int64_t p0, int64_t p1) {
    for (int64_t plane = p0; plane < p1; ++plane) {
      const T* in = xp + plane * h * w;
      for (int64_t oh = 0; oh < ho; ++oh) {
        const int64_t top = 2 * oh * w;
        const T* r0 = in + top;
        const T* r1 = r0 + w;
        T* out = yp + (plane * ho + oh) * wo;
        int64_t* idx = ip ? ip + (plane * ho + oh) * wo : nullptr;
        bool nan = false;
        int64_t first = 0;
#if defined(__SSE2__)
        if constexpr (std::is_same_v<T, float>)
          if (sse_offsets) first = max_pool_2x2_row_sse(r0, r1, out, idx, wo, w, top, nan);
#endif
        for (int64_t ow = first; ow < wo; ++ow) {
          const A a = static_cast<A>(r0[2 * ow]), b = static_cast<A>(r0[2 * ow + 1]);
          const A c = static_cast<A>(r1[2 * ow]), d = static_cast<A>(r1[2 * ow + 1]);
          const A top_max = std::max(a, b), bottom_max = std::max(c, d);
          out[ow] = T(std::max(top_max, bottom_max));
          if (idx) {
            const int64_t k_top = int64_t(b > a), k_bottom = w + int64_t(d > c);
            const int64_t bottom = -int64_t(bottom_max > top_max);
            idx[ow] = top + 2 * ow + (k_top ^ ((k_top ^ k_bottom) & bottom));
          }
          nan |= (a != a) | (b != b) | (c != c) | (d != d);
        }
        if (!nan) continue;
        for (int64_t ow = 0; ow < wo; ++ow) {
          const int64_t pos = top + 2 * ow;
          A best = static_cast<A>(in[pos]);
          int64_t at = pos;
          max_take(best, at, static_cast<A>(in[pos + 1]), pos + 1);
          max_take(best, at, static_cast<A>(in[pos + w]), pos + w);
          max_take(best, at, static_cast<A>(in[pos + w + 1]), pos + w + 1);
          out[ow] = T(best);
          if (idx) idx[ow] = at;
        }
      }
    }
  });
}

// A task owns a range of planes and walks one output row at a time, tap by tap: for a fixed
// kernel tap, the loop over the row's outputs has no dependency from one output to the next (no
// bounds checks either), so it runs without unpredictable branches.
template <class T>
void max_pool_forward(Tensor& y, Tensor& indices, const Tensor& x, const Pool2dOptions& o) {
  using A = acc_t<T>;
  const int64_t h = x.size(2), w = x.size(3), ho = y.size(2), wo = y.size(3);
  const int64_t kh = o.kernel[0], kw = o.kernel[1], sw = o.stride[1];
  std::vector<Span> col_spans;
  for (int64_t kj = 0; kj < kw; ++kj)
    col_spans.push_back(tap_span(kj, sw, o.padding[1], o.dilation[1], w, wo));
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  int64_t* ip = indices.defined() ? indices.data<int64_t>() : nullptr;
  const int64_t planes = x.size(0) * x.size(1);
  if (kh == 2 && kw == 2 && o.stride[0] == 2 && sw == 2 && o.padding[0] == 0 && o.padding[1] == 0 &&
      o.dilation[0] == 1 && o.dilation[1] == 1 && 2 * ho <= h && 2 * wo <= w) {
    max_pool_2x2<T>(yp, ip, xp, planes, h, w, ho, wo);
    return;
  }
  parallel_for(planes, planes * ho * wo * kh * kw, [&](int64_t p0, int64_t p1) {
    std::vector<A> best(static_cast<size_t>(wo));
    std::vector<int64_t> at(static_cast<size_t>(wo));
    for (int64_t plane = p0; plane < p1; ++plane) {
      const T* in = xp + plane * h * w;
      for (int64_t oh = 0; oh < ho; ++oh) {
        std::fill(best.begin(), best.end(), -std::numeric_limits<A>::infinity());
        std::fill(at.begin(), at.end(), kNoInput);
        for (int64_t ki = 0; ki < kh; ++ki) {
          const int64_t ih = oh * o.stride[0] - o.padding[0] + ki * o.dilation[0];
          if (ih < 0 || ih >= h) continue;
          for (int64_t kj = 0; kj < kw; ++kj) {
            const Span span = col_spans[size_t(kj)];
            const int64_t base = ih * w + kj * o.dilation[1] - o.padding[1];
            // Strides 1 and 2 (almost every network) as constants, so the loop vectorises.
            if (sw == 1)
              max_taps<T, 1>(best.data(), at.data(), in, base, 1, span);
            else if (sw == 2)
              max_taps<T, 2>(best.data(), at.data(), in, base, 2, span);
            else
              max_taps<T, 0>(best.data(), at.data(), in, base, sw, span);
          }
        }
        T* out = yp + (plane * ho + oh) * wo;
        for (int64_t ow = 0; ow < wo; ++ow) out[ow] = T(best[size_t(ow)]);
        if (ip) std::copy(at.begin(), at.end(), ip + (plane * ho + oh) * wo);
      }
    }
  });
}

template <class T>
void avg_pool_forward(Tensor& y, const Tensor& x, const Pool2dOptions& o) {
  using A = acc_t<T>;
  const int64_t h = x.size(2), w = x.size(3), ho = y.size(2), wo = y.size(3);
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  for_planes(x.size(0) * x.size(1), ho * wo * o.kernel[0] * o.kernel[1], [&](int64_t plane) {
    const T* in = xp + plane * h * w;
    T* out = yp + plane * ho * wo;
    for (int64_t oh = 0; oh < ho; ++oh) {
      const Window r = avg_window(oh, o.stride[0], o.padding[0], o.kernel[0], h);
      for (int64_t ow = 0; ow < wo; ++ow) {
        const Window c = avg_window(ow, o.stride[1], o.padding[1], o.kernel[1], w);
        A sum = 0;
        for (int64_t ih = r.start; ih < r.end; ++ih)
          for (int64_t iw = c.start; iw < c.end; ++iw) sum += static_cast<A>(in[ih * w + iw]);
        const int64_t count =
            o.count_include_pad ? r.span * c.span : (r.end - r.start) * (c.end - c.start);
        out[oh * wo + ow] = T(sum / A(count));
      }
    }
  });
}

template <class T>
void max_pool_backward(Tensor& dx, const Tensor& grad_y, const Tensor& indices) {
  const int64_t plane_in = dx.size(2) * dx.size(3), plane_out = grad_y.size(2) * grad_y.size(3);
  const T* gp = grad_y.data<T>();
  const int64_t* ip = indices.data<int64_t>();
  T* dp = dx.data<T>();
  for_planes(dx.size(0) * dx.size(1), plane_in + plane_out, [&](int64_t plane) {
    PlaneGrad<T> acc(dp + plane * plane_in, plane_in);
    const T* g = gp + plane * plane_out;
    const int64_t* idx = ip + plane * plane_out;
    for (int64_t i = 0; i < plane_out; ++i) {
      if (idx[i] == kNoInput) continue;
      NN_CHECK(idx[i] >= 0 && idx[i] < plane_in, IndexError, "max_pool2d_backward: index ", idx[i],
               " at output ", plane * plane_out + i, " is outside the input plane of ", plane_in,
               " elements");
      acc.data()[idx[i]] += static_cast<acc_t<T>>(g[i]);
    }
    acc.finish();
  });
}

template <class T>
void avg_pool_backward(Tensor& dx, const Tensor& grad_y, const Pool2dOptions& o) {
  using A = acc_t<T>;
  const int64_t h = dx.size(2), w = dx.size(3), ho = grad_y.size(2), wo = grad_y.size(3);
  const T* gp = grad_y.data<T>();
  T* dp = dx.data<T>();
  for_planes(
      dx.size(0) * dx.size(1), h * w + ho * wo * o.kernel[0] * o.kernel[1], [&](int64_t plane) {
        PlaneGrad<T> acc(dp + plane * h * w, h * w);
        const T* g = gp + plane * ho * wo;
        for (int64_t oh = 0; oh < ho; ++oh) {
          const Window r = avg_window(oh, o.stride[0], o.padding[0], o.kernel[0], h);
          for (int64_t ow = 0; ow < wo; ++ow) {
            const Window c = avg_window(ow, o.stride[1], o.padding[1], o.kernel[1], w);
            const int64_t count =
                o.count_include_pad ? r.span * c.span : (r.end - r.start) * (c.end - c.start);
            const A share = static_cast<A>(g[oh * wo + ow]) / A(count);
            for (int64_t ih = r.start; ih < r.end; ++ih)
              for (int64_t iw = c.start; iw < c.end; ++iw) acc.data()[ih * w + iw] += share;
          }
        }
        acc.finish();
      });
}

}  // namespace

void pool2d(Tensor& y, Tensor& indices, const Tensor& x, PoolKind kind, const Pool2dOptions& opt) {
  visit_floating(x.dtype(), "pool2d", [&]<class T>() {
    if (kind == PoolKind::Max)
      max_pool_forward<T>(y, indices, x, opt);
    else
      avg_pool_forward<T>(y, x, opt);
  });
}

void pool2d_backward(Tensor& dx, const Tensor& grad_y, const Tensor& indices, PoolKind kind,
                     const Pool2dOptions& opt) {
  visit_floating(dx.dtype(), "pool2d_backward", [&]<class T>() {
    if (kind == PoolKind::Max)
      max_pool_backward<T>(dx, grad_y, indices);
    else
      avg_pool_backward<T>(dx, grad_y, opt);
  });
}

void adaptive_avg_pool2d(Tensor& y, const Tensor& x) {
  const int64_t h = x.size(2), w = x.size(3), ho = y.size(2), wo = y.size(3);
  visit_floating(x.dtype(), "adaptive_avg_pool2d", [&]<class T>() {
    using A = acc_t<T>;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    for_planes(x.size(0) * x.size(1), h * w + ho * wo, [&](int64_t plane) {
      const T* in = xp + plane * h * w;
      T* out = yp + plane * ho * wo;
      for (int64_t oh = 0; oh < ho; ++oh) {
        const Window r = adaptive_window(oh, h, ho);
        for (int64_t ow = 0; ow < wo; ++ow) {
          const Window c = adaptive_window(ow, w, wo);
          A sum = 0;
          for (int64_t ih = r.start; ih < r.end; ++ih)
            for (int64_t iw = c.start; iw < c.end; ++iw) sum += static_cast<A>(in[ih * w + iw]);
          out[oh * wo + ow] = T(sum / A(r.span * c.span));
        }
      }
    });
  });
}

void adaptive_avg_pool2d_backward(Tensor& dx, const Tensor& grad_y) {
  const int64_t h = dx.size(2), w = dx.size(3), ho = grad_y.size(2), wo = grad_y.size(3);
  visit_floating(dx.dtype(), "adaptive_avg_pool2d_backward", [&]<class T>() {
    using A = acc_t<T>;
    const T* gp = grad_y.data<T>();
    T* dp = dx.data<T>();
    for_planes(dx.size(0) * dx.size(1), h * w + ho * wo, [&](int64_t plane) {
      PlaneGrad<T> acc(dp + plane * h * w, h * w);
      const T* g = gp + plane * ho * wo;
      for (int64_t oh = 0; oh < ho; ++oh) {
        const Window r = adaptive_window(oh, h, ho);
        for (int64_t ow = 0; ow < wo; ++ow) {
          const Window c = adaptive_window(ow, w, wo);
          const A share = static_cast<A>(g[oh * wo + ow]) / A(r.span * c.span);
          for (int64_t ih = r.start; ih < r.end; ++ih)
            for (int64_t iw = c.start; iw < c.end; ++iw) acc.data()[ih * w + iw] += share;
        }
      }
      acc.finish();
    });
  });
}

}  // namespace nn::cpu
