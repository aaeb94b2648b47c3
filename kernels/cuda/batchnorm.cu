// CUDA rows batch_norm and batch_norm_backward (contracts in kernels/backend.h and
// kernels/conv_ops.h) over x viewed as [N, C, inner], contiguous.
//
// Statistics are a two-level reduction with no atomics (deterministic): grid (C, splits), a block
// reduces one contiguous slice of one channel's N x inner values (Welford per thread, merged over
// the block with group_allreduce), writing a partial; then one thread per channel merges its
// splits in order (Chan's pairwise update; a split's count follows from the slicing, so only mean
// and M2 are stored). That thread also updates the running statistics on the device and folds
// gamma, beta, mean and invstd into one per-channel scale and shift, so the elementwise pass is a
// single fused multiply-add (and ReLU) per element. Backward has the same shape: per-channel sums
// of dy' and dy' xhat (dy' = dy masked by y > 0 for the fused ReLU), then an elementwise dx.
// Accumulation is float32 for float32 and the half types, float64 for float64.
#include <algorithm>

#include "kernels/backend.h"
#include "kernels/cuda/common.cuh"

namespace nn::cuda {
namespace {

constexpr int64_t kMinSliceElems = 2048;  // a block's slice of one channel, at least
constexpr int64_t kMaxSplits = 1024;

struct Layout {
  int64_t n, c, inner;
  NN_HOST_DEVICE int64_t per_channel() const { return n * inner; }
};

// Splits of a channel so that about 4 blocks per SM run, each over >= kMinSliceElems values.
int64_t splits_for(const Layout& l, int device) {
  int sms = 0;
  NN_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t by_size = ceil_div(l.per_channel(), kMinSliceElems);
  const int64_t by_occupancy = ceil_div(4 * int64_t(sms), l.c);
  return std::clamp<int64_t>(std::min(by_size, by_occupancy), 1, kMaxSplits);
}

// Walks e in [begin, end) of one channel's values with a stride of blockDim.x, tracking the
// (n, p) position without a division per element.
template <class F>
__device__ NN_INLINE void for_channel_slice(const Layout& l, int64_t c, int64_t begin, int64_t end,
                                            F&& f) {
  const int64_t e0 = begin + threadIdx.x;
  if (e0 >= end) return;
  int64_t n = e0 / l.inner, p = e0 % l.inner;
  const int64_t dn = blockDim.x / l.inner, dp = blockDim.x % l.inner;
  for (int64_t e = e0; e < end; e += blockDim.x) {
    f((n * l.c + c) * l.inner + p);
    p += dp;
    n += dn;
    if (p >= l.inner) {
      p -= l.inner;
      ++n;
    }
  }
}

template <class A>
struct Welford {
  A count, mean, m2;
};

template <class A>
__device__ NN_INLINE Welford<A> merge(const Welford<A>& a, const Welford<A>& b) {
  const A n = a.count + b.count;
  if (n == A(0)) return a;
  const A delta = b.mean - a.mean, fb = b.count / n;
  return Welford<A>{n, a.mean + delta * fb, a.m2 + b.m2 + delta * delta * a.count * fb};
}

template <class T>
__global__ void __launch_bounds__(kBlockSize)
    stats_partial_kernel(const T* x, Layout l, int64_t chunk, acc_t<T>* part_mean,
                         acc_t<T>* part_m2) {
  using A = acc_t<T>;
  const int64_t c = blockIdx.x, s = blockIdx.y, splits = gridDim.y;
  const int64_t begin = s * chunk, end = std::min(begin + chunk, l.per_channel());
  Welford<A> w{A(0), A(0), A(0)};
  for_channel_slice(l, c, begin, end, [&](int64_t at) {
    const A v = A(x[at]);
    w.count += A(1);
    const A d = v - w.mean;
    w.mean += d / w.count;
    w.m2 += d * (v - w.mean);
  });
  w = group_allreduce<kBlockSize>(
      w, [](const Welford<A>& a, const Welford<A>& b) { return merge(a, b); });
  if (threadIdx.x == 0) {
    part_mean[c * splits + s] = w.mean;
    part_m2[c * splits + s] = w.m2;
  }
}

// One thread per channel: merges the splits, writes the saved statistics, moves the running
// ones, and folds everything into scale/shift.
template <class T>
__global__ void stats_finalize_kernel(const acc_t<T>* part_mean, const acc_t<T>* part_m2, Layout l,
                                      int64_t splits, int64_t chunk, double eps, double momentum,
                                      T* running_mean, T* running_var, acc_t<T>* save_mean,
                                      acc_t<T>* save_invstd, const T* gamma, const T* beta,
                                      acc_t<T>* scale, acc_t<T>* shift) {
  using A = acc_t<T>;
  for (int64_t c = global_thread(); c < l.c; c += grid_threads()) {
    Welford<A> w{A(0), A(0), A(0)};
    for (int64_t s = 0; s < splits; ++s) {
      const int64_t count = std::min(chunk, l.per_channel() - s * chunk);
      if (count <= 0) break;
      w = merge(w, Welford<A>{A(count), part_mean[c * splits + s], part_m2[c * splits + s]});
    }
    const A total = A(l.per_channel());
    const A var = w.m2 / total;
    const A invstd = A(1) / ::sqrt(var + A(eps));
    if (save_mean) save_mean[c] = w.mean;
    if (save_invstd) save_invstd[c] = invstd;
    if (running_mean) {
      const A m = A(momentum);
      running_mean[c] = cast<T>((A(1) - m) * A(running_mean[c]) + m * w.mean);
      running_var[c] = cast<T>((A(1) - m) * A(running_var[c]) + m * (w.m2 / (total - A(1))));
    }
    const A g = gamma ? A(gamma[c]) : A(1), b = beta ? A(beta[c]) : A(0);
    scale[c] = g * invstd;
    shift[c] = b - w.mean * g * invstd;
  }
}

template <class T>
__global__ void eval_coeffs_kernel(const T* running_mean, const T* running_var, const T* gamma,
                                   const T* beta, int64_t channels, double eps, acc_t<T>* scale,
                                   acc_t<T>* shift) {
  using A = acc_t<T>;
  for (int64_t c = global_thread(); c < channels; c += grid_threads()) {
    const A invstd = A(1) / ::sqrt(A(running_var[c]) + A(eps));
    const A g = gamma ? A(gamma[c]) : A(1), b = beta ? A(beta[c]) : A(0);
    scale[c] = g * invstd;
    shift[c] = b - A(running_mean[c]) * g * invstd;
  }
}

template <class T>
__global__ void apply_kernel(T* y, const T* x, const acc_t<T>* scale, const acc_t<T>* shift,
                             int64_t total, int64_t channels, int64_t inner, bool relu) {
  using A = acc_t<T>;
  for (int64_t e = global_thread(); e < total; e += grid_threads()) {
    const int64_t c = (e / inner) % channels;
    A v = A(x[e]) * scale[c] + shift[c];
    if (relu) v = v > A(0) ? v : A(0);
    y[e] = cast<T>(v);
  }
}

// dy' of one element: dy, masked by y > 0 for the fused ReLU.
template <class T>
__device__ NN_INLINE acc_t<T> grad_of(const T* gy, const T* y, int64_t at) {
  using A = acc_t<T>;
  const A g = A(gy[at]);
  return (y && !(A(y[at]) > A(0))) ? A(0) : g;
}

template <class A>
struct GradSums {
  A dy, dy_xhat;
};

template <class T>
__global__ void __launch_bounds__(kBlockSize)
    grad_partial_kernel(const T* gy, const T* x, const T* y, const acc_t<T>* mean,
                        const acc_t<T>* invstd, Layout l, int64_t chunk, acc_t<T>* part_dy,
                        acc_t<T>* part_dyx) {
  using A = acc_t<T>;
  const int64_t c = blockIdx.x, s = blockIdx.y, splits = gridDim.y;
  const int64_t begin = s * chunk, end = std::min(begin + chunk, l.per_channel());
  const A mu = mean[c], is = invstd[c];
  GradSums<A> g{A(0), A(0)};
  for_channel_slice(l, c, begin, end, [&](int64_t at) {
    const A d = grad_of(gy, y, at);
    g.dy += d;
    g.dy_xhat += d * (A(x[at]) - mu) * is;
  });
  g = group_allreduce<kBlockSize>(g, [](const GradSums<A>& a, const GradSums<A>& b) {
    return GradSums<A>{a.dy + b.dy, a.dy_xhat + b.dy_xhat};
  });
  if (threadIdx.x == 0) {
    part_dy[c * splits + s] = g.dy;
    part_dyx[c * splits + s] = g.dy_xhat;
  }
}

// Per channel: dbeta, dgamma, and dx = k1 (dy' - k2 - xhat k3) as coefficients (k2 = k3 = 0
// in evaluation, where the statistics are constants).
template <class T>
__global__ void grad_finalize_kernel(const acc_t<T>* part_dy, const acc_t<T>* part_dyx, Layout l,
                                     int64_t splits, const T* gamma, const acc_t<T>* invstd,
                                     bool training, T* dgamma, T* dbeta, acc_t<T>* coeffs) {
  using A = acc_t<T>;
  for (int64_t c = global_thread(); c < l.c; c += grid_threads()) {
    A sdy = A(0), sdyx = A(0);
    for (int64_t s = 0; s < splits; ++s) {
      sdy += part_dy[c * splits + s];
      sdyx += part_dyx[c * splits + s];
    }
    if (dbeta) dbeta[c] = cast<T>(sdy);
    if (dgamma) dgamma[c] = cast<T>(sdyx);
    const A total = A(l.per_channel());
    coeffs[3 * c] = (gamma ? A(gamma[c]) : A(1)) * invstd[c];
    coeffs[3 * c + 1] = training ? sdy / total : A(0);
    coeffs[3 * c + 2] = training ? sdyx / total : A(0);
  }
}

template <class T>
__global__ void grad_input_kernel(T* dx, const T* gy, const T* x, const T* y, const acc_t<T>* mean,
                                  const acc_t<T>* invstd, const acc_t<T>* coeffs, int64_t total,
                                  int64_t channels, int64_t inner) {
  using A = acc_t<T>;
  for (int64_t e = global_thread(); e < total; e += grid_threads()) {
    const int64_t c = (e / inner) % channels;
    const A xhat = (A(x[e]) - mean[c]) * invstd[c];
    const A d = grad_of(gy, y, e);
    dx[e] = cast<T>(coeffs[3 * c] * (d - coeffs[3 * c + 1] - xhat * coeffs[3 * c + 2]));
  }
}

template <class T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.data_ptr()) : nullptr;
}
template <class T>
T* mut_or_null(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.data_ptr()) : nullptr;
}

