// CPU rows of the fused training ops: linear (BLAS GEMM, then one fused bias + activation pass)
// and cross-entropy forward and backward over class indices. This is the oracle the CUDA rows
// are tested against, so it favours accuracy: cross-entropy accumulates in double.
//
// linear: the GEMM writes x w^T straight into pre (or out) when the dtype is its own arithmetic
// type; the half types multiply in float32 into a scratch buffer, so the result is rounded once,
// after bias and activation. The epilogue then walks rows (a thread owns a range of rows).
// linear_backward: one pass writes dY' = grad_y * act'(saved) (a thread owns a range of rows),
// then BLAS GEMMs give dx and dW and a double-precision column sum gives db; the half types keep
// dY' and the GEMMs in float32 and round each gradient once.
// cross_entropy: a thread owns a range of rows and reads each row twice (max, then the sums);
// backward reads it once more to write the gradient. Targets are checked before any work, so
// an out-of-range target throws IndexError without leaving half-written outputs behind.
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/loops.h"
#include "kernels/nn_math.h"

namespace nn::cpu {

void linear(Tensor& out, Tensor& pre, const Tensor& x, const Tensor& w, const Tensor& b,
            Activation act) {
  const int64_t m = x.size(0), k = x.size(1), n = w.size(0);
  visit_floating(out.dtype(), "linear", [&]<class T>() {
    using A = acc_t<T>;
    constexpr bool kExact = std::is_same_v<T, A>;
    using G = std::conditional_t<kExact, T, float>;  // what the GEMM writes
    Tensor acc;
    if constexpr (kExact) {
      acc = pre.defined() ? pre : out;
      Tensor acc3 = acc.view({1, m, n});
      cpu::matmul(acc3, x.view({1, m, k}), w.view({1, n, k}), false, true);
    } else {
      const TensorOptions f32{Dtype::Float32};
      acc = empty({1, m, n}, f32);
      Tensor x32 = empty({1, m, k}, f32), w32 = empty({1, n, k}, f32);
      cpu::copy(x32, x.view({1, m, k}));
      cpu::copy(w32, w.view({1, n, k}));
      cpu::matmul(acc, x32, w32, false, true);
    }
    const G* a = acc.data<G>();
    const T* bias = b.defined() ? b.data<T>() : nullptr;
    T* o = out.data<T>();
    T* p = pre.defined() ? pre.data<T>() : nullptr;
    visit_activation(act, [&]<Activation Act>() {
      parallel_for(m, m * n, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0 * n; i < r1 * n; ++i) {
          const A z = static_cast<A>(a[i]) + (bias ? static_cast<A>(bias[i % n]) : A(0));
          if (p) p[i] = T(z);
          o[i] = T(math::activation_fn<Act, A>(z));
        }
      });
    });
  });
}

void linear_backward(LinearGrads& grads, const Tensor& grad_y, const Tensor& x, const Tensor& w,
                     const Tensor& saved, Activation act) {
  const int64_t m = grad_y.size(0), n = grad_y.size(1), k = x.size(1);
  visit_floating(grad_y.dtype(), "linear_backward", [&]<class T>() {
    using A = acc_t<T>;
    constexpr bool kExact = std::is_same_v<T, A>;
    using G = std::conditional_t<kExact, T, float>;  // what the GEMMs read and write
    const TensorOptions g_opts{kExact ? grad_y.dtype() : Dtype::Float32};
    // The GEMMs' form of a stored operand: itself, or a float32 copy of a half type.
    auto gemm_form = [&](const Tensor& t) {
      if constexpr (kExact) return t;
      Tensor c = empty(t.shape(), g_opts);
      cpu::copy(c, t);
      return c;
    };
    // dY' = grad_y * act'(saved), kept in G (never rounded to a half type).
    Tensor dyp;
    if (kExact && act == Activation::None) {
      dyp = grad_y;
    } else {
      dyp = empty({m, n}, g_opts);
      const T* g = grad_y.data<T>();
      const T* s = act == Activation::None ? nullptr : saved.data<T>();
      G* d = dyp.data<G>();
      visit_activation(act, [&]<Activation Act>() {
        parallel_for(m, m * n, [&](int64_t r0, int64_t r1) {
          for (int64_t i = r0 * n; i < r1 * n; ++i)
            d[i] = G(math::activation_grad<Act, A>(static_cast<A>(g[i]),
                                                   s ? static_cast<A>(s[i]) : A(0)));
        });
      });
    }
    const Tensor dyp3 = dyp.view({1, m, n});
    // out (a T tensor) = the G-typed GEMM result, through a float32 scratch for the half types.
    auto gemm_into = [&](Tensor& out, const Tensor& b, bool trans_a, int64_t rows) {
      Tensor acc = kExact ? out : empty({rows, k}, g_opts);
      Tensor acc3 = acc.view({1, rows, k});
      cpu::matmul(acc3, dyp3, gemm_form(b).view({1, b.size(0), k}), trans_a, false);
      if constexpr (!kExact) cpu::copy(out, acc);
    };
    if (grads.dx.defined()) gemm_into(grads.dx, w, false, m);  // dY' [m, n] w [n, k]
    if (grads.dw.defined()) gemm_into(grads.dw, x, true, n);   // dY'^T [n, m] x [m, k]
    if (grads.db.defined()) {
      // Column sums in double, row by row (the oracle favours accuracy over speed).
      std::vector<double> sums(static_cast<size_t>(n), 0.0);
      const G* d = dyp.data<G>();
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) sums[size_t(j)] += static_cast<double>(d[i * n + j]);
      T* db = grads.db.data<T>();
      for (int64_t j = 0; j < n; ++j) db[j] = T(static_cast<A>(sums[size_t(j)]));
    }
  });
}

