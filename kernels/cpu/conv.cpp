// CPU rows of conv2d: forward, backward-data and backward-weight, by im2col + one BLAS GEMM per
// chunk of samples (cpu::matmul), in float32 or float64; bfloat16/float16 go through float32
// copies and are rounded once at the end.
//
// Layout: a chunk of S samples is unfolded into col [C kH kW, S Ho Wo], sample s owning the
// column block [s Ho Wo, (s + 1) Ho Wo). Its rows are grouped by input channel, so group g's
// rows are one contiguous block and a grouped convolution is one batched matmul over the groups
// ([G, O/G, C/G kH kW] x [G, C/G kH kW, S Ho Wo]). Folding the samples into the GEMM's n keeps
// each GEMM large: OpenBLAS threads a large GEMM well, while many small ones called from several
// of our pool's threads at once fight over its threads. Our pool parallelises the unfolding
// (im2col), folding (col2im) and the layout passes, over (sample, channel) pairs: a task owns an
// input or output plane, so no two tasks write the same element.
//
// The chunk is sized so that col holds about kColBudget elements (at least one sample).
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/loops.h"

namespace nn::cpu {

namespace {

constexpr int64_t kColBudget = int64_t(1) << 22;

struct ConvGeometry {
  int64_t n, c, h, w;  // input
  int64_t o, kh, kw;   // weight
  int64_t ho, wo;      // output
  int64_t sh, sw, ph, pw, dh, dw, groups;