Layout layout_of(const Tensor& x) {
  const int64_t n = x.size(0), c = x.size(1);
  return Layout{n, c, (n == 0 || c == 0) ? 0 : x.numel() / (n * c)};
}

}  // namespace

void batch_norm(Tensor& y, Tensor& save_mean, Tensor& save_invstd, Tensor& running_mean,
                Tensor& running_var, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                bool training, double momentum, double eps, Activation act) {
  DeviceScope scope(y);
  const Layout l = layout_of(x);
  if (l.c == 0) return;
  const bool relu = act == Activation::Relu;
  const cudaStream_t stream = scope.stream();
  visit_floating(x.dtype(), "batch_norm", [&]<class T>() {
    using A = acc_t<T>;
    const TensorOptions acc_opt{dtype_of<A>, y.device()};
    Tensor coeffs = empty({2, l.c}, acc_opt);  // scale, shift
    A* scale = static_cast<A*>(coeffs.data_ptr());
    A* shift = scale + l.c;
    const unsigned channel_blocks = grid_for(l.c, kBlockSize);
    if (training) {
      const int64_t splits = splits_for(l, y.device().index);
      const int64_t chunk = ceil_div(l.per_channel(), splits);
      Tensor part = empty({2, l.c * splits}, acc_opt);
      A* part_mean = static_cast<A*>(part.data_ptr());
      A* part_m2 = part_mean + l.c * splits;
      stats_partial_kernel<T><<<dim3(unsigned(l.c), unsigned(splits)), kBlockSize, 0, stream>>>(
          static_cast<const T*>(x.data_ptr()), l, chunk, part_mean, part_m2);
      NN_CUDA_CHECK_LAUNCH();
      stats_finalize_kernel<T><<<channel_blocks, kBlockSize, 0, stream>>>(
          part_mean, part_m2, l, splits, chunk, eps, momentum, mut_or_null<T>(running_mean),
          mut_or_null<T>(running_var), mut_or_null<A>(save_mean), mut_or_null<A>(save_invstd),
          ptr_or_null<T>(gamma), ptr_or_null<T>(beta), scale, shift);
      NN_CUDA_CHECK_LAUNCH();
    } else {
      eval_coeffs_kernel<T><<<channel_blocks, kBlockSize, 0, stream>>>(
          static_cast<const T*>(running_mean.data_ptr()),
          static_cast<const T*>(running_var.data_ptr()), ptr_or_null<T>(gamma),
          ptr_or_null<T>(beta), l.c, eps, scale, shift);
      NN_CUDA_CHECK_LAUNCH();
    }
    if (x.numel() > 0) {
      apply_kernel<T><<<grid_for(x.numel(), kBlockSize), kBlockSize, 0, stream>>>(
          static_cast<T*>(y.data_ptr()), static_cast<const T*>(x.data_ptr()), scale, shift,
          x.numel(), l.c, l.inner, relu);
      NN_CUDA_CHECK_LAUNCH();
    }
  });
}

