// The vectorized bias + activation pass (kernels/cuda/bias_act.cu), shared by the
// bias_activation row and by linear's cuBLAS path, whose GEMM leaves x w^T in an accumulator.
// Internal to kernels/cuda/; plain C++ so host-only translation units may include it.
//
// For every element (o, c, i) of [outer, channels, inner]:
//   z = in[o, c, i] + bias[c];   pre[...] = z (when pre is set);   out[...] = act(z)
// rounded once into `dtype`. `in` has `dtype` or float32 (the float32 accumulator of a half-type
// GEMM); it may alias out or pre exactly. All contiguous; bias may be null (then z = in).
// Enqueues on `stream`, never synchronises; the device must be current.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.h"
#include "kernels/nn_ops.h"

namespace nn::cuda {

struct BiasActArgs {
  Dtype dtype = Dtype::Float32;     // of out, pre and bias
  Dtype in_dtype = Dtype::Float32;  // of in: dtype, or float32
  const void* in = nullptr;
  const void* bias = nullptr;  // [channels] or null
  void* out = nullptr;
  void* pre = nullptr;  // or null
  int64_t outer = 0, channels = 1, inner = 1;
  Activation act = Activation::None;
};

void launch_bias_activation(const BiasActArgs& a, cudaStream_t stream);

}  // namespace nn::cuda