  int64_t plane_in() const { return h * w; }
  int64_t plane_out() const { return ho * wo; }
  int64_t col_rows() const { return c * kh * kw; }
  int64_t group_rows() const { return col_rows() / groups; }  // C/G kH kW
  int64_t group_out() const { return o / groups; }            // O/G
  // Samples per chunk: col [C kH kW, S Ho Wo] stays near kColBudget elements.
  int64_t chunk() const {
    const int64_t per_sample = std::max<int64_t>(col_rows() * plane_out(), 1);
    return std::clamp<int64_t>(kColBudget / per_sample, 1, std::max<int64_t>(n, 1));
  }
};

ConvGeometry geometry(const Shape& x, const Shape& w, const Shape& y, const Conv2dOptions& opt) {
  return {x[0],
          x[1],
          x[2],
          x[3],
          w[0],
          w[2],
          w[3],
          y[2],
          y[3],
          opt.stride[0],
          opt.stride[1],
          opt.padding[0],
          opt.padding[1],
          opt.dilation[0],
          opt.dilation[1],
          opt.groups};
}

// The output columns [lo, hi) whose input column ow * stride + offset lies in [0, in).
struct Span {
  int64_t lo, hi;
};
Span valid_span(int64_t offset, int64_t stride, int64_t in, int64_t out) {
  int64_t lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  int64_t hi = in - 1 - offset < 0 ? 0 : (in - 1 - offset) / stride + 1;
  lo = std::min(lo, out);
  hi = std::clamp(hi, lo, out);
  return {lo, hi};
}

// Unfolds samples [s0, s0 + count) of x into col [C kH kW, ld] (ld = count Ho Wo).
template <class C>
void im2col(C* col, const C* x, const ConvGeometry& g, int64_t s0, int64_t count) {
  const int64_t ld = count * g.plane_out(), k = g.kh * g.kw;
  parallel_for(count * g.c, count * g.c * k * g.plane_out(), [&](int64_t begin, int64_t end) {
    for (int64_t sc = begin; sc < end; ++sc) {
      const int64_t s = sc / g.c, ch = sc % g.c;
      const C* plane = x + ((s0 + s) * g.c + ch) * g.plane_in();
      for (int64_t ki = 0; ki < g.kh; ++ki) {
        for (int64_t kj = 0; kj < g.kw; ++kj) {
          C* dst = col + (ch * k + ki * g.kw + kj) * ld + s * g.plane_out();
          const int64_t col_off = kj * g.dw - g.pw;
          const Span span = valid_span(col_off, g.sw, g.w, g.wo);
          for (int64_t oh = 0; oh < g.ho; ++oh, dst += g.wo) {
            const int64_t ih = oh * g.sh - g.ph + ki * g.dh;
            if (ih < 0 || ih >= g.h) {
              std::fill(dst, dst + g.wo, C(0));
              continue;
            }
            const C* src = plane + ih * g.w + col_off;
            std::fill(dst, dst + span.lo, C(0));
            if (g.sw == 1) {
              std::copy(src + span.lo, src + span.hi, dst + span.lo);
            } else {
              for (int64_t ow = span.lo; ow < span.hi; ++ow) dst[ow] = src[ow * g.sw];
            }
            std::fill(dst + span.hi, dst + g.wo, C(0));
          }
        }
      }
    }
  });
}

// Folds col [C kH kW, ld] back into samples [s0, s0 + count) of dx, which it overwrites: the
// adjoint of im2col, summing every column entry into the input element it was read from.
template <class C>
void col2im(C* dx, const C* col, const ConvGeometry& g, int64_t s0, int64_t count) {
  const int64_t ld = count * g.plane_out(), k = g.kh * g.kw;
  parallel_for(count * g.c, count * g.c * k * g.plane_out(), [&](int64_t begin, int64_t end) {
    for (int64_t sc = begin; sc < end; ++sc) {
      const int64_t s = sc / g.c, ch = sc % g.c;
      C* plane = dx + ((s0 + s) * g.c + ch) * g.plane_in();
      std::fill(plane, plane + g.plane_in(), C(0));
      for (int64_t ki = 0; ki < g.kh; ++ki) {
        for (int64_t kj = 0; kj < g.kw; ++kj) {
          const C* src = col + (ch * k + ki * g.kw + kj) * ld + s * g.plane_out();
          const int64_t col_off = kj * g.dw - g.pw;
          const Span span = valid_span(col_off, g.sw, g.w, g.wo);
          for (int64_t oh = 0; oh < g.ho; ++oh, src += g.wo) {
            const int64_t ih = oh * g.sh - g.ph + ki * g.dh;
            if (ih < 0 || ih >= g.h) continue;
            C* dst = plane + ih * g.w + col_off;
            for (int64_t ow = span.lo; ow < span.hi; ++ow) dst[ow * g.sw] += src[ow];
          }
        }
      }
    }
  });
}

// Between [N, O, P] (samples [s0, s0 + count)) and [O, count P], P = Ho Wo.
template <class C>
void gather_channels(C* out, const C* y, const ConvGeometry& g, int64_t s0, int64_t count) {
  const int64_t p = g.plane_out(), ld = count * p;
  parallel_for(count * g.o, count * g.o * p, [&](int64_t begin, int64_t end) {
    for (int64_t so = begin; so < end; ++so) {
      const int64_t s = so / g.o, oc = so % g.o;
      const C* src = y + ((s0 + s) * g.o + oc) * p;
      std::copy(src, src + p, out + oc * ld + s * p);
    }
  });
}

// y[s0 + s, o, :] = tmp[o, s P : (s + 1) P] + bias[o] (tmp may be y's own block, then only the
// bias is added).
template <class C>
void scatter_channels(C* y, const C* tmp, const C* bias, const ConvGeometry& g, int64_t s0,
                      int64_t count) {
  const int64_t p = g.plane_out(), ld = count * p;
  parallel_for(count * g.o, count * g.o * p, [&](int64_t begin, int64_t end) {
    for (int64_t so = begin; so < end; ++so) {
      const int64_t s = so / g.o, oc = so % g.o;
      C* dst = y + ((s0 + s) * g.o + oc) * p;
      const C* src = tmp + oc * ld + s * p;
      const C b = bias ? bias[oc] : C(0);
      for (int64_t i = 0; i < p; ++i) dst[i] = src[i] + b;
    }
  });
}

Tensor buffer(int64_t rows, int64_t cols, Dtype dtype) { return empty({rows, cols}, {dtype}); }

// The leading elements of a chunk buffer as a contiguous tensor of `shape` (the last chunk uses
// only part of the buffer, with its own leading dimension).
Tensor block(const Tensor& buf, const Shape& shape) {
  return buf.view({-1}).narrow(0, 0, shape_numel(shape)).view(shape);
}

bool is_half_type(const Tensor& t) { return t.defined() && is_half(t.dtype()); }

Tensor as_float(const Tensor& t) {
  if (!t.defined()) return t;
  Tensor f = empty(t.shape(), {Dtype::Float32});
  cpu::copy(f, t);
  return f;
}

template <class C>
void conv2d_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b,
                    const ConvGeometry& g) {
  const int64_t S = g.chunk(), p = g.plane_out(), G = g.groups;
  const int64_t rows = g.group_rows(), og = g.group_out();
  const Tensor w3 = w.view({G, og, rows});
  Tensor col = buffer(g.col_rows(), S * p, y.dtype());
  const bool direct = S == 1;  // the GEMM's output is then y's own sample block
  Tensor tmp = direct ? Tensor() : buffer(g.o, S * p, y.dtype());
  const C* bias = b.defined() ? b.data<C>() : nullptr;
  for (int64_t s0 = 0; s0 < g.n; s0 += S) {
    const int64_t count = std::min(S, g.n - s0);
    im2col(col.data<C>(), x.data<C>(), g, s0, count);
    const Tensor col3 = block(col, {G, rows, count * p});
    Tensor out = direct ? y.select(0, s0).view({G, og, p}) : block(tmp, {G, og, count * p});
    cpu::matmul(out, w3, col3, false, false);
    if (!direct || bias) scatter_channels(y.data<C>(), out.data<C>(), bias, g, s0, count);
  }
}

template <class C>
void conv2d_data(Tensor& dx, const Tensor& gy, const Tensor& w, const ConvGeometry& g) {
  const int64_t S = g.chunk(), p = g.plane_out(), G = g.groups;
  const int64_t rows = g.group_rows(), og = g.group_out();
  const Tensor w3 = w.view({G, og, rows});
  Tensor col = buffer(g.col_rows(), S * p, dx.dtype());
  Tensor gyt = S == 1 ? Tensor() : buffer(g.o, S * p, dx.dtype());
  for (int64_t s0 = 0; s0 < g.n; s0 += S) {
    const int64_t count = std::min(S, g.n - s0);
    Tensor g3;
    if (S == 1) {
      g3 = gy.select(0, s0).view({G, og, p});
    } else {
      gather_channels(gyt.data<C>(), gy.data<C>(), g, s0, count);
      g3 = block(gyt, {G, og, count * p});
    }
    Tensor col3 = block(col, {G, rows, count * p});
    cpu::matmul(col3, w3, g3, true, false);
    col2im(dx.data<C>(), col3.data<C>(), g, s0, count);
  }
}

template <class C>
void conv2d_weight(Tensor& dw, Tensor& db, const Tensor& gy, const Tensor& x,
                   const ConvGeometry& g) {
  const int64_t S = g.chunk(), p = g.plane_out(), G = g.groups;
  const int64_t rows = g.group_rows(), og = g.group_out();
  Tensor dw3 = dw.view({G, og, rows});
  Tensor col = buffer(g.col_rows(), S * p, dw.dtype());
  Tensor gyt = S == 1 ? Tensor() : buffer(g.o, S * p, dw.dtype());
  Tensor part = g.n > S ? empty({G, og, rows}, {dw.dtype()}) : Tensor();
  for (int64_t s0 = 0; s0 < g.n; s0 += S) {
    const int64_t count = std::min(S, g.n - s0);
    Tensor g3;
    if (S == 1) {
      g3 = gy.select(0, s0).view({G, og, p});
    } else {
      gather_channels(gyt.data<C>(), gy.data<C>(), g, s0, count);
      g3 = block(gyt, {G, og, count * p});
    }
    im2col(col.data<C>(), x.data<C>(), g, s0, count);
    const Tensor col3 = block(col, {G, rows, count * p});
    Tensor& out = s0 == 0 ? dw3 : part;
    cpu::matmul(out, g3, col3, false, true);
    if (s0 > 0) {
      C* acc = dw.data<C>();
      const C* add = part.data<C>();
      const int64_t total = dw.numel();
      parallel_for(total, total, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) acc[i] += add[i];
      });
    }
  }
  if (!db.defined()) return;
  // Sums in double: a channel may sum N Ho Wo values.
  const C* gp = gy.data<C>();
  C* out = db.data<C>();
  parallel_for(g.o, g.n * g.o * p, [&](int64_t o0, int64_t o1) {
    for (int64_t oc = o0; oc < o1; ++oc) {
      double sum = 0.0;
      for (int64_t s = 0; s < g.n; ++s) {
        const C* src = gp + (s * g.o + oc) * p;
        for (int64_t i = 0; i < p; ++i) sum += double(src[i]);
      }
      out[oc] = C(sum);
    }
  });
}

