// Pooling layers over NCHW tensors, as PyTorch's: MaxPool2d, AvgPool2d and AdaptiveAvgPool2d.
// Parameter-free; x [N, C, H, W] of any floating dtype on either device, y [N, C, Ho, Wo] with
// Ho, Wo from pool_out_size (kernels/conv_ops.h) or the adaptive output size. Each forward is one
// call of the differentiable op (graph/functions.h).
//
// A stride of 0 means the kernel size (PyTorch's default). Errors: ValueError from the
// constructor for kernel < 1, stride < 0, padding < 0 or above half the kernel, dilation < 1, an
// adaptive output size < 1; the op's ShapeError for an input that is not 4-d or too small.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "kernels/conv_ops.h"
#include "layers/module.h"

namespace nn {

class MaxPool2d : public Module {
 public:
  // MaxPool2d(2): 2x2 windows, stride 2.
  explicit MaxPool2d(int64_t kernel_size, int64_t stride = 0, int64_t padding = 0,
                     int64_t dilation = 1, bool ceil_mode = false);
  // Everything the op takes (count_include_pad is ignored).
  explicit MaxPool2d(const Pool2dOptions& options);

  Variable forward(const Variable& x) override;

  const Pool2dOptions& options() const { return opt_; }
  std::string name() const override { return "MaxPool2d"; }
  std::string extra_repr() const override;

 private:
  Pool2dOptions opt_;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(int64_t kernel_size, int64_t stride = 0, int64_t padding = 0,
                     bool ceil_mode = false, bool count_include_pad = true);
  // Everything the op takes (dilation must be 1: average pooling has none).
  explicit AvgPool2d(const Pool2dOptions& options);

  Variable forward(const Variable& x) override;

  const Pool2dOptions& options() const { return opt_; }
  std::string name() const override { return "AvgPool2d"; }
  std::string extra_repr() const override;

 private:
  Pool2dOptions opt_;
};

// Averages each plane down to output_size (PyTorch's cell boundaries); AdaptiveAvgPool2d(1) is the
// global average pool of a ResNet's head.
class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(int64_t output_size) : AdaptiveAvgPool2d({output_size, output_size}) {}
  explicit AdaptiveAvgPool2d(std::array<int64_t, 2> output_size);

  Variable forward(const Variable& x) override;

  std::array<int64_t, 2> output_size() const { return out_; }
  std::string name() const override { return "AdaptiveAvgPool2d"; }
  std::string extra_repr() const override;

 private:
  std::array<int64_t, 2> out_;
};

}  // namespace nn
