// CUDA rows pool2d, pool2d_backward, adaptive_avg_pool2d and adaptive_avg_pool2d_backward
// (contracts in kernels/backend.h and kernels/conv_ops.h). NCHW, contiguous; one thread per output
// element in a grid-stride loop, accumulation in float32 (float64 for float64).
//
// Backward passes are gathers, not scatters: a thread owns one element of dx and sums the output
// gradients of the windows that cover it (for max, those whose recorded index is this element).
// No atomics, so the result is deterministic and the half types lose nothing to repeated
// rounding; the cost is a loop over the covering windows, which is ceil(k / stride)^2 for the
// usual shapes.
#include <algorithm>

#include "kernels/backend.h"
#include "kernels/cuda/common.cuh"

namespace nn::cuda {
namespace {

struct PoolGeo {
  int64_t planes, h, w, ho, wo;  // planes = N C
  int kh, kw, sh, sw, ph, pw, dh, dw;
  bool count_include_pad;
};

PoolGeo pool_geo(const Shape& x, const Shape& y, const Pool2dOptions& opt) {
  return PoolGeo{x[0] * x[1],
                 x[2],
                 x[3],
                 y[2],
                 y[3],
                 int(opt.kernel[0]),
                 int(opt.kernel[1]),
                 int(opt.stride[0]),
                 int(opt.stride[1]),
                 int(opt.padding[0]),
                 int(opt.padding[1]),
                 int(opt.dilation[0]),
                 int(opt.dilation[1]),
                 opt.count_include_pad};
}

// PyTorch's average window: clipped to the padded input for the divisor when padding counts,
// to the input itself for the sum.
struct AvgWindow {
  int64_t h0, h1, w0, w1;
  int64_t divisor;
};
__device__ NN_INLINE AvgWindow avg_window(const PoolGeo& g, int64_t oh, int64_t ow) {
  int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  int64_t h1 = std::min(h0 + g.kh, g.h + g.ph), w1 = std::min(w0 + g.kw, g.w + g.pw);
  const int64_t padded = (h1 - h0) * (w1 - w0);
  h0 = std::max(h0, int64_t(0));
  w0 = std::max(w0, int64_t(0));
  h1 = std::min(h1, g.h);
  w1 = std::min(w1, g.w);
  return AvgWindow{h0, h1, w0, w1, g.count_include_pad ? padded : (h1 - h0) * (w1 - w0)};
}

template <class T>
__global__ void max_pool_kernel(T* y, int64_t* idx, const T* x, PoolGeo g) {
  using A = acc_t<T>;
  const int64_t total = g.planes * g.ho * g.wo;
  for (int64_t e = global_thread(); e < total; e += grid_threads()) {
    const int64_t ow = e % g.wo, oh = (e / g.wo) % g.ho, plane = e / (g.wo * g.ho);
    const T* xp = x + plane * g.h * g.w;
    A best = A(0);
    int64_t best_at = -1;
    for (int r = 0; r < g.kh; ++r) {
      const int64_t ih = oh * g.sh - g.ph + int64_t(r) * g.dh;
      if (ih < 0 || ih >= g.h) continue;
      for (int s = 0; s < g.kw; ++s) {
        const int64_t iw = ow * g.sw - g.pw + int64_t(s) * g.dw;
        if (iw < 0 || iw >= g.w) continue;
        const A v = A(xp[ih * g.w + iw]);
        // NaN wins and stays; ties keep the first maximum.
        if (best_at < 0 || (v > best && !(best != best)) || (v != v && !(best != best))) {
          best = v;
          best_at = ih * g.w + iw;
        }
      }
    }
    // Dilation can leave a window over padding only: -inf and index -1 (the backward skips it).
    y[e] = best_at < 0 ? cast<T>(-INFINITY) : cast<T>(best);
    if (idx) idx[e] = best_at;
  }
}

template <class T>
__global__ void avg_pool_kernel(T* y, const T* x, PoolGeo g) {
  using A = acc_t<T>;
  const int64_t total = g.planes * g.ho * g.wo;
  for (int64_t e = global_thread(); e < total; e += grid_threads()) {
    const int64_t ow = e % g.wo, oh = (e / g.wo) % g.ho, plane = e / (g.wo * g.ho);
    const T* xp = x + plane * g.h * g.w;
    const AvgWindow win = avg_window(g, oh, ow);
    A s = A(0);
    for (int64_t ih = win.h0; ih < win.h1; ++ih)
      for (int64_t iw = win.w0; iw < win.w1; ++iw) s += A(xp[ih * g.w + iw]);
    y[e] = cast<T>(win.divisor > 0 ? s / A(win.divisor) : A(0));
  }
}

// Output rows whose window (start o s - p, extent k spread by dilation) may contain input row i:
// o s - p <= i and o s - p + (k - 1) d >= i, clipped to [0, out).
__device__ NN_INLINE void covering(int64_t i, int k, int s, int p, int d, int64_t out, int64_t& lo,
                                   int64_t& hi) {
  const int64_t span = int64_t(k - 1) * d;
  const int64_t a = i + p - span;  // o s >= a
  lo = a <= 0 ? 0 : (a + s - 1) / s;
  hi = std::min((i + p) / s, out - 1);  // o s <= i + p
}

template <class T>
__global__ void max_pool_backward_kernel(T* dx, const T* gy, const int64_t* idx, PoolGeo g) {
  using A = acc_t<T>;
  const int64_t total = g.planes * g.h * g.w;
  for (int64_t e = global_thread(); e < total; e += grid_threads()) {
    const int64_t iw = e % g.w, ih = (e / g.w) % g.h, plane = e / (g.w * g.h);
    const int64_t at = ih * g.w + iw;
    int64_t oh0, oh1, ow0, ow1;
    covering(ih, g.kh, g.sh, g.ph, g.dh, g.ho, oh0, oh1);
    covering(iw, g.kw, g.sw, g.pw, g.dw, g.wo, ow0, ow1);
    const int64_t base = plane * g.ho * g.wo;
    A s = A(0);
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const int64_t o = base + oh * g.wo + ow;
        if (idx[o] == at) s += A(gy[o]);
      }
    dx[e] = cast<T>(s);
  }
}

template <class T>
__global__ void avg_pool_backward_kernel(T* dx, const T* gy, PoolGeo g) {
  using A = acc_t<T>;
  const int64_t total = g.planes * g.h * g.w;
  for (int64_t e = global_thread(); e < total; e += grid_threads()) {
    const int64_t iw = e % g.w, ih = (e / g.w) % g.h, plane = e / (g.w * g.h);
    int64_t oh0, oh1, ow0, ow1;
    covering(ih, g.kh, g.sh, g.ph, 1, g.ho, oh0, oh1);
    covering(iw, g.kw, g.sw, g.pw, 1, g.wo, ow0, ow1);
    const int64_t base = plane * g.ho * g.wo;
    A s = A(0);
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const AvgWindow win = avg_window(g, oh, ow);
        if (ih >= win.h0 && ih < win.h1 && iw >= win.w0 && iw < win.w1 && win.divisor > 0)
          s += A(gy[base + oh * g.wo + ow]) / A(win.divisor);
      }
    dx[e] = cast<T>(s);
  }
}

