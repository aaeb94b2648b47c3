// nn_cuda.functional: the differentiable ops of graph/functions.h (and the functional losses of
// layers/loss.h) under their PyTorch names and keywords. Long-running ops release the GIL.
#include <cmath>

#include "python/tensor_parts.h"

namespace nn::python {

namespace {

using V = const Variable&;
using Opt = std::optional<Variable>;
constexpr auto kNoGil = py::call_guard<py::gil_scoped_release>();

Variable or_undefined(const Opt& v) { return v ? *v : Variable(); }
Tensor tensor_or_undefined(const Opt& v) { return v ? v->data() : Tensor(); }

bool gelu_tanh(const std::string& approximate) {
  if (approximate == "none") return false;
  if (approximate == "tanh") return true;
  throw py::value_error("gelu: approximate must be 'none' or 'tanh', got '" + approximate + "'");
}

Conv2dOptions conv_options(const Variable& w, py::handle stride, py::handle padding,
                           py::handle dilation, int64_t groups) {
  Conv2dOptions o;
  o.stride = pair_from(stride, "conv2d: stride");
  o.dilation = pair_from(dilation, "conv2d: dilation");
  o.groups = groups;
  if (py::isinstance<py::str>(padding)) {
    std::string mode = padding.cast<std::string>();
    if (mode == "valid") {
      o.padding = {0, 0};
    } else if (mode == "same") {
      NN_CHECK(o.stride[0] == 1 && o.stride[1] == 1, ValueError,
               "conv2d: padding='same' needs stride 1, got (", o.stride[0], ", ", o.stride[1], ")");
      NN_CHECK(w.dim() == 4, ShapeError, "conv2d: weight must be 4-D, got ", shape_str(w.shape()));
      for (int i = 0; i < 2; ++i) {
        int64_t total = o.dilation[size_t(i)] * (w.size(2 + i) - 1);
        NN_CHECK(total % 2 == 0, ValueError,
                 "conv2d: padding='same' needs symmetric padding; kernel size ", w.size(2 + i),
                 " with dilation ", o.dilation[size_t(i)], " would pad unevenly");
        o.padding[size_t(i)] = total / 2;
      }
    } else {
      throw py::value_error("conv2d: padding must be an int, a pair, 'valid' or 'same', got '" +
                            mode + "'");
    }
  } else {
    o.padding = pair_from(padding, "conv2d: padding");
  }
  return o;
}

Pool2dOptions pool_options(const char* op, py::handle kernel, py::handle stride, py::handle padding,
                           py::handle dilation, bool ceil_mode) {
  Pool2dOptions o;
  std::string name(op);
  o.kernel = pair_from(kernel, (name + ": kernel_size").c_str());
  o.stride = stride.is_none() ? o.kernel : pair_from(stride, (name + ": stride").c_str());
  o.padding = pair_from(padding, (name + ": padding").c_str());
  o.dilation = pair_from(dilation, (name + ": dilation").c_str());
  o.ceil_mode = ceil_mode;
  return o;
}

Variable reduce(const Variable& loss, Reduction r) {
  switch (r) {
    case Reduction::None:
      return loss;
    case Reduction::Sum:
      return nn::sum(loss);
    case Reduction::Mean:
      break;
  }
  return nn::mean(loss);
}

}  // namespace

void bind_functional(py::module_& root) {
  py::module_ m =
      root.def_submodule("functional", "Differentiable ops under their torch.nn.functional names.");
  auto x_ = py::arg("input");

  // ---- activations and elementwise math ----
  m.def(
      "relu", [](V x) { return nn::relu(x); }, x_);
  m.def(
      "leaky_relu", [](V x, double s) { return nn::leaky_relu(x, s); }, x_,
      py::arg("negative_slope") = 0.01);
  m.def(
      "sigmoid", [](V x) { return nn::sigmoid(x); }, x_);
  m.def(
      "tanh", [](V x) { return nn::tanh(x); }, x_);
  m.def(
      "gelu", [](V x, const std::string& a) { return nn::gelu(x, gelu_tanh(a)); }, x_,
      py::kw_only(), py::arg("approximate") = "none");
  m.def(
      "silu", [](V x) { return nn::silu(x); }, x_);
  m.def(
      "softplus",
      [](V x, double beta, double threshold) { return nn::softplus(x, beta, threshold); }, x_,
      py::arg("beta") = 1.0, py::arg("threshold") = 20.0);
  m.def(
      "exp", [](V x) { return nn::exp(x); }, x_);
  m.def(
      "log", [](V x) { return nn::log(x); }, x_);
  m.def(
      "sqrt", [](V x) { return nn::sqrt(x); }, x_);
  m.def(
      "rsqrt", [](V x) { return nn::rsqrt(x); }, x_);
  m.def(
      "abs", [](V x) { return nn::abs(x); }, x_);
  m.def(
      "neg", [](V x) { return nn::neg(x); }, x_);
  m.def(
      "pow", [](V x, V e) { return nn::pow(x, e); }, x_, py::arg("exponent"));
  m.def(
      "pow", [](V x, double e) { return nn::pow(x, e); }, x_, py::arg("exponent"));
  m.def(
      "clamp",
      [](V x, std::optional<double> lo, std::optional<double> hi) {
        double inf = std::numeric_limits<double>::infinity();
        return nn::clamp(x, lo.value_or(-inf), hi.value_or(inf));
      },
      x_, py::arg("min") = py::none(), py::arg("max") = py::none());

  // ---- binary (broadcasting) ----
  m.def(
      "add", [](V a, V b) { return a + b; }, x_, py::arg("other"));
  m.def(
      "add", [](V a, double b) { return a + b; }, x_, py::arg("other"));
  m.def(
      "sub", [](V a, V b) { return a - b; }, x_, py::arg("other"));
  m.def(
      "sub", [](V a, double b) { return a - b; }, x_, py::arg("other"));
  m.def(
      "mul", [](V a, V b) { return a * b; }, x_, py::arg("other"));
  m.def(
      "mul", [](V a, double b) { return a * b; }, x_, py::arg("other"));
  m.def(
      "div", [](V a, V b) { return a / b; }, x_, py::arg("other"));
  m.def(
      "div", [](V a, double b) { return a / b; }, x_, py::arg("other"));
  m.def(
      "maximum", [](V a, V b) { return nn::maximum(a, b); }, x_, py::arg("other"));
  m.def(
      "minimum", [](V a, V b) { return nn::minimum(a, b); }, x_, py::arg("other"));
  m.def(
      "where", [](V cond, V a, V b) { return nn::where(cond.data(), a, b); }, py::arg("condition"),
      x_, py::arg("other"));

  // ---- reductions ----
  m.def(
      "sum", [](V x, py::handle dim, bool keepdim) { return nn::sum(x, dims_from(dim), keepdim); },
      x_, py::arg("dim") = py::none(), py::arg("keepdim") = false);
  m.def(
      "mean",
      [](V x, py::handle dim, bool keepdim) { return nn::mean(x, dims_from(dim), keepdim); }, x_,
      py::arg("dim") = py::none(), py::arg("keepdim") = false);
  m.def(
      "amax",
      [](V x, py::handle dim, bool keepdim) { return nn::amax(x, dims_from(dim), keepdim); }, x_,
      py::arg("dim") = py::none(), py::arg("keepdim") = false);
  m.def(
      "amin",
      [](V x, py::handle dim, bool keepdim) { return nn::amin(x, dims_from(dim), keepdim); }, x_,
      py::arg("dim") = py::none(), py::arg("keepdim") = false);
  m.def(
      "var",
      [](V x, py::handle dim, int64_t correction, bool keepdim) {
        return nn::var(x, dims_from(dim), correction, keepdim);
      },
      x_, py::arg("dim") = py::none(), py::kw_only(), py::arg("correction") = 1,
      py::arg("keepdim") = false);
  m.def(
      "max",
      [](V x, int64_t dim, bool keepdim) {
        auto [values, indices] = nn::max(x, dim, keepdim);
        return py::make_tuple(values, Variable(indices));
      },
      x_, py::arg("dim"), py::arg("keepdim") = false);
  m.def(
      "min",
      [](V x, int64_t dim, bool keepdim) {
        auto [values, indices] = nn::min(x, dim, keepdim);
        return py::make_tuple(values, Variable(indices));
      },
      x_, py::arg("dim"), py::arg("keepdim") = false);

  // ---- softmax, matmul, linear, dropout ----
  m.def(
      "softmax", [](V x, int64_t dim) { return nn::softmax(x, dim); }, x_, py::arg("dim") = -1);
  m.def(
      "log_softmax", [](V x, int64_t dim) { return nn::log_softmax(x, dim); }, x_,
      py::arg("dim") = -1);
  m.def(
      "matmul", [](V a, V b) { return nn::matmul(a, b); }, x_, py::arg("other"), kNoGil);
  m.def(
      "bmm", [](V a, V b) { return nn::bmm(a, b); }, x_, py::arg("mat2"), kNoGil);
  m.def(
      "linear", [](V x, V w, const Opt& b) { return nn::linear(x, w, or_undefined(b)); }, x_,
      py::arg("weight"), py::arg("bias") = py::none(), kNoGil);
  m.def(
      "dropout", [](V x, double p, bool training) { return nn::dropout(x, p, training); }, x_,
      py::arg("p") = 0.5, py::arg("training") = true);

  // ---- convolutional networks ----
  m.def(
      "conv2d",
      [](V x, V w, const Opt& b, py::handle stride, py::handle padding, py::handle dilation,
         int64_t groups) {
        Conv2dOptions o = conv_options(w, stride, padding, dilation, groups);
        py::gil_scoped_release release;
        return nn::conv2d(x, w, or_undefined(b), o);
      },
      x_, py::arg("weight"), py::arg("bias") = py::none(), py::arg("stride") = 1,
      py::arg("padding") = 0, py::arg("dilation") = 1, py::arg("groups") = 1);
  m.def(
      "max_pool2d",
      [](V x, py::handle kernel, py::handle stride, py::handle padding, py::handle dilation,
         bool ceil_mode, bool return_indices) -> py::object {
        Pool2dOptions o = pool_options("max_pool2d", kernel, stride, padding, dilation, ceil_mode);
        Variable y = nn::max_pool2d(x, o);
        if (!return_indices) return py::cast(y);
        Tensor indices;
        nn::max_pool2d(x.data(), o, &indices);
        return py::make_tuple(y, Variable(indices));
      },
      x_, py::arg("kernel_size"), py::arg("stride") = py::none(), py::arg("padding") = 0,
      py::arg("dilation") = 1, py::arg("ceil_mode") = false, py::arg("return_indices") = false);
  m.def(
      "avg_pool2d",
      [](V x, py::handle kernel, py::handle stride, py::handle padding, bool ceil_mode,
         bool count_include_pad, py::handle divisor_override) {
        if (!divisor_override.is_none())
          throw py::value_error("avg_pool2d: divisor_override is not supported");
        Pool2dOptions o =
            pool_options("avg_pool2d", kernel, stride, padding, py::int_(1), ceil_mode);
        o.count_include_pad = count_include_pad;
        return nn::avg_pool2d(x, o);
      },
      x_, py::arg("kernel_size"), py::arg("stride") = py::none(), py::arg("padding") = 0,
      py::arg("ceil_mode") = false, py::arg("count_include_pad") = true,
      py::arg("divisor_override") = py::none());
  m.def(
      "adaptive_avg_pool2d",
      [](V x, py::handle size) {
        std::array<int64_t, 2> out{};
        if (py::isinstance<py::tuple>(size) || py::isinstance<py::list>(size)) {
          auto seq = py::reinterpret_borrow<py::sequence>(size);
          if (seq.size() != 2)
            throw py::value_error("adaptive_avg_pool2d: output_size must be an int or a pair");
          for (size_t i = 0; i < 2; ++i)  // None keeps the input's size, as in PyTorch
            out[i] = seq[i].is_none() ? x.size(-2 + int64_t(i)) : seq[i].cast<int64_t>();
        } else {
          out = pair_from(size, "adaptive_avg_pool2d: output_size");
        }
        return nn::adaptive_avg_pool2d(x, out);
      },
      x_, py::arg("output_size"));
  m.def(
      "batch_norm",
      [](V x, const Opt& running_mean, const Opt& running_var, const Opt& weight, const Opt& bias,
         bool training, double momentum, double eps) {
        // The running statistics are updated in place: these handles share their storage.
        Tensor rm = tensor_or_undefined(running_mean), rv = tensor_or_undefined(running_var);
        return nn::batch_norm(x, or_undefined(weight), or_undefined(bias), rm, rv, training,
                              momentum, eps);
      },
      x_, py::arg("running_mean"), py::arg("running_var"), py::arg("weight") = py::none(),
      py::arg("bias") = py::none(), py::arg("training") = false, py::arg("momentum") = 0.1,
      py::arg("eps") = 1e-5);

  // ---- losses ----
  m.def(
      "cross_entropy",
      [](V input, V target, const Opt& weight, int64_t ignore_index, const std::string& reduction,
         double label_smoothing) {
        CrossEntropyOptions o;
        o.weight = tensor_or_undefined(weight);
        o.ignore_index = ignore_index;
        o.label_smoothing = label_smoothing;
        return nn::cross_entropy(input, target.data(), o, parse_reduction(reduction));
      },
      x_, py::arg("target"), py::arg("weight") = py::none(), py::arg("ignore_index") = -100,
      py::arg("reduction") = "mean", py::arg("label_smoothing") = 0.0);
  m.def(
      "mse_loss",
      [](V input, V target, const std::string& reduction) {
        return nn::mse_loss(input, target, parse_reduction(reduction));
      },
      x_, py::arg("target"), py::arg("reduction") = "mean");
  m.def(
      "l1_loss",
      [](V input, V target, const std::string& reduction) {
        return nn::l1_loss(input, target, parse_reduction(reduction));
      },
      x_, py::arg("target"), py::arg("reduction") = "mean");
  m.def(
      "binary_cross_entropy_with_logits",
      [](V input, V target, const Opt& pos_weight, const std::string& reduction,
         const Opt& weight) {
        Reduction r = parse_reduction(reduction);
        if (!weight)
          return nn::binary_cross_entropy_with_logits(input, target, r,
                                                      tensor_or_undefined(pos_weight));
        Variable loss = nn::binary_cross_entropy_with_logits(input, target, Reduction::None,
                                                             tensor_or_undefined(pos_weight));
        return reduce(loss * Variable(weight->data()), r);
      },
      x_, py::arg("target"), py::arg("pos_weight") = py::none(), py::arg("reduction") = "mean",
      py::kw_only(), py::arg("weight") = py::none());

  // ---- shapes ----
  m.def(
      "reshape", [](V x, py::handle s) { return nn::reshape(x, shape_from(s)); }, x_,
      py::arg("shape"));
  m.def(
      "view", [](V x, py::handle s) { return nn::view(x, shape_from(s)); }, x_, py::arg("shape"));
  m.def(
      "flatten", [](V x, int64_t s, int64_t e) { return nn::flatten(x, s, e); }, x_,
      py::arg("start_dim") = 0, py::arg("end_dim") = -1);
  m.def(
      "transpose", [](V x, int64_t a, int64_t b) { return nn::transpose(x, a, b); }, x_,
      py::arg("dim0"), py::arg("dim1"));
  m.def(
      "permute", [](V x, py::handle d) { return nn::permute(x, shape_from(d)); }, x_,
      py::arg("dims"));
  m.def(
      "squeeze", [](V x, int64_t d) { return nn::squeeze(x, d); }, x_, py::arg("dim"));
  m.def(
      "unsqueeze", [](V x, int64_t d) { return nn::unsqueeze(x, d); }, x_, py::arg("dim"));
  m.def(
      "expand", [](V x, py::handle s) { return nn::expand(x, shape_from(s)); }, x_,
      py::arg("size"));
  m.def(
      "narrow", [](V x, int64_t d, int64_t s, int64_t n) { return nn::narrow(x, d, s, n); }, x_,
      py::arg("dim"), py::arg("start"), py::arg("length"));
  m.def(
      "select", [](V x, int64_t d, int64_t i) { return nn::select(x, d, i); }, x_, py::arg("dim"),
      py::arg("index"));
  m.def(
      "contiguous", [](V x) { return nn::contiguous(x); }, x_);
  m.def(
      "cat", [](const std::vector<Variable>& xs, int64_t d) { return nn::cat(xs, d); },
      py::arg("tensors"), py::arg("dim") = 0);
  m.def(
      "stack", [](const std::vector<Variable>& xs, int64_t d) { return nn::stack(xs, d); },
      py::arg("tensors"), py::arg("dim") = 0);
  m.def(
      "chunk", [](V x, int64_t n, int64_t d) { return nn::chunk(x, n, d); }, x_, py::arg("chunks"),
      py::arg("dim") = 0);
  m.def(
      "split",
      &split_sizes,
      x_, py::arg("split_size_or_sections"), py::arg("dim") = 0);
}

}  // namespace nn::python
