// Fused training ops of the op table: linear (GEMM + bias + activation), cross-entropy over class
// indices (log-softmax + NLL in one pass) and the fused optimizer step over a parameter group.
// Like kernels/ops.h, each function validates its arguments (a clear nn::Error naming the op),
// allocates its outputs on the inputs' device and dispatches to the CPU or CUDA backend. None of
// them reads a device value on the host: a training step built from them never waits on the GPU.
//
// Dtypes: float32, float64, bfloat16 and float16 (the half types compute in float32); class
// targets are int64. All tensors of one call live on one device (DeviceError otherwise).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/ops.h"

namespace nn {

// ---- activations fused into linear ----------------------------------------------------------
// The element functions are those of the unary ops of the same name (kernels/ops.h): Gelu is the
// exact x * Phi(x), GeluTanh its tanh approximation.
enum class Activation : uint8_t { None, Relu, Gelu, GeluTanh, Silu, Tanh, Sigmoid };
const char* activation_name(Activation a);  // "none", "relu", "gelu", "gelu_tanh", ...
// Parses the names activation_name gives (and "identity" for None); ValueError otherwise.
Activation parse_activation(const std::string& name);

// The unary op whose element function an activation uses (None has none: the identity).
constexpr UnaryOp activation_unary_op(Activation a) {
  switch (a) {
    case Activation::Relu:
      return UnaryOp::Relu;
    case Activation::Gelu:
      return UnaryOp::Gelu;
    case Activation::GeluTanh:
      return UnaryOp::GeluTanh;
    case Activation::Silu:
      return UnaryOp::Silu;
    case Activation::Tanh:
      return UnaryOp::Tanh;
    case Activation::Sigmoid:
      return UnaryOp::Sigmoid;
    case Activation::None:
      break;
  }
  return UnaryOp::Neg;  // never used for None
}

// ---- what backward keeps of an activation ------------------------------------------------------
// The tensor an activation's backward reads, so a forward keeps only that, and only in training:
//  - None: nothing;
//  - Relu, Sigmoid, Tanh: the output y itself (relu' = [y > 0], sigmoid' = y (1 - y),
//    tanh' = 1 - y^2, as PyTorch's threshold/sigmoid/tanh backward): no extra memory at all, the
//    output is the mask;
//  - Gelu, GeluTanh, Silu: the pre-activation z, an extra tensor the forward pass writes.
enum class ActivationSaved : uint8_t { Nothing, Output, PreActivation };
constexpr ActivationSaved activation_saved(Activation a) {
  switch (a) {
    case Activation::None:
      return ActivationSaved::Nothing;
    case Activation::Relu:
    case Activation::Sigmoid:
    case Activation::Tanh:
      return ActivationSaved::Output;
    case Activation::Gelu:
    case Activation::GeluTanh:
    case Activation::Silu:
      break;
  }
  return ActivationSaved::PreActivation;
}

// grad * act'(z) given `saved`, what activation_saved(act) names (y or z; undefined for None,
// which returns grad). grad and saved share shape, dtype and device (any strides); the result is
// contiguous. One vectorized elementwise pass on CUDA. Throws ShapeError/DtypeError/DeviceError
// naming "activation_backward", ValueError when saved is undefined but act needs it.
Tensor activation_backward(const Tensor& grad, const Tensor& saved, Activation act);

// ---- bias + activation (standalone) ---------------------------------------------------------
// y = act(x + b) with b broadcast along dimension `dim` of x (b has x.size(dim) elements): dim -1
// is a linear layer's features, dim 1 a convolution's channels (NCHW). One pass over x, 16-byte
// vectorized on CUDA. When `saved` is non-null it receives what activation_saved(act) names: y
// itself (the same tensor, no copy) or the pre-activation x + b written by the same pass, or
// undefined for None. x, b share a floating dtype and device; half types compute in float32.
// Throws ShapeError (bias size, dim out of range), DtypeError, DeviceError naming
// "bias_activation".
Tensor bias_activation(const Tensor& x, const Tensor& b, Activation act, int64_t dim = -1,
                       Tensor* saved = nullptr);

// ---- linear ---------------------------------------------------------------------------------
// y = act(x w^T + b). x: [..., in] (1-D: a single sample), w: [out, in] (PyTorch's layout),
// b: [out] or undefined; y: [..., out]. x, w, b share a floating dtype and a device; half dtypes
// accumulate in float32 and round once, after the bias and the activation.
// When `saved` is non-null it receives what linear_backward needs, per activation_saved(act): y
// itself for Relu/Sigmoid/Tanh (the same tensor as the result: no extra memory), the
// pre-activation x w^T + b for Gelu/GeluTanh/Silu (written by the same pass that writes y), an
// undefined tensor for None. With `saved` null nothing extra is computed or allocated.
// Throws ShapeError naming "linear" and the shapes ("linear: input has 784 features, weight
// expects 512"), DtypeError for a non-floating or mixed dtype, DeviceError for mixed devices.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = {},
              Activation act = Activation::None, Tensor* saved = nullptr);

