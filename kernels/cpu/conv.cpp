// CPU rows of conv2d: forward, backward-data and backward-weight, by im2col + BLAS GEMMs, in
// float32 or float64; bfloat16/float16 go through float32 copies and are rounded once at the end.
//
// Parallel decomposition: a task owns a contiguous range of samples and runs everything for them
// on its own thread: unfold a sample's input into its scratch col [C kH kW, Ho Wo] (rows grouped by
// input channel, so group g's rows are one contiguous block), one GEMM per group straight into
// that sample's output block (NCHW's [O, Ho Wo] is the GEMM's own layout) and the bias while the
// block is in cache. A sample's col (225 KB for a 3x3 32 -> 64 convolution on 14x14) stays in
// the core's L2 between im2col and the GEMM, and the GEMMs run on the calling thread (SerialBlas):
// OpenBLAS's threads would otherwise spin against our pool's. Backward-data is the transpose
// (col = W^T grad_y, folded back by col2im); backward-weight sums grad_y_s col_s^T over the
// samples of a task into that task's partial sum (the first task's is dw itself), and the partials
// are added at the end, so the result does not depend on which thread ran what.
// A batch smaller than the thread count (batch-1 inference) would leave threads idle that way:
// there the samples go one after the other, each one's im2col/col2im split over channels and
// its GEMMs over output columns (forward, backward-data) or output channels (backward-weight).
// A 1x1 convolution with stride 1 and no padding needs no col: x's own sample block is col.
// Scratch buffers are thread-local and kept between calls (no allocation, no page faults in a
// steady-state step) unless one outgrew kScratchKeepBytes.
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/loops.h"