// Adaptive pooling: output cell i of `out` covers [floor(i n / out), ceil((i + 1) n / out)).
__device__ NN_INLINE int64_t cell_begin(int64_t i, int64_t n, int64_t out) { return i * n / out; }
__device__ NN_INLINE int64_t cell_end(int64_t i, int64_t n, int64_t out) {
  return ((i + 1) * n + out - 1) / out;
}

template <class T>
__global__ void adaptive_avg_kernel(T* y, const T* x, int64_t planes, int64_t h, int64_t w,
                                    int64_t ho, int64_t wo) {
  using A = acc_t<T>;
  const int64_t total = planes * ho * wo;
  for (int64_t e = global_thread(); e < total; e += grid_threads()) {
    const int64_t ow = e % wo, oh = (e / wo) % ho, plane = e / (wo * ho);
    const int64_t h0 = cell_begin(oh, h, ho), h1 = cell_end(oh, h, ho);
    const int64_t w0 = cell_begin(ow, w, wo), w1 = cell_end(ow, w, wo);
    const T* xp = x + plane * h * w;
    A s = A(0);
    for (int64_t ih = h0; ih < h1; ++ih)
      for (int64_t iw = w0; iw < w1; ++iw) s += A(xp[ih * w + iw]);
    y[e] = cast<T>(s / A((h1 - h0) * (w1 - w0)));
  }
}

