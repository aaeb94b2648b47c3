// Differentiable ops: the op table's functions (kernels/ops.h, kernels/nn_ops.h) over Variables.
// Each forward calls the op table and records a node whose backward is written with ops of the
// table, so gradients run on whatever device the inputs are on. Same names, arguments, dtype
// rules and errors as the Tensor forms; inputs that do not require a gradient cost nothing extra.
//
// Not differentiable (use the Tensor forms on v.data()): comparisons, argmax/argmin, sign's
// zero derivative aside, and the random fills.
#pragma once

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "graph/variable.h"
#include "kernels/conv_ops.h"
#include "kernels/nn_ops.h"
#include "kernels/ops.h"
#include "kernels/shape_ops.h"

namespace nn {

// ---- elementwise unary and activations -----------------------------------------------------
Variable unary(UnaryOp op, const Variable& x, double alpha = 0.0, double beta = 0.0);
Variable neg(const Variable& x);
Variable exp(const Variable& x);
Variable log(const Variable& x);
Variable sqrt(const Variable& x);
Variable rsqrt(const Variable& x);
Variable abs(const Variable& x);
Variable pow(const Variable& x, double exponent);
Variable clamp(const Variable& x, double lo, double hi);
Variable relu(const Variable& x);
Variable leaky_relu(const Variable& x, double negative_slope = 0.01);
Variable sigmoid(const Variable& x);
Variable tanh(const Variable& x);
Variable gelu(const Variable& x, bool tanh_approximation = false);
Variable silu(const Variable& x);
Variable softplus(const Variable& x, double beta = 1.0, double threshold = 20.0);
Variable activation(Activation act, const Variable& x);  // None is the identity
// act(x + b) with b [x.size(dim)] broadcast along `dim` (kernels/nn_ops.h's fused pass); keeps
// only what the activation's backward reads (y itself for relu/sigmoid/tanh). b may be undefined.
Variable bias_activation(const Variable& x, const Variable& b, Activation act, int64_t dim = -1);

// ---- elementwise binary (broadcasting; gradients are summed back to each input's shape) ------
Variable binary(BinaryOp op, const Variable& a, const Variable& b);  // not comparisons
Variable add(const Variable& a, const Variable& b);
Variable sub(const Variable& a, const Variable& b);
Variable mul(const Variable& a, const Variable& b);
Variable div(const Variable& a, const Variable& b);
Variable maximum(const Variable& a, const Variable& b);  // ties split the gradient evenly
Variable minimum(const Variable& a, const Variable& b);
Variable pow(const Variable& a, const Variable& b);
Variable add(const Variable& a, double b);
Variable sub(const Variable& a, double b);
Variable mul(const Variable& a, double b);
Variable div(const Variable& a, double b);
Variable rsub(double a, const Variable& b);  // a - b
// cond is a bool tensor (no gradient); a and b broadcast with it.
Variable where(const Tensor& cond, const Variable& a, const Variable& b);

Variable operator-(const Variable& a);
Variable operator+(const Variable& a, const Variable& b);
Variable operator-(const Variable& a, const Variable& b);
Variable operator*(const Variable& a, const Variable& b);
Variable operator/(const Variable& a, const Variable& b);
Variable operator+(const Variable& a, double b);
Variable operator-(const Variable& a, double b);
Variable operator*(const Variable& a, double b);
Variable operator/(const Variable& a, double b);
Variable operator+(double a, const Variable& b);
Variable operator-(double a, const Variable& b);
Variable operator*(double a, const Variable& b);

// ---- reductions ------------------------------------------------------------------------------
Variable sum(const Variable& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Variable mean(const Variable& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// The gradient goes to every position equal to the extreme, split evenly among ties.
Variable amax(const Variable& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Variable amin(const Variable& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Variable var(const Variable& x, const std::vector<int64_t>& dims = {}, int64_t correction = 1,
             bool keepdim = false);
// Values (differentiable: the gradient goes to the returned index) and int64 indices. Backward
// builds a one-hot from an arange of positions: one small host-to-device copy on CUDA (the only
// op here whose backward is not pure device work; an on-device iota row would remove it).
std::pair<Variable, Tensor> max(const Variable& x, int64_t dim, bool keepdim = false);
std::pair<Variable, Tensor> min(const Variable& x, int64_t dim, bool keepdim = false);

// ---- softmax ---------------------------------------------------------------------------------
Variable softmax(const Variable& x, int64_t dim = -1);
Variable log_softmax(const Variable& x, int64_t dim = -1);

// ---- matmul and the fused neural-network ops -------------------------------------------------
Variable matmul(const Variable& a, const Variable& b, bool trans_a = false, bool trans_b = false);
Variable bmm(const Variable& a, const Variable& b);
// act(x w^T + b) through the op table's fused row; keeps what backward needs (y itself or the
// pre-activation, see activation_saved) only when a gradient will be needed. b may be undefined.
Variable linear(const Variable& x, const Variable& w, const Variable& b = {},
                Activation act = Activation::None);

enum class Reduction : uint8_t { None, Mean, Sum };
Reduction parse_reduction(const std::string& name);  // "none", "mean", "sum"
// Fused log-softmax + NLL (kernels/nn_ops.h). Mean divides by the summed weight of the
// non-ignored targets, as PyTorch does. target: int64 [N] (no gradient).
Variable cross_entropy(const Variable& logits, const Tensor& target,
                       const CrossEntropyOptions& options = {},
                       Reduction reduction = Reduction::Mean);

// Inverted dropout: in training, zeroes each element with probability p and scales the rest by
// 1/(1-p); the mask comes from Philox (the same on the CPU and CUDA for the same generator
// state) and takes one draw of the generator. Returns x itself when !training or p == 0; p == 1
// gives zeros; p outside [0, 1] is a ValueError.
Variable dropout(const Variable& x, double p, bool training, Generator* gen = nullptr);

// ---- convolutional networks (kernels/conv_ops.h; NCHW) ---------------------------------------
Variable conv2d(const Variable& x, const Variable& w, const Variable& b = {},
                const Conv2dOptions& opt = {});
Variable max_pool2d(const Variable& x, const Pool2dOptions& opt);
Variable avg_pool2d(const Variable& x, const Pool2dOptions& opt);
Variable adaptive_avg_pool2d(const Variable& x, std::array<int64_t, 2> out_size);
// In training the batch statistics normalise and running_mean/running_var (plain tensors, no
// gradient; may be undefined) are updated in place; in evaluation the running statistics
// normalise and are constants of the gradient. gamma/beta may be undefined. act: None or Relu.
Variable batch_norm(const Variable& x, const Variable& gamma, const Variable& beta,
                    Tensor& running_mean, Tensor& running_var, bool training,
                    double momentum = 0.1, double eps = 1e-5, Activation act = Activation::None);

// ---- shapes and views (the gradient flows back through the view) -----------------------------
Variable reshape(const Variable& x, const Shape& shape);
Variable view(const Variable& x, const Shape& shape);
Variable flatten(const Variable& x, int64_t start_dim = 0, int64_t end_dim = -1);
Variable transpose(const Variable& x, int64_t d0, int64_t d1);
Variable permute(const Variable& x, const std::vector<int64_t>& dims);
Variable slice(const Variable& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Variable narrow(const Variable& x, int64_t dim, int64_t start, int64_t length);
Variable select(const Variable& x, int64_t dim, int64_t index);
Variable squeeze(const Variable& x, int64_t dim);
Variable unsqueeze(const Variable& x, int64_t dim);
Variable expand(const Variable& x, const Shape& shape);
Variable contiguous(const Variable& x);
Variable to(const Variable& x, Dtype dtype);    // the gradient is cast back
Variable to(const Variable& x, Device device);  // the gradient is copied back
// Joins along `dim` (cat) or a new axis (stack); chunk splits into equal parts (the last one
// smaller, and fewer than `chunks` parts when the size does not allow more, as in PyTorch), split
// into the given sizes (ShapeError unless they add up to the size). Each part is a view, and its
// gradient is scattered into zeros of x's shape. The recurrent layers build on these.
Variable cat(const std::vector<Variable>& xs, int64_t dim = 0);
Variable stack(const std::vector<Variable>& xs, int64_t dim = 0);
std::vector<Variable> chunk(const Variable& x, int64_t chunks, int64_t dim = 0);
std::vector<Variable> split(const Variable& x, const std::vector<int64_t>& sizes, int64_t dim = 0);

}  // namespace nn
