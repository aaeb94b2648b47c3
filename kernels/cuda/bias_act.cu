// CUDA rows of the standalone activation ops: bias_activation (through launch_bias_activation,
// which linear's cuBLAS path shares) and activation_backward.
//
// bias + activation decomposition: a 1-D grid-stride loop over [outer, C, inner] flattened. When
// every pointer allows it, a thread owns V consecutive elements per step (V = 16 bytes of the
// wider of `in` and the output), read and written as one vector access each; otherwise V = 1.
// The bias of a vector's elements comes one of three ways, picked once per launch:
//  - no bias;
//  - inner == 1 and C % V == 0 (a linear layer's features): the V biases are consecutive and
//    aligned, one vector load at (i mod C);
//  - anything else (NCHW channels, odd widths): the first element's channel by division, then
//    stepped element by element, so a vector may straddle channels.
// Indices are 32-bit when the tensor allows (divisions are then cheap), 64-bit otherwise.
// activation_backward is one vectorized elementwise pass (kernels/cuda/elementwise.cuh).
#include <limits>
#include <type_traits>

#include "kernels/backend.h"
#include "kernels/cuda/bias_act.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/nn_math.h"

namespace nn::cuda {
namespace {

enum class BiasMode : int { None, Row, Any };

template <class T, class In, class Index>
struct BiasActParams {
  const In* in;
  const T* bias;
  T* out;
  T* pre;  // or null
  Index n, channels, inner;
  BiasMode mode;
};

// The W elements starting at flat index i (W == 1 or the kernel's V; i a multiple of W).
template <Activation Act, int W, class T, class In, class Index>
__device__ NN_INLINE void bias_act_step(const BiasActParams<T, In, Index>& p, Index i) {
  using A = acc_t<T>;
  const Vec<In, W> x = *reinterpret_cast<const Vec<In, W>*>(p.in + i);
  A b[W];
  if (p.mode == BiasMode::None) {
#pragma unroll
    for (int j = 0; j < W; ++j) b[j] = A(0);
  } else if (p.mode == BiasMode::Row) {
    const Vec<T, W> bv = *reinterpret_cast<const Vec<T, W>*>(p.bias + i % p.channels);
#pragma unroll
    for (int j = 0; j < W; ++j) b[j] = static_cast<A>(bv.v[j]);
  } else {
    const Index q = i / p.inner;
    Index at = i - q * p.inner, c = q % p.channels;
#pragma unroll
    for (int j = 0; j < W; ++j) {
      b[j] = static_cast<A>(p.bias[c]);
      if (++at == p.inner) {
        at = 0;
        if (++c == p.channels) c = 0;
      }
    }
  }
  Vec<T, W> y, z;
#pragma unroll
  for (int j = 0; j < W; ++j) {
    const A zj = static_cast<A>(x.v[j]) + b[j];
    z.v[j] = T(zj);
    y.v[j] = T(math::activation_fn<Act, A>(zj));
  }
  // `in` may alias out or pre: it was read whole above, before either store.
  if (p.pre) *reinterpret_cast<Vec<T, W>*>(p.pre + i) = z;
  *reinterpret_cast<Vec<T, W>*>(p.out + i) = y;
}

template <Activation Act, int V, class T, class In, class Index>
__global__ void __launch_bounds__(kBlockSize) bias_act_kernel(BiasActParams<T, In, Index> p) {
  const Index stride = Index(gridDim.x) * Index(blockDim.x);
  const Index first = Index(blockIdx.x) * Index(blockDim.x) + Index(threadIdx.x);
  const Index nvec = p.n / V;
  for (Index v = first; v < nvec; v += stride) bias_act_step<Act, V>(p, v * V);
  if constexpr (V > 1) {
    for (Index i = nvec * V + first; i < p.n; i += stride) bias_act_step<Act, 1>(p, i);
  }
}

template <class T, class In, class Index>
void launch_typed(const BiasActArgs& a, cudaStream_t stream) {
  constexpr int kV = vector_width<T, In>();
  BiasActParams<T, In, Index> p;
  p.in = static_cast<const In*>(a.in);
  p.bias = static_cast<const T*>(a.bias);
  p.out = static_cast<T*>(a.out);
  p.pre = static_cast<T*>(a.pre);
  p.n = Index(a.outer * a.channels * a.inner);
  p.channels = Index(a.channels);
  p.inner = Index(a.inner);
  const bool vectorise = is_aligned(p.in, sizeof(In) * kV) && is_aligned(p.out, sizeof(T) * kV) &&
                         (p.pre == nullptr || is_aligned(p.pre, sizeof(T) * kV));
  const int width = vectorise ? kV : 1;
  if (p.bias == nullptr)
    p.mode = BiasMode::None;
  else if (a.inner == 1 && a.channels % width == 0 && is_aligned(p.bias, sizeof(T) * width))
    p.mode = BiasMode::Row;
  else
    p.mode = BiasMode::Any;
  const int64_t n = a.outer * a.channels * a.inner;
  visit_activation(a.act, [&]<Activation Act>() {
    if (vectorise)
      bias_act_kernel<Act, kV><<<grid_for(ceil_div(n, kV), kBlockSize), kBlockSize, 0, stream>>>(p);
    else
      bias_act_kernel<Act, 1><<<grid_for(n, kBlockSize), kBlockSize, 0, stream>>>(p);
  });
  NN_CUDA_CHECK_LAUNCH();
}

template <class T, class In>
void launch_indexed(const BiasActArgs& a, cudaStream_t stream) {
  // 32-bit when every index and the grid-stride overshoot past the end stay below 2^32.
  const int64_t n = a.outer * a.channels * a.inner;
  if (n <= int64_t(std::numeric_limits<int32_t>::max()))
    launch_typed<T, In, uint32_t>(a, stream);
  else
    launch_typed<T, In, int64_t>(a, stream);
}

template <class T, Activation Act>
struct ActivationGradFn {
  __device__ T operator()(T g, T s) const {
    using A = acc_t<T>;
    return T(math::activation_grad<Act, A>(static_cast<A>(g), static_cast<A>(s)));
  }
};

}  // namespace

void launch_bias_activation(const BiasActArgs& a, cudaStream_t stream) {
  NN_CHECK(a.outer >= 0 && a.channels >= 1 && a.inner >= 1, ValueError,
           "bias_activation: bad layout [", a.outer, ", ", a.channels, ", ", a.inner, "]");
  if (a.outer * a.channels * a.inner == 0) return;
  NN_CHECK(a.in_dtype == a.dtype || a.in_dtype == Dtype::Float32, DtypeError,
           "bias_activation: input is ", dtype_name(a.in_dtype), ", expected ", dtype_name(a.dtype),
           " or float32");
  visit_floating(a.dtype, "bias_activation", [&]<class T>() {
    if (a.in_dtype == a.dtype)
      launch_indexed<T, T>(a, stream);
    else if constexpr (std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>)
      launch_indexed<T, float>(a, stream);
    else
      NN_THROW(DtypeError, "bias_activation: a float32 input is for the half types only, got ",
               dtype_name(a.dtype), " output");
  });
}

void bias_activation(Tensor& out, Tensor& pre, const Tensor& x, const Tensor& bias, int64_t inner,
                     Activation act) {
  const int64_t n = out.numel();
  if (n == 0) return;
  BiasActArgs a;
  a.dtype = out.dtype();
  a.in_dtype = x.dtype();
  a.in = x.data_ptr();
  a.bias = bias.defined() ? bias.data_ptr() : nullptr;
  a.out = out.data_ptr();
  a.pre = pre.defined() ? pre.data_ptr() : nullptr;
  a.channels = bias.defined() ? bias.numel() : 1;
  a.inner = inner;
  a.outer = n / (a.channels * inner);
  a.act = act;
  DeviceScope scope(out);
  launch_bias_activation(a, scope.stream());
}

void activation_backward(Tensor& out, const Tensor& grad, const Tensor& saved, Activation act) {
  visit_floating(out.dtype(), "activation_backward", [&]<class T>() {
    visit_activation(act, [&]<Activation Act>() {
      // None keeps nothing: its gradient is grad itself (read twice, ignored once).
      const Tensor& s = saved.defined() ? saved : grad;
      launch_elementwise<T, T, T>(out, ActivationGradFn<T, Act>{}, grad, s);
    });
  });
}

}  // namespace nn::cuda
