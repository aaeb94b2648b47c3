// The one elementwise launcher behind fill, copy, unary, unary_backward, binary and where:
// out[i] = f(in0[i], in1[i], ...) over tensors of one shape (inputs expanded, any strides).
//
// Decomposition: a 1-D grid-stride loop over the output. When every tensor is dense and in
// order and every pointer is aligned to the vector size, a thread owns V consecutive elements
// per step, loaded and stored as one 16-byte (or narrower, for mixed widths) vector access;
// otherwise a thread owns one element per step and finds it through OffsetCalc.
#pragma once

#include <array>
#include <utility>

#include "kernels/cuda/common.cuh"
#include "kernels/indexing.h"

namespace nn::cuda {

// The packs come by value: loading each one whole is what makes it a single vector access.
template <int V, class Out, class F, class... In>
__device__ NN_INLINE Vec<Out, V> apply_vec(const F& f, const Vec<In, V>... x) {
  Vec<Out, V> r;
#pragma unroll
  for (int j = 0; j < V; ++j) r.v[j] = f(x.v[j]...);
  return r;
}

template <int V, class F, class Out, class... In>
__global__ void elementwise_contiguous_kernel(int64_t n, F f, Out* out, const In*... in) {
  const int64_t nvec = n / V;
  for (int64_t v = global_thread(); v < nvec; v += grid_threads()) {
    reinterpret_cast<Vec<Out, V>*>(out)[v] =
        apply_vec<V, Out>(f, reinterpret_cast<const Vec<In, V>*>(in)[v]...);
  }
  for (int64_t i = nvec * V + global_thread(); i < n; i += grid_threads()) out[i] = f(in[i]...);
}

template <class F, size_t... K, class... In>
__device__ NN_INLINE auto apply_at(const F& f, const int64_t* off, std::index_sequence<K...>,
                                   const In*... in) {
  return f(in[off[K + 1]]...);
}

template <class F, class Out, class... In>
__global__ void elementwise_strided_kernel(int64_t n, OffsetCalc<1 + sizeof...(In)> calc, F f,
                                           Out* out, const In*... in) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t off[1 + sizeof...(In)];
    calc.offsets(i, off);
    out[off[0]] = apply_at(f, off, std::index_sequence_for<In...>{}, in...);
  }
}

template <class>
using TensorArg = const Tensor&;

// out[i] = f(ins[i]...). Out and In... are the element types (checked against the tensors'
// dtypes by Tensor::data); f is a device functor taking In... and returning Out.
template <class Out, class... In, class F>
void launch_elementwise(Tensor& out, const F& f, TensorArg<In>... ins) {
  const int64_t n = out.numel();
  if (n == 0) return;
  constexpr int kN = 1 + sizeof...(In);
  const OffsetCalc<kN> calc =
      make_offset_calc<kN>(out.shape(), std::array<const Tensor*, kN>{&out, &ins...});
  Out* o = out.data<Out>();
  DeviceScope scope(out);
  constexpr int kV = vector_width<Out, In...>();
  if (calc.contiguous() && is_aligned(o, sizeof(Out) * kV) &&
      (is_aligned(ins.data_ptr(), sizeof(In) * kV) && ...)) {
    elementwise_contiguous_kernel<kV>
        <<<grid_for(ceil_div(n, kV), kBlockSize), kBlockSize, 0, scope.stream()>>>(
            n, f, o, ins.template data<In>()...);
  } else {
    elementwise_strided_kernel<<<grid_for(n, kBlockSize), kBlockSize, 0, scope.stream()>>>(
        n, calc, f, o, static_cast<const In*>(ins.template data<In>())...);
  }
  NN_CUDA_CHECK_LAUNCH();
}

}  // namespace nn::cuda