namespace nn::cpu {

namespace {

// Tasks per thread in the forward and backward-data loops: several, so a thread that starts
// late (a busy machine) leaves less for the others to wait on.
constexpr int64_t kTasksPerThread = 4;
// A scratch buffer larger than this is freed after use rather than kept for the next call.
constexpr size_t kScratchKeepBytes = size_t(64) << 20;

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
  // x's sample block is already col: a 1x1 kernel read at every position.
  bool identity_col() const {
    return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
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

// The output positions [lo, hi) whose input position o * stride + offset lies in [0, in).
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

// A thread's scratch array of C, one per slot, kept between calls.
template <class C, int Slot>
class Scratch {
 public:
  explicit Scratch(int64_t size) : buf_(storage()) {
    if (buf_.size() < size_t(size)) buf_.resize(size_t(size));
  }
  ~Scratch() {
    if (buf_.capacity() * sizeof(C) > kScratchKeepBytes) std::vector<C>().swap(buf_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  C* data() { return buf_.data(); }

 private:
  static std::vector<C>& storage() {
    thread_local std::vector<C> buf;
    return buf;
  }
  std::vector<C>& buf_;
};

// Zeroes, in the rows [rows.lo, rows.hi) of a [.., wo] block, the columns outside
// [cols.lo, cols.hi) (for a 3x3 kernel with padding 1, one column at one edge). Walked column by
// column: a row's one or two entries are not worth a memset call each.
template <class C>
void zero_edge_columns(C* block, Span rows, Span cols, int64_t wo) {
  for (int64_t ow = 0; ow < cols.lo; ++ow)
    for (int64_t oh = rows.lo; oh < rows.hi; ++oh) block[oh * wo + ow] = C(0);
  for (int64_t ow = cols.hi; ow < wo; ++ow)
    for (int64_t oh = rows.lo; oh < rows.hi; ++oh) block[oh * wo + ow] = C(0);
}

// Unfolds channels [ch0, ch1) of one sample x [C, H, W] into their rows of col [C kH kW, Ho Wo].
template <class C>
void im2col(C* col, const C* x, const ConvGeometry& g, int64_t ch0, int64_t ch1) {
  const int64_t p = g.plane_out();
  for (int64_t ch = ch0; ch < ch1; ++ch) {
    const C* plane = x + ch * g.plane_in();
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      const int64_t row_off = ki * g.dh - g.ph;
      const Span rows = valid_span(row_off, g.sh, g.h, g.ho);
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        C* dst = col + ((ch * g.kh + ki) * g.kw + kj) * p;
        const int64_t col_off = kj * g.dw - g.pw;
        const Span cols = valid_span(col_off, g.sw, g.w, g.wo);
        std::fill(dst, dst + rows.lo * g.wo, C(0));
        std::fill(dst + rows.hi * g.wo, dst + p, C(0));
        if (g.sh == 1 && g.sw == 1 && g.wo == g.w) {
          // Stride 1, same width: the valid rows are one shifted copy of the plane; then the
          // columns that fell off the left or right edge are zeroed.
          const int64_t delta = row_off * g.w + col_off;
          const int64_t i0 = std::max(rows.lo * g.wo, -delta);
          const int64_t i1 = std::min(rows.hi * g.wo, g.plane_in() - delta);
          if (i0 < i1) std::memcpy(dst + i0, plane + (i0 + delta), size_t(i1 - i0) * sizeof(C));
          zero_edge_columns(dst, rows, cols, g.wo);
          continue;
        }
        for (int64_t oh = rows.lo; oh < rows.hi; ++oh) {
          C* r = dst + oh * g.wo;
          // Input element of output column ow: plane[base + ow sw], inside the plane on the span.
          const int64_t base = (oh * g.sh + row_off) * g.w + col_off;
          for (int64_t ow = 0; ow < cols.lo; ++ow) r[ow] = C(0);
          if (g.sw == 1) {
            for (int64_t ow = cols.lo; ow < cols.hi; ++ow) r[ow] = plane[base + ow];
          } else {
            for (int64_t ow = cols.lo; ow < cols.hi; ++ow) r[ow] = plane[base + ow * g.sw];
          }
          for (int64_t ow = cols.hi; ow < g.wo; ++ow) r[ow] = C(0);
        }
      }
    }
  }
}

// Folds the rows of channels [ch0, ch1) of col [C kH kW, Ho Wo] back into those channels of one
// sample dx [C, H, W], which it overwrites: the adjoint of im2col, summing every column entry
// into the input element it was read from. col is scratch: entries that map outside the input
// may be zeroed on the way.
template <class C>
void col2im(C* dx, C* col, const ConvGeometry& g, int64_t ch0, int64_t ch1) {
  const int64_t p = g.plane_out();
  std::fill(dx + ch0 * g.plane_in(), dx + ch1 * g.plane_in(), C(0));
  for (int64_t ch = ch0; ch < ch1; ++ch) {
    C* plane = dx + ch * g.plane_in();
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      const int64_t row_off = ki * g.dh - g.ph;
      const Span rows = valid_span(row_off, g.sh, g.h, g.ho);
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        C* src = col + ((ch * g.kh + ki) * g.kw + kj) * p;
        const int64_t col_off = kj * g.dw - g.pw;
        const Span cols = valid_span(col_off, g.sw, g.w, g.wo);
        if (g.sh == 1 && g.sw == 1 && g.wo == g.w) {
          // Stride 1, same width: with the entries of the columns that fall off an edge zeroed
          // (col is scratch), the valid rows fold back as one shifted contiguous sum.
          zero_edge_columns(src, rows, cols, g.wo);
          const int64_t delta = row_off * g.w + col_off;
          const int64_t i0 = std::max(rows.lo * g.wo, -delta);
          const int64_t i1 = std::min(rows.hi * g.wo, g.plane_in() - delta);
          C* d = plane + (i0 + delta);
          const C* r = src + i0;
          for (int64_t i = 0; i < i1 - i0; ++i) d[i] += r[i];
          continue;
        }
        for (int64_t oh = rows.lo; oh < rows.hi; ++oh) {
          const C* r = src + oh * g.wo;
          const int64_t base = (oh * g.sh + row_off) * g.w + col_off;
          if (g.sw == 1) {
            for (int64_t ow = cols.lo; ow < cols.hi; ++ow) plane[base + ow] += r[ow];
          } else {
            for (int64_t ow = cols.lo; ow < cols.hi; ++ow) plane[base + ow * g.sw] += r[ow];
          }
        }
      }
    }
  }
}

// Lanes of sum_double: independent accumulators, so the additions do not wait on each other.
constexpr int64_t kSumLanes = 8;

// The sum of n values in double (a bias gradient sums N Ho Wo of them), over kSumLanes lanes.
template <class C>
double sum_double(const C* v, int64_t n) {
  double lane[kSumLanes] = {};
  int64_t i = 0;
  for (; i + kSumLanes <= n; i += kSumLanes)
    for (int64_t l = 0; l < kSumLanes; ++l) lane[l] += double(v[i + l]);
  double sum = 0.0;
  for (; i < n; ++i) sum += double(v[i]);
  for (int64_t l = 0; l < kSumLanes; ++l) sum += lane[l];
  return sum;
}

// Blocks of output columns or channels a small-batch GEMM is cut into are multiples of this
// (the width of BLAS's register tiles).
constexpr int64_t kSplitAlign = 16;

// Fewer samples than threads: split each sample's work instead of the batch.
bool split_samples(const ConvGeometry& g) { return g.n < max_threads(); }

// Calls f(lo, hi) on the pool for blocks of [0, extent) of about extent / threads, rounded up
// to a multiple of `align`.
template <class F>
void for_blocks(int64_t extent, int64_t align, F&& f) {
  const int64_t threads = max_threads();
  const int64_t per = ((extent + threads - 1) / threads + align - 1) / align * align;
  const int64_t block = std::max<int64_t>(per, 1);
  run_parallel((extent + block - 1) / block, [&](int64_t t) {
    const int64_t lo = t * block, hi = std::min(extent, lo + block);
    if (lo < hi) f(lo, hi);
  });
}

// Calls f(task, s0, s1) for `tasks` contiguous sample ranges covering [0, n), on the pool.
template <class F>
void for_sample_ranges(int64_t n, int64_t tasks, F&& f) {
  tasks = std::clamp<int64_t>(tasks, 1, std::max<int64_t>(n, 1));
  run_parallel(tasks, [&](int64_t t) {
    const int64_t s0 = n * t / tasks, s1 = n * (t + 1) / tasks;
    if (s0 < s1) f(t, s0, s1);
  });
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
  const int64_t p = g.plane_out(), rows = g.group_rows(), og = g.group_out();
  const bool identity = g.identity_col();
  const C* xp = x.data<C>();
  const C* wp = w.data<C>();
  const C* bias = b.defined() ? b.data<C>() : nullptr;
  C* yp = y.data<C>();
  if (split_samples(g)) {
    Scratch<C, 1> col_buf(identity ? 0 : g.col_rows() * p);
    for (int64_t s = 0; s < g.n; ++s) {
      const C* xs = xp + s * g.c * g.plane_in();
      C* ys = yp + s * g.o * p;
      const C* col = xs;
      if (!identity) {
        for_blocks(g.c, 1, [&](int64_t c0, int64_t c1) { im2col(col_buf.data(), xs, g, c0, c1); });
        col = col_buf.data();
      }
      for_blocks(p, kSplitAlign, [&](int64_t j0, int64_t j1) {
        for (int64_t gi = 0; gi < g.groups; ++gi)
          gemm_on_thread(false, false, og, j1 - j0, rows, wp + gi * og * rows, rows,
                         col + gi * rows * p + j0, p, C(0), ys + gi * og * p + j0, p);
        for (int64_t oc = 0; bias && oc < g.o; ++oc)
          for (int64_t j = j0; j < j1; ++j) ys[oc * p + j] += bias[oc];
      });
    }
    return;
  }
  for_sample_ranges(g.n, max_threads() * kTasksPerThread, [&](int64_t, int64_t s0, int64_t s1) {
    Scratch<C, 0> col_buf(identity ? 0 : g.col_rows() * p);
    for (int64_t s = s0; s < s1; ++s) {
      const C* xs = xp + s * g.c * g.plane_in();
      C* ys = yp + s * g.o * p;
      const C* col = xs;
      if (!identity) {
        im2col(col_buf.data(), xs, g, 0, g.c);
        col = col_buf.data();
      }
      for (int64_t gi = 0; gi < g.groups; ++gi)
        gemm_on_thread(false, false, og, p, rows, wp + gi * og * rows, rows, col + gi * rows * p, p,
                       C(0), ys + gi * og * p, p);
      if (bias) {
        for (int64_t oc = 0; oc < g.o; ++oc) {
          C* row = ys + oc * p;
          const C bv = bias[oc];
          for (int64_t i = 0; i < p; ++i) row[i] += bv;
        }
      }
    }
  });
}

template <class C>
void conv2d_data(Tensor& dx, const Tensor& gy, const Tensor& w, const ConvGeometry& g) {
  const int64_t p = g.plane_out(), rows = g.group_rows(), og = g.group_out();
  const bool identity = g.identity_col();
  const C* gp = gy.data<C>();
  const C* wp = w.data<C>();
  C* dp = dx.data<C>();
  if (split_samples(g)) {
    Scratch<C, 1> col_buf(identity ? 0 : g.col_rows() * p);
    for (int64_t s = 0; s < g.n; ++s) {
      C* dxs = dp + s * g.c * g.plane_in();
      const C* gys = gp + s * g.o * p;
      C* col = identity ? dxs : col_buf.data();
      for_blocks(p, kSplitAlign, [&](int64_t j0, int64_t j1) {
        for (int64_t gi = 0; gi < g.groups; ++gi)
          gemm_on_thread(true, false, rows, j1 - j0, og, wp + gi * og * rows, rows,
                         gys + gi * og * p + j0, p, C(0), col + gi * rows * p + j0, p);
      });
      if (!identity)
        for_blocks(g.c, 1, [&](int64_t c0, int64_t c1) { col2im(dxs, col, g, c0, c1); });
    }
    return;
  }
  for_sample_ranges(g.n, max_threads() * kTasksPerThread, [&](int64_t, int64_t s0, int64_t s1) {
    Scratch<C, 0> col_buf(identity ? 0 : g.col_rows() * p);
    for (int64_t s = s0; s < s1; ++s) {
      C* dxs = dp + s * g.c * g.plane_in();
      const C* gys = gp + s * g.o * p;
      C* col = identity ? dxs : col_buf.data();
      for (int64_t gi = 0; gi < g.groups; ++gi)
        gemm_on_thread(true, false, rows, p, og, wp + gi * og * rows, rows, gys + gi * og * p, p,
                       C(0), col + gi * rows * p, p);
      if (!identity) col2im(dxs, col, g, 0, g.c);
    }
  });
}

template <class C>
void conv2d_weight(Tensor& dw, Tensor& db, const Tensor& gy, const Tensor& x,
                   const ConvGeometry& g) {
  const int64_t p = g.plane_out(), rows = g.group_rows(), og = g.group_out();
  const bool identity = g.identity_col();
  const C* xp = x.data<C>();
  const C* gp = gy.data<C>();
  C* dwp = dw.data<C>();
  if (split_samples(g)) {
    // Output channels split over the pool; each block accumulates over the samples in place.
    Scratch<C, 1> col_buf(identity ? 0 : g.col_rows() * p);
    std::vector<double> bias_sums(db.defined() ? size_t(g.o) : 0, 0.0);
    for (int64_t s = 0; s < g.n; ++s) {
      const C* xs = xp + s * g.c * g.plane_in();
      const C* gys = gp + s * g.o * p;
      const C* col = xs;
      if (!identity) {
        for_blocks(g.c, 1, [&](int64_t c0, int64_t c1) { im2col(col_buf.data(), xs, g, c0, c1); });
        col = col_buf.data();
      }
      for_blocks(g.o, 1, [&](int64_t o0, int64_t o1) {
        for (int64_t oc = o0; oc < o1;) {
          const int64_t gi = oc / og, end = std::min(o1, (gi + 1) * og);
          gemm_on_thread(false, true, end - oc, rows, p, gys + oc * p, p, col + gi * rows * p, p,
                         s == 0 ? C(0) : C(1), dwp + oc * rows, rows);
          for (int64_t c = oc; !bias_sums.empty() && c < end; ++c)
            bias_sums[size_t(c)] += sum_double(gys + c * p, p);
          oc = end;
        }
      });
    }
    if (db.defined()) {
      C* out = db.data<C>();
      for (int64_t oc = 0; oc < g.o; ++oc) out[oc] = C(bias_sums[size_t(oc)]);
    }
    return;
  }
  const int64_t wsize = g.o * rows;
  // One partial sum per task; task 0 sums into dw itself.
  const int64_t tasks = std::clamp<int64_t>(max_threads(), 1, std::max<int64_t>(g.n, 1));
  std::vector<C> partial(size_t((tasks - 1) * wsize));
  std::vector<double> bias_sums(db.defined() ? size_t(tasks * g.o) : 0, 0.0);
  for_sample_ranges(g.n, tasks, [&](int64_t t, int64_t s0, int64_t s1) {
    Scratch<C, 0> col_buf(identity ? 0 : g.col_rows() * p);
    C* acc = t == 0 ? dwp : partial.data() + (t - 1) * wsize;
    double* bsum = bias_sums.empty() ? nullptr : bias_sums.data() + t * g.o;
    for (int64_t s = s0; s < s1; ++s) {
      const C* xs = xp + s * g.c * g.plane_in();
      const C* gys = gp + s * g.o * p;
      const C* col = xs;
      if (!identity) {
        im2col(col_buf.data(), xs, g, 0, g.c);
        col = col_buf.data();
      }
      const C beta = s == s0 ? C(0) : C(1);
      for (int64_t gi = 0; gi < g.groups; ++gi)
        gemm_on_thread(false, true, og, rows, p, gys + gi * og * p, p, col + gi * rows * p, p, beta,
                       acc + gi * og * rows, rows);
      if (bsum)
        for (int64_t oc = 0; oc < g.o; ++oc) bsum[oc] += sum_double(gys + oc * p, p);
    }
  });
  for (int64_t t = 1; t < tasks; ++t) {
    const C* add = partial.data() + (t - 1) * wsize;
    for (int64_t i = 0; i < wsize; ++i) dwp[i] += add[i];
  }
  if (db.defined()) {
    C* out = db.data<C>();
    for (int64_t oc = 0; oc < g.o; ++oc) {
      double sum = 0.0;
      for (int64_t t = 0; t < tasks; ++t) sum += bias_sums[size_t(t * g.o + oc)];
      out[oc] = C(sum);
    }
  }
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
  SerialBlas serial;
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
  SerialBlas serial;
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
  SerialBlas serial;
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
