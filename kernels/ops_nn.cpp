// Front end of the fused training rows (kernels/nn_ops.h): linear and its backward, cross-entropy
// forward and backward, and the optimizer step. Validation happens here, once; the backends get
// operands in the layouts their rows promise (kernels/backend.h). linear keeps for backward only
// what activation_saved(act) names (y itself, or z written by the same pass), and
// linear_backward allocates only the gradients asked for.
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>

#include "kernels/backend.h"
#include "kernels/nn_math.h"
#include "kernels/op_checks.h"

namespace nn {

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::None:
      return "none";
    case Activation::Relu:
      return "relu";
    case Activation::Gelu:
      return "gelu";
    case Activation::GeluTanh:
      return "gelu_tanh";
    case Activation::Silu:
      return "silu";
    case Activation::Tanh:
      return "tanh";
    case Activation::Sigmoid:
      return "sigmoid";
  }
  return "?";
}

Activation parse_activation(const std::string& name) {
  if (name == "identity") return Activation::None;
  for (Activation a : {Activation::None, Activation::Relu, Activation::Gelu, Activation::GeluTanh,
                       Activation::Silu, Activation::Tanh, Activation::Sigmoid})
    if (name == activation_name(a)) return a;
  NN_THROW(ValueError, "parse_activation: unknown activation \"", name,
           "\", expected none, relu, gelu, gelu_tanh, silu, tanh or sigmoid");
}

const char* optimizer_kind_name(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::Sgd:
      return "sgd";
    case OptimizerKind::Adam:
      return "adam";
    case OptimizerKind::AdamW:
      return "adamw";
    case OptimizerKind::RMSprop:
      return "rmsprop";
  }
  return "?";
}

// ---- linear ---------------------------------------------------------------------------------

const char* linear_backend_name(LinearBackend b) {
  switch (b) {
    case LinearBackend::Auto:
      return "auto";
    case LinearBackend::Cublas:
      return "cublas";
    case LinearBackend::Ours:
      return "ours";
  }
  return "?";
}

LinearBackend parse_linear_backend(const std::string& name) {
  for (LinearBackend b : {LinearBackend::Auto, LinearBackend::Cublas, LinearBackend::Ours})
    if (name == linear_backend_name(b)) return b;
  NN_THROW(ValueError, "parse_linear_backend: unknown linear backend \"", name,
           "\", expected auto, cublas or ours");
}

namespace {

std::atomic<LinearBackend>& linear_backend_state() {
  // A function-local static: initialised once, on first use, even with several threads.
  static std::atomic<LinearBackend> state{detail::backend_from_env(
      "NN_LINEAR_BACKEND", LinearBackend::Auto, &parse_linear_backend, "auto, cublas or ours")};
  return state;
}

}  // namespace

void set_linear_backend(LinearBackend b) { linear_backend_state().store(b); }

LinearBackend linear_backend() { return linear_backend_state().load(); }

namespace {

// Shapes shared by linear and linear_backward; returns the rows M of x flattened to [M, in].
int64_t check_linear_shapes(const char* op, const Tensor& x, const Tensor& w) {
  NN_CHECK(w.dim() == 2, ShapeError, op, ": weight must be 2-D [out, in], got shape ",
           shape_str(w.shape()));
  NN_CHECK(x.dim() >= 1, ShapeError, op,
           ": input must have at least one dimension (features last), got a 0-d tensor");
  NN_CHECK(x.size(-1) == w.size(1), ShapeError, op, ": input has ", x.size(-1),
           " features, weight expects ", w.size(1), " (input ", shape_str(x.shape()), ", weight ",
           shape_str(w.shape()), ")");
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < x.dim(); ++d) rows *= x.size(d);
  return rows;
}