// Which GEMM computes linear and linear_backward on CUDA (the CPU ignores it):
//  - Cublas: cuBLASLt, with its fused epilogues where it has them (bias, relu + bias, the tanh
//    GELU + bias with the pre-activation as its aux output; db from the dW GEMM's bias-gradient
//    epilogue), else a GEMM plus one vectorized bias/activation (or activation-backward) pass;
//  - Ours: our own tensor-core GEMM (bfloat16, float16, float32 while allow_tf32()) or its SIMT
//    kernel (float64, float32 without TF32), with bias/activation/pre-activation fused into the
//    store and, in backward, act' applied to grad_y as the GEMM stages it (dY' never goes to
//    memory) and db fused into the dW GEMM; where our kernel cannot run (a GPU older than
//    compute capability 8.0 for the half types), cuBLASLt runs instead;
//  - Auto: per GEMM (forward, backward dx, backward dW) and problem (rows, features, dtype,
//    TF32, activation, bias, saved), the faster of the two, timed once the first time the problem
//    is seen (that first call waits for the GPU once, counted by cuda::host_sync_count(); later
//    calls decide from a process-wide cache with no timing and no wait, and nothing is timed
//    while a stream is captured into a CUDA graph: cuBLASLt runs then).
// The initial value comes from the environment variable NN_LINEAR_BACKEND=auto|cublas|ours, read
// on first use (unset: Auto; any other value: ValueError from that first call). Process-wide and
// thread-safe.
enum class LinearBackend : uint8_t { Auto, Cublas, Ours };
const char* linear_backend_name(LinearBackend b);             // "auto", "cublas", "ours"
LinearBackend parse_linear_backend(const std::string& name);  // ValueError for another name
void set_linear_backend(LinearBackend b);
LinearBackend linear_backend();

// Gradients of linear. Undefined where not asked for.
struct LinearGrads {
  Tensor dx;  // x's shape
  Tensor dw;  // [out, in]
  Tensor db;  // [out]
  // The device of the first defined gradient (the op table dispatches on it); CPU when none is.
  Device device() const;
};
// grad_y: [..., out] (y's shape); saved: what linear(..., &saved) returned (undefined for None).
// dY' = grad_y * act'(z); dx = dY' w, dw = dY'^T x (x flattened to 2-D), db = column sums of
// dY'. Only what the flags ask for is computed. On CUDA act' is applied inside the GEMMs' operand
// loads (dY' never goes to memory) and db is fused or one pass. Throws as linear() does, naming
// "linear_backward", and ValueError when saved is undefined but act needs it.
LinearGrads linear_backward(const Tensor& grad_y, const Tensor& x, const Tensor& w,
                            const Tensor& saved, Activation act, bool need_dx, bool need_dw,
                            bool need_db);

// ---- cross-entropy --------------------------------------------------------------------------
struct CrossEntropyOptions {
  Tensor weight;                 // [C] class weights (same dtype/device as logits) or undefined
  double label_smoothing = 0.0;  // in [0, 1)
  int64_t ignore_index = -100;   // targets equal to it give 0 loss, 0 weight and 0 gradient
};

// Fused log-softmax + negative log-likelihood, PyTorch's definition (torch.nn.functional.
// cross_entropy with reduction="none"): for sample i with target y, log-probabilities lp and
// eps = label_smoothing,
//   loss_i = (1 - eps) * w[y] * (-lp[y]) + eps / C * sum_c w[c] * (-lp[c])   (w = 1 unweighted)
// and 0 where y == ignore_index.
// logits: [N, C] floating (any strides), target: int64 [N]. Returns the per-sample loss [N] in
// the logits' dtype. Optional outputs, device work only (no host read):
//  - *lse: the per-row log-sum-exp [N] that cross_entropy_backward reuses, in float32 (float64
//    for float64 logits) so half-precision logits lose nothing;
//  - *sample_weight: w[target_i] (1 without weights, 0 where ignored) [N] in the logits' dtype,
//    so PyTorch's "mean" reduction is sum(loss) / sum(sample_weight).
// A target outside [0, C) that is not ignore_index: the CPU throws IndexError ("cross_entropy:
// target 12 at sample 3 is out of range for 10 classes"); CUDA cannot check without a host sync,
// so that sample's loss and sample weight are NaN (and its gradient row in backward).
// Other errors: ShapeError (logits not 2-D, no classes, target or weight size), DtypeError
// (logits not floating, target not int64, weight dtype), ValueError (label_smoothing).
Tensor cross_entropy(const Tensor& logits, const Tensor& target,
                     const CrossEntropyOptions& opt = {}, Tensor* lse = nullptr,
                     Tensor* sample_weight = nullptr);