// Calls f.template operator()<C>() with C the GEMM's type: double for float64, else float (the
// caller converts half-typed tensors to float32 copies and rounds its outputs back once).
template <class F>
void with_compute_type(Dtype dtype, F&& f) {
  if (dtype == Dtype::Float64)
    f.template operator()<double>();
  else
    f.template operator()<float>();
}

}  // namespace

void conv2d(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b,
            const Conv2dOptions& opt) {
  const ConvGeometry g = geometry(x.shape(), w.shape(), y.shape(), opt);
  with_compute_type(y.dtype(), [&]<class C>() {
    if (is_half_type(y)) {
      Tensor y32 = empty(y.shape(), {Dtype::Float32});
      conv2d_forward<float>(y32, as_float(x), as_float(w), as_float(b), g);
      cpu::copy(y, y32);
    } else {
      conv2d_forward<C>(y, x, w, b, g);
    }
  });
}

void conv2d_backward_data(Tensor& dx, const Tensor& grad_y, const Tensor& w,
                          const Conv2dOptions& opt) {
  const ConvGeometry g = geometry(dx.shape(), w.shape(), grad_y.shape(), opt);
  with_compute_type(dx.dtype(), [&]<class C>() {
    if (is_half_type(dx)) {
      Tensor dx32 = empty(dx.shape(), {Dtype::Float32});
      conv2d_data<float>(dx32, as_float(grad_y), as_float(w), g);
      cpu::copy(dx, dx32);
    } else {
      conv2d_data<C>(dx, grad_y, w, g);
    }
  });
}

void conv2d_backward_weight(Tensor& dw, Tensor& db, const Tensor& grad_y, const Tensor& x,
                            const Conv2dOptions& opt) {
  const ConvGeometry g = geometry(x.shape(), dw.shape(), grad_y.shape(), opt);
  with_compute_type(dw.dtype(), [&]<class C>() {
    if (is_half_type(dw)) {
      Tensor dw32 = empty(dw.shape(), {Dtype::Float32});
      Tensor db32 = db.defined() ? empty(db.shape(), {Dtype::Float32}) : Tensor();
      conv2d_weight<float>(dw32, db32, as_float(grad_y), as_float(x), g);
      cpu::copy(dw, dw32);
      if (db.defined()) cpu::copy(db, db32);
    } else {
      conv2d_weight<C>(dw, db, grad_y, x, g);
    }
  });
}

}  // namespace nn::cpu