Shape linear_out_shape(const Tensor& x, const Tensor& w) {
  Shape s = x.shape();
  s.back() = w.size(0);
  return s;
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, Activation act, Tensor* saved) {
  const char* op = "linear";
  if (saved) *saved = Tensor();
  if (b.defined())
    detail::check_inputs(op, {{"input", x}, {"weight", w}, {"bias", b}});
  else
    detail::check_inputs(op, {{"input", x}, {"weight", w}});
  detail::check_floating(op, {"input", x});
  detail::check_same_dtype(op, {"input", x}, {"weight", w});
  if (b.defined()) detail::check_same_dtype(op, {"input", x}, {"bias", b});
  const int64_t rows = check_linear_shapes(op, x, w);
  const int64_t in = w.size(1), out = w.size(0);
  NN_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == out), ShapeError, op, ": bias has shape ",
           shape_str(b.defined() ? b.shape() : Shape{}), ", expected [", out, "] for weight ",
           shape_str(w.shape()));

  const TensorOptions opts{x.dtype(), x.device()};
  const Shape out_shape = linear_out_shape(x, w);
  Tensor y = empty({rows, out}, opts);
  const ActivationSaved keep = activation_saved(act);
  // Only z costs memory: for relu, sigmoid and tanh the output is what backward reads.
  Tensor p =
      (saved && keep == ActivationSaved::PreActivation) ? empty({rows, out}, opts) : Tensor();
  if (y.numel() > 0) {
    const Tensor x2 = x.reshape({rows, in}).contiguous();
    const Tensor w2 = w.contiguous();
    const Tensor b2 = b.defined() ? b.contiguous() : Tensor();
    backend::linear(y, p, x2, w2, b2, act);
  }
  Tensor result = y.view(out_shape);
  if (saved && keep == ActivationSaved::Output) *saved = result;
  if (p.defined()) *saved = p.view(out_shape);
  return result;
}

Device LinearGrads::device() const {
  for (const Tensor* t : {&dx, &dw, &db})
    if (t->defined()) return t->device();
  return Device::cpu();
}

LinearGrads linear_backward(const Tensor& grad_y, const Tensor& x, const Tensor& w,
                            const Tensor& saved, Activation act, bool need_dx, bool need_dw,
                            bool need_db) {
  const char* op = "linear_backward";
  const bool has_act = act != Activation::None;
  if (has_act) {
    NN_CHECK(
        saved.defined(), ValueError, op, ": activation ", activation_name(act), " needs ",
        activation_saved(act) == ActivationSaved::Output ? "the output y" : "the pre-activation z",
        " that linear(..., &saved) returned, got an undefined tensor");
    detail::check_inputs(op, {{"grad_y", grad_y}, {"input", x}, {"weight", w}, {"saved", saved}});
  } else {
    detail::check_inputs(op, {{"grad_y", grad_y}, {"input", x}, {"weight", w}});
  }
  detail::check_floating(op, {"input", x});
  detail::check_same_dtype(op, {"input", x}, {"weight", w});
  detail::check_same_dtype(op, {"input", x}, {"grad_y", grad_y});
  if (has_act) detail::check_same_dtype(op, {"input", x}, {"saved", saved});
  const int64_t rows = check_linear_shapes(op, x, w);
  const int64_t in = w.size(1), out = w.size(0);
  const Shape y_shape = linear_out_shape(x, w);
  NN_CHECK(grad_y.shape() == y_shape, ShapeError, op, ": grad_y has shape ",
           shape_str(grad_y.shape()), ", expected ", shape_str(y_shape), " (input ",
           shape_str(x.shape()), ", weight ", shape_str(w.shape()), ")");
  if (has_act) detail::check_same_shape(op, {"grad_y", grad_y}, {"saved", saved});

  LinearGrads r;
  const TensorOptions opts{x.dtype(), x.device()};
  if (need_dx) r.dx = empty({rows, in}, opts);
  if (need_dw) r.dw = empty({out, in}, opts);
  if (need_db) r.db = empty({out}, opts);
  if (rows == 0 || out == 0) {  // empty sums: zero gradients, no kernel
    for (Tensor* t : {&r.dx, &r.dw, &r.db})
      if (t->defined()) fill_(*t, 0.0);
  } else {
    // The row gets only non-empty gradients (in == 0 leaves dx and dW without elements).
    LinearGrads work;
    if (in > 0) {
      work.dx = r.dx;
      work.dw = r.dw;
    }
    work.db = r.db;
    if (work.dx.defined() || work.dw.defined() || work.db.defined()) {
      const Tensor g2 = grad_y.reshape({rows, out}).contiguous();
      const Tensor s2 = has_act ? saved.reshape({rows, out}).contiguous() : Tensor();
      // x is read only for dW and w only for dx: the other is passed as is (maybe a stand-in
      // that was never materialised, see graph/functions_nn.cpp), never copied.
      const Tensor x2 = x.reshape({rows, in});
      backend::linear_backward(work, g2, work.dw.defined() ? x2.contiguous() : x2,
                               work.dx.defined() ? w.contiguous() : w, s2, act);
    }
  }
  if (r.dx.defined()) r.dx = r.dx.view(x.shape());
  return r;
}

