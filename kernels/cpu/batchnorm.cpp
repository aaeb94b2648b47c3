// CPU rows of batch norm over x [N, C, inner] (contiguous), forward (training or evaluation,
// with the fused ReLU) and backward. A task owns a range of channels: training reads a channel's
// N segments once for its statistics (around a shift, the channel's first value, so a large mean
// does not cancel the variance away; short blocks summed in acc_t over kLanes independent lanes,
// the blocks in double) and once more to write y; backward likewise reads once for the two sums
// and once to write dx. Statistics are kept in float32 (float64 for float64 x); y and dx are
// computed in acc_t and rounded once.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "kernels/backend.h"
#include "kernels/cpu/loops.h"

namespace nn::cpu {

namespace {

struct Layout {
  int64_t n, c, inner;
  int64_t count() const { return n * inner; }
  // Element offset of (sample, channel, 0).
  int64_t at(int64_t s, int64_t ch) const { return (s * c + ch) * inner; }
};

template <class T>
double read(const T* p, int64_t i) {
  return static_cast<double>(static_cast<acc_t<T>>(p[i]));
}

// Values summed in acc_t before the running sum (double) takes them: short enough to stay
// accurate in float, long enough to vectorise.
constexpr int64_t kBlock = 256;

// Independent accumulators within a block: one running sum would make every addition wait for
// the one before (and the compiler may not reorder floating-point sums into vector lanes).
constexpr int64_t kLanes = 8;

#if defined(__GNUC__)
// float32 sums run in explicit vector lanes (GCC/Clang vector extensions, one SSE register), two
// of them per sum for kLanes.
#define NN_BN_VECTOR_LANES 1
constexpr int64_t kVectorWidth = 4;
using FloatLanes = float __attribute__((vector_size(kVectorWidth * sizeof(float))));
using IntLanes = int32_t __attribute__((vector_size(kVectorWidth * sizeof(int32_t))));

FloatLanes load_lanes(const float* p) {
  FloatLanes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
constexpr bool kVectorLanes = true;
#else
constexpr bool kVectorLanes = false;
#endif

// Adds the sums of u and v over [begin, end), where terms(i) returns the pair (u_i, v_i), to s1
// and s2: kLanes-wide sums in A over blocks of kBlock, each block's total added in double. With
// kVec, lane_terms(i) returns the pairs of i .. i + kVectorWidth - 1 as FloatLanes (A is float).
template <class A, bool kVec, class F, class V>
void block_sums(int64_t begin, int64_t end, F&& terms, V&& lane_terms, double& s1, double& s2) {
  for (int64_t i0 = begin; i0 < end; i0 += kBlock) {
    const int64_t i1 = std::min(end, i0 + kBlock);
    A b1 = 0, b2 = 0;
    int64_t i = i0;
#if defined(NN_BN_VECTOR_LANES)
    if constexpr (kVec) {
      static_assert(kLanes == 2 * kVectorWidth);
      FloatLanes l1a = {}, l2a = {}, l1b = {}, l2b = {};
      for (; i + kLanes <= i1; i += kLanes) {
        const auto [ua, va] = lane_terms(i);
        const auto [ub, vb] = lane_terms(i + kVectorWidth);
        l1a += ua;
        l2a += va;
        l1b += ub;
        l2b += vb;
      }
      for (int64_t l = 0; l < kVectorWidth; ++l) {
        b1 += l1a[l] + l1b[l];
        b2 += l2a[l] + l2b[l];
      }
    }
#endif
    if constexpr (!kVec) {
      A l1[kLanes] = {}, l2[kLanes] = {};
      for (; i + kLanes <= i1; i += kLanes) {
        for (int64_t l = 0; l < kLanes; ++l) {
          const auto [u, v] = terms(i + l);
          l1[l] += u;
          l2[l] += v;
        }
      }
      for (int64_t l = 0; l < kLanes; ++l) {
        b1 += l1[l];
        b2 += l2[l];
      }
    }
    for (; i < i1; ++i) {
      const auto [u, v] = terms(i);
      b1 += u;
      b2 += v;
    }
    s1 += double(b1);
    s2 += double(b2);
  }
}

template <class F>
void for_channels(const Layout& l, int64_t passes, F&& f) {
  parallel_for(l.c, l.c * l.count() * passes, [&](int64_t c0, int64_t c1) {
    for (int64_t ch = c0; ch < c1; ++ch) f(ch);
  });
}

}  // namespace

void batch_norm(Tensor& y, Tensor& save_mean, Tensor& save_invstd, Tensor& running_mean,
                Tensor& running_var, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                bool training, double momentum, double eps, Activation act) {
  const Layout l{x.size(0), x.size(1), x.size(2)};
  const bool relu = act == Activation::Relu;
  visit_floating(x.dtype(), "batch_norm", [&]<class T>() {
    using A = acc_t<T>;
    using S = std::conditional_t<std::is_same_v<T, double>, double, float>;  // statistics
    constexpr bool kVec = kVectorLanes && std::is_same_v<T, float>;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    const T* gp = gamma.defined() ? gamma.data<T>() : nullptr;
    const T* bp = beta.defined() ? beta.data<T>() : nullptr;
    T* rm = running_mean.defined() ? running_mean.data<T>() : nullptr;
    T* rv = running_var.defined() ? running_var.data<T>() : nullptr;
    S* sm = save_mean.defined() ? save_mean.data<S>() : nullptr;
    S* si = save_invstd.defined() ? save_invstd.data<S>() : nullptr;
    const double m = double(l.count());
    for_channels(l, training ? 2 : 1, [&](int64_t ch) {
      double mean, var;
      if (training) {
        const A shift = static_cast<A>(xp[l.at(0, ch)]);
        double s1 = 0.0, s2 = 0.0;
        for (int64_t s = 0; s < l.n; ++s) {
          const T* in = xp + l.at(s, ch);
          block_sums<A, kVec>(
              0, l.inner,
              [&](int64_t i) {
                const A d = static_cast<A>(in[i]) - shift;
                return std::pair<A, A>(d, d * d);
              },
              [&](auto i) {
                const auto d = load_lanes(in + i) - shift;
                return std::pair(d, d * d);
              },
              s1, s2);
        }
        mean = double(shift) + s1 / m;
        var = std::max((s2 - s1 * s1 / m) / m, 0.0);
        if (sm) sm[ch] = S(mean);
        if (rm) rm[ch] = T(A((1.0 - momentum) * read(rm, ch) + momentum * mean));
        if (rv) rv[ch] = T(A((1.0 - momentum) * read(rv, ch) + momentum * var * m / (m - 1.0)));
      } else {
        mean = read(rm, ch);
        var = read(rv, ch);
      }
      const double invstd = 1.0 / std::sqrt(var + eps);
      if (si && training) si[ch] = S(invstd);
      const double scale = (gp ? read(gp, ch) : 1.0) * invstd;
      const A a = A(scale), b = A((bp ? read(bp, ch) : 0.0) - mean * scale);
      for (int64_t s = 0; s < l.n; ++s) {
        const T* in = xp + l.at(s, ch);
        T* out = yp + l.at(s, ch);
        for (int64_t i = 0; i < l.inner; ++i) {
          A v = static_cast<A>(in[i]) * a + b;
          if (relu) v = v > A(0) ? v : A(0);
          out[i] = T(v);
        }
      }
    });
  });
}

void batch_norm_backward(BatchNormGrads& grads, const Tensor& grad_y, const Tensor& x,
                         const Tensor& gamma, const Tensor& mean, const Tensor& invstd,
                         const Tensor& y, bool training, Activation act) {
  const Layout l{x.size(0), x.size(1), x.size(2)};
  const bool relu = act == Activation::Relu;
  visit_floating(x.dtype(), "batch_norm_backward", [&]<class T>() {
    using A = acc_t<T>;
    using S = std::conditional_t<std::is_same_v<T, double>, double, float>;
    constexpr bool kVec = kVectorLanes && std::is_same_v<T, float>;
    const T* xp = x.data<T>();
    const T* gy = grad_y.data<T>();
    const T* yp = relu ? y.data<T>() : nullptr;
    const T* gp = gamma.defined() ? gamma.data<T>() : nullptr;
    const S* mp = mean.data<S>();
    const S* ip = invstd.data<S>();
    T* dx = grads.dx.defined() ? grads.dx.data<T>() : nullptr;
    T* dgamma = grads.dgamma.defined() ? grads.dgamma.data<T>() : nullptr;
    T* dbeta = grads.dbeta.defined() ? grads.dbeta.data<T>() : nullptr;
    const double m = double(l.count());
    const bool need_sums = dgamma || dbeta || (dx && training);
    // kRelu: the gradient reaches the normalisation only where the fused relu let y through.
    auto run = [&]<bool kRelu>() {
      auto grad_at = [&](int64_t i) {
        const A g = static_cast<A>(gy[i]);
        if constexpr (kRelu) return static_cast<A>(yp[i]) > A(0) ? g : A(0);
        return g;
      };
      for_channels(l, (need_sums ? 1 : 0) + (dx ? 1 : 0), [&](int64_t ch) {
        const A mu = static_cast<A>(mp[ch]);
        const double is = double(ip[ch]);
        double sum_g = 0.0, sum_gx = 0.0;  // sum g and sum g (x - mean)
        if (need_sums) {
          for (int64_t s = 0; s < l.n; ++s) {
            const int64_t off = l.at(s, ch);
            block_sums<A, kVec>(
                off, off + l.inner,
                [&](int64_t i) {
                  const A g = grad_at(i);
                  return std::pair<A, A>(g, g * (static_cast<A>(xp[i]) - mu));
                },
                [&](auto i) {
                  auto g = load_lanes(gy + i);
                  if constexpr (kRelu) {
                    const IntLanes through = load_lanes(yp + i) > 0.0f;
                    g = reinterpret_cast<FloatLanes>(reinterpret_cast<IntLanes>(g) & through);
                  }
                  return std::pair(g, g * (load_lanes(xp + i) - mu));
                },
                sum_g, sum_gx);
          }
        }
        if (dbeta) dbeta[ch] = T(A(sum_g));
        if (dgamma) dgamma[ch] = T(A(sum_gx * is));
        if (!dx) return;
        const double scale = (gp ? read(gp, ch) : 1.0) * is;
        // training: dx = scale (g - sum_g / M - (x - mean) is^2 sum_gx / M); evaluation: scale g.
        const A a = A(scale);
        const A c1 = training ? A(scale * sum_g / m) : A(0);
        const A c2 = training ? A(scale * is * is * sum_gx / m) : A(0);
        for (int64_t s = 0; s < l.n; ++s) {
          const int64_t off = l.at(s, ch);
          for (int64_t i = off; i < off + l.inner; ++i)
            dx[i] = T(a * grad_at(i) - c1 - (static_cast<A>(xp[i]) - mu) * c2);
        }
      });
    };
    if (relu)
      run.template operator()<true>();
    else
      run.template operator()<false>();
  });
}

}  // namespace nn::cpu