// grad_logits [N, C] (logits' dtype) of sum_i grad_loss[i] * loss_i: grad_loss is the per-sample
// upstream gradient [N] (logits' dtype; for a mean reduction, 1 / sum(sample_weight) each), lse
// what cross_entropy returned for the same logits (undefined: recomputed, one extra pass). One
// pass that never writes the probabilities to memory. Errors as cross_entropy, naming
// "cross_entropy_backward".
Tensor cross_entropy_backward(const Tensor& grad_loss, const Tensor& logits, const Tensor& target,
                              const Tensor& lse, const CrossEntropyOptions& opt = {});

// ---- fused optimizer step -------------------------------------------------------------------
enum class OptimizerKind : uint8_t { Sgd, Adam, AdamW, RMSprop };
const char* optimizer_kind_name(OptimizerKind k);  // "sgd", "adam", "adamw", "rmsprop"

struct OptimizerHyper {
  OptimizerKind kind = OptimizerKind::Sgd;
  double lr = 1e-3, weight_decay = 0.0;
  double momentum = 0.0, dampening = 0.0;  // SGD; momentum also RMSprop's
  bool nesterov = false;                   // SGD
  double beta1 = 0.9, beta2 = 0.999;       // Adam, AdamW
  double eps = 1e-8;                       // Adam, AdamW, RMSprop
  bool amsgrad = false;                    // Adam, AdamW
  double alpha = 0.99;                     // RMSprop
  bool centered = false;                   // RMSprop
  bool maximize = false;
  int64_t step = 1;  // 1-based count of this step (bias correction; SGD momentum buffer init at 1)
};

// One parameter group: entry i of every list belongs to parameter i. States have the parameter's
// shape, dtype and device, are zero-initialised by the caller and are used by kind as:
//   Sgd:        state0 = momentum buffer (only when momentum != 0)
//   Adam/AdamW: state0 = exp_avg, state1 = exp_avg_sq, state2 = max_exp_avg_sq (only amsgrad)
//   RMSprop:    state0 = square_avg, state1 = momentum buffer (momentum != 0),
//               state2 = grad_avg (centered)
// State lists the options do not use are empty.
struct ParamGroupTensors {
  std::vector<Tensor> params, grads, state0, state1, state2;
  // The device of params[0]. Throws ValueError for an empty group and DeviceError when any
  // tensor of the group is elsewhere.
  Device device() const;
};

// Updates params and states in place with exactly PyTorch's rules (torch.optim, foreach=False
// maths), including Adam's L2 weight decay (added to the gradient) versus AdamW's decoupled decay,
// SGD's dampening and Nesterov momentum, AMSGrad, and centered RMSprop.
// `grad_scale` (optional, a 0-d or one-element floating tensor on the group's device) multiplies
// every gradient first: clipping by global norm computes it on the device, so no host sync.
// CUDA: one multi-tensor kernel launch per group (pointers and sizes travel in the kernel's
// parameter struct), one more per kMaxTensorsPerLaunch parameters past that many. CPU: a loop.
// Params and states must be contiguous (they are written in place); grads may have any strides.
// Throws ValueError (list lengths, missing or unexpected states, hyper-parameters out of range:
// lr >= 0, weight_decay >= 0, momentum >= 0, 0 <= dampening <= 1, 0 <= beta1, beta2 < 1, eps > 0,
// 0 <= alpha <= 1, step >= 1, nesterov needs momentum > 0 and dampening 0), ShapeError, DtypeError
// and DeviceError naming "optimizer_step".
// Whether the update rule of `hyper` reads and writes state list `slot` (0, 1, 2; see above),
// and what that list holds ("exp_avg", "momentum buffer", ...; "" when unused).
bool optimizer_state_used(const OptimizerHyper& hyper, int slot);
const char* optimizer_state_role(const OptimizerHyper& hyper, int slot);

void optimizer_step(ParamGroupTensors& group, const OptimizerHyper& hyper,
                    const Tensor& grad_scale = {});

// The most parameters one CUDA launch of optimizer_step takes: its parameter struct stays under
// the 32764 bytes CUDA 12.1+ allows on Volta and newer (a build with an older toolkit takes
// fewer per launch, to stay under 4 KiB), so a model's group up to that size is one launch.
constexpr int64_t kMaxTensorsPerLaunch = 512;

}  // namespace nn
