// Batch normalisation, as PyTorch's nn.BatchNorm1d / nn.BatchNorm2d: per channel c (axis 1),
// y = gamma (x - mean) / sqrt(var + eps) + beta, optionally followed by a fused ReLU.
//   BatchNorm1d: x [N, C] or [N, C, L];  BatchNorm2d: x [N, C, H, W].
// Parameters weight (gamma, ones) and bias (beta, zeros), [C], when affine. Buffers, named as
// PyTorch names them so that state dicts line up: running_mean (zeros) and running_var (ones),
// [C] of the parameters' dtype, and num_batches_tracked (int64, a 0-d tensor), when
// track_running_stats. In training the batch statistics normalise and the running ones move
// towards them by `momentum` (the unbiased variance, PyTorch's rule), all on the device; in
// evaluation the running statistics normalise. Without track_running_stats the batch statistics
// are used in both modes. momentum = None (PyTorch's cumulative average) is not offered: it would
// read num_batches_tracked on the host every step.
// Errors: ValueError from the constructor for num_features < 1, eps <= 0, momentum outside
// [0, 1], an activation other than None/Relu; DtypeError for non-floating parameters; ShapeError
// from forward for a wrong rank or channel count ("BatchNorm2d: input has 3 channels, expected
// 16"), or a training batch with one value per channel (from the op).
#pragma once

#include <cstdint>
#include <string>

#include "kernels/nn_ops.h"
#include "layers/module.h"

namespace nn {

struct BatchNormOptions {
  double eps = 1e-5;
  double momentum = 0.1;
  bool affine = true;
  bool track_running_stats = true;
  // None, or Relu: batch norm + ReLU in one fused op (a ResNet's bn1 + relu).
  Activation activation = Activation::None;
};

// The shared implementation; use BatchNorm1d or BatchNorm2d.
class BatchNorm : public Module {
 public:
  Variable forward(const Variable& x) override;

  Variable& weight() { return weight_; }  // undefined without affine
  Variable& bias() { return bias_; }      // undefined without affine
  // Undefined without track_running_stats. The references stay valid for the module's life.
  Tensor& running_mean() { return *running_mean_; }
  Tensor& running_var() { return *running_var_; }
  Tensor& num_batches_tracked() { return *num_batches_tracked_; }
  int64_t num_features() const { return num_features_; }
  const BatchNormOptions& options() const { return opt_; }
  // Running statistics back to zeros / ones and the batch count to 0 (parameters untouched).
  void reset_running_stats();

  std::string extra_repr() const override;

 protected:
  BatchNorm(const char* layer, int64_t num_features, const BatchNormOptions& bn,
            TensorOptions options);
  // ShapeError unless x's rank suits the layer.
  virtual void check_rank(const Variable& x) const = 0;

 private:
  int64_t num_features_;
  BatchNormOptions opt_;
  Variable weight_;
  Variable bias_;
  Tensor undefined_;  // what the running-statistic references point at without tracking
  Tensor* running_mean_ = &undefined_;
  Tensor* running_var_ = &undefined_;
  Tensor* num_batches_tracked_ = &undefined_;
};

class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(int64_t num_features, const BatchNormOptions& bn = {},
                       TensorOptions options = {})
      : BatchNorm("BatchNorm1d", num_features, bn, options) {}
  std::string name() const override { return "BatchNorm1d"; }

 protected:
  void check_rank(const Variable& x) const override;
};

class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(int64_t num_features, const BatchNormOptions& bn = {},
                       TensorOptions options = {})
      : BatchNorm("BatchNorm2d", num_features, bn, options) {}
  std::string name() const override { return "BatchNorm2d"; }

 protected:
  void check_rank(const Variable& x) const override;
};

}  // namespace nn
