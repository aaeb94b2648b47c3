// Internal interface of the CUDA convolution (kernels/cuda/conv*.cu, conv_*.cpp) and its GPU
// tests: the two implementations behind the op-table rows conv2d / conv2d_backward_data /
// conv2d_backward_weight, and the per-shape autotune cache that ConvBackend::Auto uses. Plain C++
// so host-only translation units may include it.
//
// Every function here takes tensors laid out as the op-table rows promise (kernels/backend.h:
// NCHW, contiguous, one floating dtype, on one CUDA device, options validated), enqueues on the
// device's current stream and never waits for the GPU, except where a comment says so.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/tensor.h"
#include "kernels/conv_ops.h"

namespace nn::cuda {

// ---- ours: implicit GEMM (kernels/cuda/conv.cu)
// -------------------------------------------------- Tensor cores (mma.sync; bfloat16/float16 with
// float32 accumulation, float32 as TF32 while allow_tf32()) on compute capability 8.0+, a SIMT
// kernel for float64 and float32 without TF32. No im2col buffer: operand tiles are gathered from x
// / grad_y / w as they are staged. Throws DtypeError for bfloat16/float16 on a device older
// than 8.0, CudaError on a launch failure.
void conv2d_ours(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b,
                 const Conv2dOptions& opt);
void conv2d_backward_data_ours(Tensor& dx, const Tensor& grad_y, const Tensor& w,
                               const Conv2dOptions& opt);
void conv2d_backward_weight_ours(Tensor& dw, Tensor& db, const Tensor& grad_y, const Tensor& x,
                                 const Conv2dOptions& opt);

// Small helpers the cuDNN path shares: y[n, o, ...] += b[o]; db[o] = sum of grad_y over n, h, w
// (float32 accumulation for the half types, fixed order: deterministic).
void conv_add_bias(Tensor& y, const Tensor& b);
void conv_bias_grad(Tensor& db, const Tensor& grad_y);

// ---- cuDNN 9 (kernels/cuda/conv_cudnn.cpp) ---------------------------------------------------
// False when the library was built without cuDNN; the functions below then throw DeviceError.
bool cudnn_conv_available();
// Descriptors and the algorithm (cuDNN's heuristics, the first that runs within the workspace
// limit) are made once per (device, shapes, options, dtype, TF32, pass) and cached with the
// workspace size; the workspace comes from the caching allocator. Throws CudaError when cuDNN
// rejects the configuration.
void conv2d_cudnn(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b,
                  const Conv2dOptions& opt);
void conv2d_backward_data_cudnn(Tensor& dx, const Tensor& grad_y, const Tensor& w,
                                const Conv2dOptions& opt);
void conv2d_backward_weight_cudnn(Tensor& dw, Tensor& db, const Tensor& grad_y, const Tensor& x,
                                  const Conv2dOptions& opt);
int64_t cudnn_conv_plan_count();  // cached (shape, pass) plans
void clear_cudnn_conv_plans();

// ---- Auto (kernels/cuda/conv_dispatch.cpp) ---------------------------------------------------
enum class ConvPass : uint8_t { Forward, BackwardData, BackwardWeight };
enum class ConvImpl : uint8_t { Cudnn, Ours };
const char* conv_impl_name(ConvImpl i);  // "cudnn", "ours"

struct ConvTuneKey {
  int device = 0;
  ConvPass pass = ConvPass::Forward;
  Shape x, w;  // x [N, C, H, W] and w [O, C/g, kH, kW] of the forward
  Conv2dOptions opt;
  Dtype dtype = Dtype::Float32;
  bool tf32 = false;   // float32 with allow_tf32()
  bool extra = false;  // forward: with bias; backward weight: with db
  bool operator==(const ConvTuneKey& o) const;
};
// The key as integers, for ordered maps (the cuDNN plan cache shares it, with extra = false).
std::vector<int64_t> conv_key_words(const ConvTuneKey& key);

// The recorded winner for `key`, or nothing when it has not been timed.
std::optional<ConvImpl> conv_autotune_choice(const ConvTuneKey& key);
int64_t conv_autotune_cache_size();
void clear_conv_autotune_cache();

}  // namespace nn::cuda
