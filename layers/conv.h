// Conv2d: PyTorch's nn.Conv2d over NCHW tensors. weight [out_channels, in_channels / groups, kH,
// kW], bias [out_channels] (optional); x [N, in_channels, H, W] of the parameters' dtype and
// device; y [N, out_channels, Ho, Wo] with Ho, Wo from conv_out_size (kernels/conv_ops.h). The
// forward is one call of the differentiable conv2d (graph/functions.h).
//
// Initialisation as PyTorch's: kaiming_uniform_(a = sqrt(5)) on the weight, which is
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in_channels / groups * kH * kW, and the bias
// from the same range, drawn with the given generator (default_generator() when null): the same
// seed gives the same weights on the CPU and on CUDA.
// Errors: ValueError for non-positive channels or kernel, stride/dilation < 1, padding < 0,
// groups < 1 or not dividing both channel counts; DtypeError for non-floating parameters; the
// op's ShapeError ("conv2d: input has 3 channels, weight expects 1 (groups 1)") for a wrong input.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "core/rng.h"
#include "kernels/conv_ops.h"
#include "layers/module.h"

namespace nn {

class Conv2d : public Module {
 public:
  // Conv2d(1, 32, 3, {.padding = {1, 1}}): a square kernel; the options are the op's.
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size,
         const Conv2dOptions& conv = {}, bool bias = true, TensorOptions options = {},
         Generator* gen = nullptr);
  Conv2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel_size,
         const Conv2dOptions& conv = {}, bool bias = true, TensorOptions options = {},
         Generator* gen = nullptr);

  Variable forward(const Variable& x) override;

  Variable& weight() { return weight_; }
  Variable& bias() { return bias_; }  // undefined without bias
  int64_t in_channels() const { return in_channels_; }
  int64_t out_channels() const { return out_channels_; }
  std::array<int64_t, 2> kernel_size() const { return kernel_; }
  const Conv2dOptions& options() const { return conv_; }

  std::string name() const override { return "Conv2d"; }
  // "1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)" as PyTorch prints it (dilation
  // and groups only when not 1, bias only when absent).
  std::string extra_repr() const override;

 private:
  int64_t in_channels_;
  int64_t out_channels_;
  std::array<int64_t, 2> kernel_;
  Conv2dOptions conv_;
  Variable weight_;
  Variable bias_;
};

}  // namespace nn