// ---- cross-entropy --------------------------------------------------------------------------

namespace {

// The dtype lse is kept in: the arithmetic type of the logits' dtype.
Dtype lse_dtype(Dtype logits) { return logits == Dtype::Float64 ? Dtype::Float64 : Dtype::Float32; }

void check_cross_entropy(const char* op, const Tensor& logits, const Tensor& target,
                         const CrossEntropyOptions& opt) {
  const Tensor& w = opt.weight;
  if (w.defined())
    detail::check_inputs(op, {{"logits", logits}, {"target", target}, {"weight", w}});
  else
    detail::check_inputs(op, {{"logits", logits}, {"target", target}});
  detail::check_floating(op, {"logits", logits});
  NN_CHECK(logits.dim() == 2, ShapeError, op, ": logits must be 2-D [N, C], got shape ",
           shape_str(logits.shape()));
  const int64_t n = logits.size(0), c = logits.size(1);
  NN_CHECK(c >= 1, ShapeError, op, ": logits ", shape_str(logits.shape()),
           " have no classes; expected C >= 1");
  NN_CHECK(target.dtype() == Dtype::Int64, DtypeError, op, ": target is ",
           dtype_name(target.dtype()), ", expected int64 class indices");
  NN_CHECK(target.dim() == 1 && target.size(0) == n, ShapeError, op, ": target has shape ",
           shape_str(target.shape()), ", expected [", n, "] for logits ",
           shape_str(logits.shape()));
  if (w.defined()) {
    detail::check_same_dtype(op, {"logits", logits}, {"weight", w});
    NN_CHECK(w.dim() == 1 && w.size(0) == c, ShapeError, op, ": weight has shape ",
             shape_str(w.shape()), ", expected [", c, "] (one per class of logits ",
             shape_str(logits.shape()), ")");
  }
  NN_CHECK(opt.label_smoothing >= 0.0 && opt.label_smoothing < 1.0, ValueError, op,
           ": label_smoothing must be in [0, 1), got ", opt.label_smoothing);
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& opt,
                     Tensor* lse, Tensor* sample_weight) {
  const char* op = "cross_entropy";
  check_cross_entropy(op, logits, target, opt);
  const int64_t n = logits.size(0);
  const Device dev = logits.device();
  Tensor loss = empty({n}, {logits.dtype(), dev});
  Tensor l = lse ? empty({n}, {lse_dtype(logits.dtype()), dev}) : Tensor();
  Tensor sw = sample_weight ? empty({n}, {logits.dtype(), dev}) : Tensor();
  if (n > 0) {
    const Tensor weight = opt.weight.defined() ? opt.weight.contiguous() : Tensor();
    backend::cross_entropy(loss, l, sw, logits.contiguous(), target.contiguous(), weight,
                           opt.label_smoothing, opt.ignore_index);
  }
  if (lse) *lse = l;
  if (sample_weight) *sample_weight = sw;
  return loss;
}

Tensor cross_entropy_backward(const Tensor& grad_loss, const Tensor& logits, const Tensor& target,
                              const Tensor& lse, const CrossEntropyOptions& opt) {
  const char* op = "cross_entropy_backward";
  check_cross_entropy(op, logits, target, opt);
  const int64_t n = logits.size(0), c = logits.size(1);
  detail::check_inputs(op, {{"logits", logits}, {"grad_loss", grad_loss}});
  detail::check_same_dtype(op, {"logits", logits}, {"grad_loss", grad_loss});
  NN_CHECK(grad_loss.dim() == 1 && grad_loss.size(0) == n, ShapeError, op, ": grad_loss has shape ",
           shape_str(grad_loss.shape()), ", expected [", n, "] (one per sample of logits ",
           shape_str(logits.shape()), ")");
  const Dtype want_lse = lse_dtype(logits.dtype());
  if (lse.defined()) {
    detail::check_inputs(op, {{"logits", logits}, {"lse", lse}});
    NN_CHECK(lse.dtype() == want_lse, DtypeError, op, ": lse is ", dtype_name(lse.dtype()),
             ", expected ", dtype_name(want_lse), " (what cross_entropy returns for ",
             dtype_name(logits.dtype()), " logits)");
    NN_CHECK(lse.dim() == 1 && lse.size(0) == n, ShapeError, op, ": lse has shape ",
             shape_str(lse.shape()), ", expected [", n, "]");
  }
  Tensor grad = empty({n, c}, {logits.dtype(), logits.device()});
  if (n == 0) return grad;
  const Tensor lg = logits.contiguous(), tg = target.contiguous();
  const Tensor weight = opt.weight.defined() ? opt.weight.contiguous() : Tensor();
  Tensor l = lse.defined() ? lse.contiguous() : Tensor();
  if (!l.defined()) {  // recompute: one more pass over the logits
    l = empty({n}, {want_lse, logits.device()});
    Tensor loss = empty({n}, {logits.dtype(), logits.device()}), none;
    backend::cross_entropy(loss, l, none, lg, tg, weight, opt.label_smoothing, opt.ignore_index);
  }
  backend::cross_entropy_backward(grad, grad_loss.contiguous(), lg, tg, l, weight,
                                  opt.label_smoothing, opt.ignore_index);
  return grad;
}

// ---- optimizer step -------------------------------------------------------------------------

Device ParamGroupTensors::device() const {
  NN_CHECK(!params.empty(), ValueError, "optimizer_step: the parameter group is empty");
  NN_CHECK(params[0].defined(), ValueError, "optimizer_step: params[0] is an undefined tensor");
  const Device d = params[0].device();
  auto check = [&](const std::vector<Tensor>& list, const char* name) {
    for (size_t i = 0; i < list.size(); ++i)
      NN_CHECK(!list[i].defined() || list[i].device() == d, DeviceError, "optimizer_step: ", name,
               "[", i, "] is on ", list[i].device().str(), ", params[0] on ", d.str(),
               "; a parameter group lives on one device");
  };
  check(params, "params");
  check(grads, "grads");
  check(state0, "state0");
  check(state1, "state1");
  check(state2, "state2");
  return d;
}

namespace {

void check_range(bool ok, const char* what, double v, const char* expected) {
  NN_CHECK(ok, ValueError, "optimizer_step: ", what, " must be ", expected, ", got ", v);
}

void check_hyper(const OptimizerHyper& h) {
  const bool sgd = h.kind == OptimizerKind::Sgd, rms = h.kind == OptimizerKind::RMSprop;
  const bool adam = h.kind == OptimizerKind::Adam || h.kind == OptimizerKind::AdamW;
  check_range(h.lr >= 0.0 && std::isfinite(h.lr), "lr", h.lr, "finite and >= 0");
  check_range(h.weight_decay >= 0.0 && std::isfinite(h.weight_decay), "weight_decay",
              h.weight_decay, "finite and >= 0");
  NN_CHECK(h.step >= 1, ValueError, "optimizer_step: step must be >= 1 (1-based), got ", h.step);
  if (sgd || rms)
    check_range(h.momentum >= 0.0 && std::isfinite(h.momentum), "momentum", h.momentum,
                "finite and >= 0");
  if (sgd) {
    check_range(h.dampening >= 0.0 && h.dampening <= 1.0, "dampening", h.dampening, "in [0, 1]");
    NN_CHECK(!h.nesterov || (h.momentum > 0.0 && h.dampening == 0.0), ValueError,
             "optimizer_step: nesterov momentum needs momentum > 0 and dampening 0, got momentum ",
             h.momentum, " and dampening ", h.dampening);
  }
  if (adam) {
    check_range(h.beta1 >= 0.0 && h.beta1 < 1.0, "beta1", h.beta1, "in [0, 1)");
    check_range(h.beta2 >= 0.0 && h.beta2 < 1.0, "beta2", h.beta2, "in [0, 1)");
  }
  if (adam || rms) check_range(h.eps > 0.0 && std::isfinite(h.eps), "eps", h.eps, "finite and > 0");
  if (rms) check_range(h.alpha >= 0.0 && h.alpha <= 1.0, "alpha", h.alpha, "in [0, 1]");
}

// Which state lists the kind and options use, and what they hold (for messages).
struct StateUse {
  bool used[3] = {false, false, false};
  const char* role[3] = {"", "", ""};
};

StateUse state_use(const OptimizerHyper& h) {
  StateUse u;
  for (int slot = 0; slot < 3; ++slot) {
    u.used[slot] = optimizer_state_used(h, slot);
    u.role[slot] = optimizer_state_role(h, slot);
  }
  return u;
}

}  // namespace

bool optimizer_state_used(const OptimizerHyper& h, int slot) {
  switch (h.kind) {
    case OptimizerKind::Sgd:
      return slot == 0 && h.momentum != 0.0;
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW:
      return slot == 0 || slot == 1 || (slot == 2 && h.amsgrad);
    case OptimizerKind::RMSprop:
      return slot == 0 || (slot == 1 && h.momentum != 0.0) || (slot == 2 && h.centered);
  }
  return false;
}

const char* optimizer_state_role(const OptimizerHyper& h, int slot) {
  if (!optimizer_state_used(h, slot)) return "";
  static const char* const kRoles[][3] = {
      {"momentum buffer", "", ""},                     // Sgd
      {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},     // Adam
      {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},     // AdamW
      {"square_avg", "momentum buffer", "grad_avg"}};  // RMSprop
  return kRoles[int(h.kind)][slot];
}

void optimizer_step(ParamGroupTensors& group, const OptimizerHyper& hyper,
                    const Tensor& grad_scale) {
  const char* op = "optimizer_step";
  check_hyper(hyper);
  const size_t n = group.params.size();
  const char* kind = optimizer_kind_name(hyper.kind);
  NN_CHECK(group.grads.size() == n, ValueError, op, ": ", n, " params but ", group.grads.size(),
           " grads; expected one gradient per parameter");
  const StateUse use = state_use(hyper);
  const std::vector<Tensor>* states[3] = {&group.state0, &group.state1, &group.state2};
  for (int s = 0; s < 3; ++s) {
    const size_t got = states[s]->size();
    if (use.used[s])
      NN_CHECK(got == n, ValueError, op, ": ", kind, " with these options needs state", s, " (",
               use.role[s], ") for each of the ", n, " parameters, got ", got);
    else
      NN_CHECK(got == 0, ValueError, op, ": ", kind, " with these options uses no state", s,
               ", got ", got, " tensors; leave unused state lists empty");
  }
  if (n == 0) return;
  const Device dev = group.device();

  const Dtype dtype = group.params[0].dtype();
  auto check_tensor = [&](const Tensor& t, const Tensor& param, const char* name, size_t i,
                          bool written) {
    NN_CHECK(t.defined(), ValueError, op, ": ", name, "[", i, "] is an undefined tensor");
    NN_CHECK(t.dtype() == dtype, DtypeError, op, ": ", name, "[", i, "] is ", dtype_name(t.dtype()),
             ", params[0] is ", dtype_name(dtype), "; a group has one dtype");
    NN_CHECK(t.shape() == param.shape(), ShapeError, op, ": ", name, "[", i, "] has shape ",
             shape_str(t.shape()), ", its parameter ", shape_str(param.shape()));
    NN_CHECK(!written || t.is_contiguous(), ValueError, op, ": ", name, "[", i,
             "] is updated in place and must be contiguous, got strides ", shape_str(t.strides()),
             " for shape ", shape_str(t.shape()));
  };
  detail::check_floating(op, {"params[0]", group.params[0]});
  bool grads_contiguous = true;
  for (size_t i = 0; i < n; ++i) {
    const Tensor& p = group.params[i];
    check_tensor(p, p, "params", i, true);
    check_tensor(group.grads[i], p, "grads", i, false);
    grads_contiguous = grads_contiguous && group.grads[i].is_contiguous();
    for (int s = 0; s < 3; ++s) {
      static const char* kNames[3] = {"state0", "state1", "state2"};
      if (use.used[s]) check_tensor((*states[s])[i], p, kNames[s], i, true);
    }
  }

  Tensor scale;
  if (grad_scale.defined()) {
    NN_CHECK(grad_scale.device() == dev, DeviceError, op, ": grad_scale is on ",
             grad_scale.device().str(), ", the group on ", dev.str());
    detail::check_floating(op, {"grad_scale", grad_scale});
    NN_CHECK(grad_scale.numel() == 1, ShapeError, op, ": grad_scale has shape ",
             shape_str(grad_scale.shape()), ", expected one element");
    scale = grad_scale.reshape({1}).to(Dtype::Float32).contiguous();
  }

  if (grads_contiguous) {
    backend::optimizer_step(group, hyper, scale);
    return;
  }
  // Gradients are only read: a contiguous copy of the odd one serves; params and states are the
  // caller's tensors, so the update lands in place all the same.
  ParamGroupTensors packed = group;
  for (Tensor& g : packed.grads) g = g.contiguous();
  backend::optimizer_step(packed, hyper, scale);
}

}  // namespace nn