template <class T>
__global__ void adaptive_avg_backward_kernel(T* dx, const T* gy, int64_t planes, int64_t h,
                                             int64_t w, int64_t ho, int64_t wo) {
  using A = acc_t<T>;
  const int64_t total = planes * h * w;
  for (int64_t e = global_thread(); e < total; e += grid_threads()) {
    const int64_t iw = e % w, ih = (e / w) % h, plane = e / (w * h);
    // Cells containing ih lie in [floor(ih ho / h), ceil((ih + 1) ho / h)).
    const int64_t oh0 = ih * ho / h, oh1 = ((ih + 1) * ho + h - 1) / h;
    const int64_t ow0 = iw * wo / w, ow1 = ((iw + 1) * wo + w - 1) / w;
    A s = A(0);
    for (int64_t oh = oh0; oh < oh1 && oh < ho; ++oh) {
      const int64_t h0 = cell_begin(oh, h, ho), h1 = cell_end(oh, h, ho);
      if (ih < h0 || ih >= h1) continue;
      for (int64_t ow = ow0; ow < ow1 && ow < wo; ++ow) {
        const int64_t w0 = cell_begin(ow, w, wo), w1 = cell_end(ow, w, wo);
        if (iw < w0 || iw >= w1) continue;
        s += A(gy[(plane * ho + oh) * wo + ow]) / A((h1 - h0) * (w1 - w0));
      }
    }
    dx[e] = cast<T>(s);
  }
}

}  // namespace

void pool2d(Tensor& y, Tensor& indices, const Tensor& x, PoolKind kind, const Pool2dOptions& opt) {
  if (y.numel() == 0) return;
  DeviceScope scope(y);
  const PoolGeo g = pool_geo(x.shape(), y.shape(), opt);
  visit_floating(x.dtype(), "pool2d", [&]<class T>() {
    const unsigned blocks = grid_for(y.numel(), kBlockSize);
    if (kind == PoolKind::Max)
      max_pool_kernel<<<blocks, kBlockSize, 0, scope.stream()>>>(
          static_cast<T*>(y.data_ptr()),
          indices.defined() ? static_cast<int64_t*>(indices.data_ptr()) : nullptr,
          static_cast<const T*>(x.data_ptr()), g);
    else
      avg_pool_kernel<<<blocks, kBlockSize, 0, scope.stream()>>>(
          static_cast<T*>(y.data_ptr()), static_cast<const T*>(x.data_ptr()), g);
    NN_CUDA_CHECK_LAUNCH();
  });
}

void pool2d_backward(Tensor& dx, const Tensor& grad_y, const Tensor& indices, PoolKind kind,
                     const Pool2dOptions& opt) {
  if (dx.numel() == 0) return;
  DeviceScope scope(dx);
  const PoolGeo g = pool_geo(dx.shape(), grad_y.shape(), opt);
  visit_floating(dx.dtype(), "pool2d_backward", [&]<class T>() {
    const unsigned blocks = grid_for(dx.numel(), kBlockSize);
    if (kind == PoolKind::Max)
      max_pool_backward_kernel<<<blocks, kBlockSize, 0, scope.stream()>>>(
          static_cast<T*>(dx.data_ptr()), static_cast<const T*>(grad_y.data_ptr()),
          static_cast<const int64_t*>(indices.data_ptr()), g);
    else
      avg_pool_backward_kernel<<<blocks, kBlockSize, 0, scope.stream()>>>(
          static_cast<T*>(dx.data_ptr()), static_cast<const T*>(grad_y.data_ptr()), g);
    NN_CUDA_CHECK_LAUNCH();
  });
}

void adaptive_avg_pool2d(Tensor& y, const Tensor& x) {
  if (y.numel() == 0) return;
  DeviceScope scope(y);
  visit_floating(x.dtype(), "adaptive_avg_pool2d", [&]<class T>() {
    adaptive_avg_kernel<<<grid_for(y.numel(), kBlockSize), kBlockSize, 0, scope.stream()>>>(
        static_cast<T*>(y.data_ptr()), static_cast<const T*>(x.data_ptr()), x.size(0) * x.size(1),
        x.size(2), x.size(3), y.size(2), y.size(3));
    NN_CUDA_CHECK_LAUNCH();
  });
}

void adaptive_avg_pool2d_backward(Tensor& dx, const Tensor& grad_y) {
  if (dx.numel() == 0) return;
  DeviceScope scope(dx);
  visit_floating(dx.dtype(), "adaptive_avg_pool2d_backward", [&]<class T>() {
    adaptive_avg_backward_kernel<<<grid_for(dx.numel(), kBlockSize), kBlockSize, 0,
                                   scope.stream()>>>(
        static_cast<T*>(dx.data_ptr()), static_cast<const T*>(grad_y.data_ptr()),
        dx.size(0) * dx.size(1), dx.size(2), dx.size(3), grad_y.size(2), grad_y.size(3));
    NN_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace nn::cuda