void batch_norm_backward(BatchNormGrads& grads, const Tensor& grad_y, const Tensor& x,
                         const Tensor& gamma, const Tensor& mean, const Tensor& invstd,
                         const Tensor& y, bool training, Activation act) {
  const Tensor& first = grads.dx.defined()       ? grads.dx
                        : grads.dgamma.defined() ? grads.dgamma
                                                 : grads.dbeta;
  if (!first.defined()) return;
  DeviceScope scope(first);
  const Layout l = layout_of(x);
  if (l.c == 0) return;
  const cudaStream_t stream = scope.stream();
  const bool relu = act == Activation::Relu;
  visit_floating(x.dtype(), "batch_norm_backward", [&]<class T>() {
    using A = acc_t<T>;
    const TensorOptions acc_opt{dtype_of<A>, first.device()};
    const int64_t splits = splits_for(l, first.device().index);
    const int64_t chunk = ceil_div(std::max<int64_t>(l.per_channel(), 1), splits);
    Tensor part = empty({2, l.c * splits}, acc_opt);
    Tensor coeffs = empty({3 * l.c}, acc_opt);
    A* part_dy = static_cast<A*>(part.data_ptr());
    A* part_dyx = part_dy + l.c * splits;
    const T* yp = relu ? static_cast<const T*>(y.data_ptr()) : nullptr;
    const A* mp = static_cast<const A*>(mean.data_ptr());
    const A* ip = static_cast<const A*>(invstd.data_ptr());
    grad_partial_kernel<T><<<dim3(unsigned(l.c), unsigned(splits)), kBlockSize, 0, stream>>>(
        static_cast<const T*>(grad_y.data_ptr()), static_cast<const T*>(x.data_ptr()), yp, mp, ip,
        l, chunk, part_dy, part_dyx);
    NN_CUDA_CHECK_LAUNCH();
    grad_finalize_kernel<T><<<grid_for(l.c, kBlockSize), kBlockSize, 0, stream>>>(
        part_dy, part_dyx, l, splits, ptr_or_null<T>(gamma), ip, training,
        mut_or_null<T>(grads.dgamma), mut_or_null<T>(grads.dbeta),
        static_cast<A*>(coeffs.data_ptr()));
    NN_CUDA_CHECK_LAUNCH();
    if (grads.dx.defined() && x.numel() > 0) {
      grad_input_kernel<T><<<grid_for(x.numel(), kBlockSize), kBlockSize, 0, stream>>>(
          static_cast<T*>(grads.dx.data_ptr()), static_cast<const T*>(grad_y.data_ptr()),
          static_cast<const T*>(x.data_ptr()), yp, mp, ip, static_cast<const A*>(coeffs.data_ptr()),
          x.numel(), l.c, l.inner);
      NN_CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace nn::cuda