namespace {

// Throws IndexError naming `op` for the first target that is neither a class nor ignored.
void check_targets(const char* op, const Tensor& target, int64_t classes, int64_t ignore_index) {
  const int64_t* t = target.data<int64_t>();
  for (int64_t i = 0; i < target.numel(); ++i)
    NN_CHECK(t[i] == ignore_index || (t[i] >= 0 && t[i] < classes), IndexError, op, ": target ",
             t[i], " at sample ", i, " is out of range for ", classes, " classes");
}

}  // namespace

void cross_entropy(Tensor& loss, Tensor& lse, Tensor& sample_weight, const Tensor& logits,
                   const Tensor& target, const Tensor& weight, double label_smoothing,
                   int64_t ignore_index) {
  const int64_t rows = logits.size(0), classes = logits.size(1), ld = logits.stride(0);
  check_targets("cross_entropy", target, classes, ignore_index);
  const double eps = label_smoothing;
  visit_floating(logits.dtype(), "cross_entropy", [&]<class T>() {
    using A = acc_t<T>;
    const T* z = logits.data<T>();
    const T* wp = weight.defined() ? weight.data<T>() : nullptr;
    const int64_t* t = target.data<int64_t>();
    T* lo = loss.data<T>();
    A* ls = lse.defined() ? lse.data<A>() : nullptr;
    T* sw = sample_weight.defined() ? sample_weight.data<T>() : nullptr;
    auto value = [](T v) { return static_cast<double>(static_cast<A>(v)); };
    parallel_for(rows, rows * classes * 4, [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const T* row = z + i * ld;
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t c = 0; c < classes; ++c) {
          const double v = value(row[c]);
          if (std::isnan(v) || v > m) m = v;  // a NaN max stays NaN: no v exceeds it
        }
        // s = sum exp(z - m); smooth = sum_c w_c (lse - z_c) = W log(s) - sum_c w_c (z_c - m).
        double s = 0.0, wz = 0.0, wsum = 0.0;
        for (int64_t c = 0; c < classes; ++c) {
          const double v = value(row[c]);
          s += std::exp(v - m);
          if (eps > 0.0) {
            const double wc = wp ? value(wp[c]) : 1.0;
            wz += wc * (v - m);
            wsum += wc;
          }
        }
        const double log_s = std::log(s), row_lse = m + log_s;
        if (ls) ls[i] = static_cast<A>(row_lse);
        const int64_t y = t[i];
        double l = 0.0, wy = 0.0;
        if (y != ignore_index) {
          wy = wp ? value(wp[y]) : 1.0;
          l = (1.0 - eps) * wy * (row_lse - value(row[y]));
          if (eps > 0.0) l += eps / double(classes) * (wsum * log_s - wz);
        }
        lo[i] = T(static_cast<A>(l));
        if (sw) sw[i] = T(static_cast<A>(wy));
      }
    });
  });
}

void cross_entropy_backward(Tensor& grad, const Tensor& grad_loss, const Tensor& logits,
                            const Tensor& target, const Tensor& lse, const Tensor& weight,
                            double label_smoothing, int64_t ignore_index) {
  const int64_t rows = logits.size(0), classes = logits.size(1), ld = logits.stride(0);
  check_targets("cross_entropy_backward", target, classes, ignore_index);
  const double eps = label_smoothing, smooth = eps / double(classes);
  visit_floating(logits.dtype(), "cross_entropy_backward", [&]<class T>() {
    using A = acc_t<T>;
    const T* z = logits.data<T>();
    const T* wp = weight.defined() ? weight.data<T>() : nullptr;
    const T* gl = grad_loss.data<T>();
    const A* ls = lse.data<A>();
    const int64_t* t = target.data<int64_t>();
    T* gp = grad.data<T>();
    auto value = [](T v) { return static_cast<double>(static_cast<A>(v)); };
    double wsum = double(classes);
    if (wp) {
      wsum = 0.0;
      for (int64_t c = 0; c < classes; ++c) wsum += value(wp[c]);
    }
    parallel_for(rows, rows * classes * 4, [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const T* row = z + i * ld;
        T* out = gp + i * classes;
        const int64_t y = t[i];
        if (y == ignore_index) {
          for (int64_t c = 0; c < classes; ++c) out[c] = T(A(0));
          continue;
        }
        const double g = value(gl[i]), row_lse = static_cast<double>(ls[i]);
        const double wy = wp ? value(wp[y]) : 1.0;
        const double target_coef = (1.0 - eps) * wy, coef = target_coef + smooth * wsum;
        for (int64_t c = 0; c < classes; ++c) {
          const double p = std::exp(value(row[c]) - row_lse);
          const double wc = wp ? value(wp[c]) : 1.0;
          out[c] = T(static_cast<A>(
              g * math::cross_entropy_grad<double>(p, c == y, wc, coef, target_coef, smooth)));
        }
      }
    });
  });
}

}  // namespace nn::cpu
