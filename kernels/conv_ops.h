// Convolutional-network ops: conv2d (forward, backward-data, backward-weight), max/avg pooling,
// adaptive average pooling and batch norm, all NCHW. Like kernels/ops.h, each function validates
// its arguments (a clear nn::Error naming the op and the shapes), allocates its outputs on the
// inputs' device and dispatches to the CPU or CUDA backend through the op table; none reads a
// device value on the host.
//
// Dtypes: float32 and float64 everywhere; bfloat16 and float16 too (CUDA's tensor-core paths; the
// CPU computes them in float32 and rounds once). Pooling indices are int64.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "core/tensor.h"
#include "kernels/nn_ops.h"

namespace nn {

// ---- conv2d -----------------------------------------------------------------------------------
struct Conv2dOptions {
  std::array<int64_t, 2> stride{1, 1};    // >= 1
  std::array<int64_t, 2> padding{0, 0};   // >= 0, zeros
  std::array<int64_t, 2> dilation{1, 1};  // >= 1
  int64_t groups = 1;                     // divides C and O; groups == C == O is depthwise
};

// Output size along one axis: (in + 2 pad - dilation (k - 1) - 1) / stride + 1 (floor), PyTorch's.
int64_t conv_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding,
                      int64_t dilation);

// y [N, O, Ho, Wo] = conv(x [N, C, H, W], w [O, C / groups, kH, kW]) + b [O] (b may be
// undefined). Cross-correlation, as every framework computes it. Throws ShapeError naming
// "conv2d" for a rank other than 4, a channel mismatch ("conv2d: input has 3 channels, weight
// expects 1 (groups 1)"), groups not dividing C and O, a kernel larger than the padded input
// (an empty output), a bias of the wrong size; ValueError for stride/dilation < 1, padding < 0,
// groups < 1; DtypeError/DeviceError as the other ops.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b = {},
              const Conv2dOptions& opt = {});

struct Conv2dGrads {
  Tensor dx;  // x's shape
  Tensor dw;  // w's shape
  Tensor db;  // [O]
  // The device of the first defined gradient (the op table dispatches on it); CPU when none is.
  Device device() const;
};
// Gradients of conv2d given grad_y (y's shape); only what the flags ask for is computed.
// dx is the transposed convolution of grad_y with w; dw the correlation of x with grad_y; db the
// sums of grad_y over N, Ho, Wo. Throws as conv2d does, naming "conv2d_backward".
Conv2dGrads conv2d_backward(const Tensor& grad_y, const Tensor& x, const Tensor& w,
                            const Conv2dOptions& opt, bool need_dx, bool need_dw, bool need_db);

// Which implementation computes conv2d and its backward on CUDA (the CPU ignores it). Cudnn:
// cuDNN 9 with the algorithm chosen once per shape and cached. Ours: our implicit-GEMM
// tensor-core kernels (no im2col buffer in device memory). Auto: the faster of the two per shape
// (timed once per shape and cached). The initial value comes from NN_CONV_BACKEND=auto|cudnn|ours,
// read on first use (another value: ValueError from that first call). Process-wide, thread-safe.
enum class ConvBackend : uint8_t { Auto, Cudnn, Ours };
const char* conv_backend_name(ConvBackend b);             // "auto", "cudnn", "ours"
ConvBackend parse_conv_backend(const std::string& name);  // ValueError for another name
void set_conv_backend(ConvBackend b);
ConvBackend conv_backend();

// ---- pooling ------------------------------------------------------------------------------------
enum class PoolKind : uint8_t { Max, Avg };

struct Pool2dOptions {
  std::array<int64_t, 2> kernel{2, 2};   // >= 1
  std::array<int64_t, 2> stride{0, 0};   // 0 = the kernel size (PyTorch's default)
  std::array<int64_t, 2> padding{0, 0};  // >= 0 and <= kernel / 2; max pads with -inf
  std::array<int64_t, 2> dilation{1, 1};  // max only (>= 1)
  bool ceil_mode = false;                // output size rounded up, as PyTorch
  bool count_include_pad = true;         // avg: whether padded zeros count in the divisor
};

// Output size along one axis, PyTorch's rule (ceil_mode's last window must start inside the
// input or the left padding).
int64_t pool_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding,
                      int64_t dilation, bool ceil_mode);

// y [N, C, Ho, Wo]. max_pool2d: *indices (when non-null) receives int64 [N, C, Ho, Wo], the flat
// h * W + w position of each maximum in its input plane (PyTorch's convention; NaN wins, the first
// maximum on ties; a window that dilation makes cover only padding gives -inf and index -1, which
// the backward skips). Throws ShapeError for a rank other than 4 or an empty output, ValueError for
// bad options, naming "max_pool2d" / "avg_pool2d".
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& opt, Tensor* indices = nullptr);
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& opt);
// dx (x's shape): grad_y scattered to the recorded maxima (accumulated where windows overlap).
Tensor max_pool2d_backward(const Tensor& grad_y, const Tensor& indices, const Shape& x_shape);
Tensor avg_pool2d_backward(const Tensor& grad_y, const Shape& x_shape, const Pool2dOptions& opt);

// PyTorch's adaptive average pooling to [N, C, out_h, out_w]: output cell i covers input rows
// floor(i H / out_h) .. ceil((i + 1) H / out_h) - 1 (and likewise columns).
Tensor adaptive_avg_pool2d(const Tensor& x, std::array<int64_t, 2> out_size);
Tensor adaptive_avg_pool2d_backward(const Tensor& grad_y, const Shape& x_shape);

// ---- batch norm ---------------------------------------------------------------------------------
// x: [N, C] or [N, C, *] (BatchNorm1d/2d); per channel c over every other axis.
// Training: mean and biased variance of the batch normalise x; running_mean/running_var (when
// defined, float tensors [C] of x's dtype, updated in place on the device) move towards the batch
// mean and the UNBIASED variance by `momentum` (PyTorch's rule). Evaluation: the running
// statistics normalise. y = act(gamma (x - mean) * invstd + beta); act is None or Relu (the fused
// batch-norm + ReLU). gamma/beta [C] may be undefined (1 and 0).
// *save_mean / *save_invstd (when non-null, training only) receive the batch mean and
// 1 / sqrt(var + eps) [C] in float32 (float64 for float64 x) for batch_norm_backward.
// Throws ShapeError (rank < 2, a [C] tensor of the wrong size, training with one value per
// channel), ValueError (eps <= 0, momentum outside [0, 1], act not None/Relu, evaluation without
// running statistics), DtypeError/DeviceError, naming "batch_norm".
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                  Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5,
                  Activation act = Activation::None, Tensor* save_mean = nullptr,
                  Tensor* save_invstd = nullptr);

struct BatchNormGrads {
  Tensor dx;      // x's shape
  Tensor dgamma;  // [C]
  Tensor dbeta;   // [C]
  Device device() const;  // of the first defined gradient; CPU when none is
};
// Gradients of batch_norm. training: through the batch statistics, with save_mean/save_invstd
// as the forward saved them; evaluation: the statistics are constants, and the caller passes
// save_mean = running_mean and save_invstd = 1 / sqrt(running_var + eps) (graph/'s batch_norm
// does). y is the forward's output, read only for act == Relu (its mask; undefined otherwise).
// Throws as batch_norm does, naming "batch_norm_backward".
BatchNormGrads batch_norm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& gamma,
                                   const Tensor& save_mean, const Tensor& save_invstd,
                                   const Tensor& y, bool training, Activation act, bool need_dx,
                                   bool need_dgamma, bool need_dbeta);

}  // namespace nn
