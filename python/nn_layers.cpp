// nn_cuda.nn layers and losses: the C++ layers under PyTorch's constructor signatures, keyword
// names and attribute names. Every class derives from nn_cuda.nn.Module (nn.cpp).
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "python/bind.h"

namespace nn::python {

namespace {

using OptDevice = std::optional<DeviceArg>;
using OptDtype = std::optional<DtypeArg>;

TensorOptions options_of(const OptDevice& device, const OptDtype& dtype) {
  TensorOptions o;
  if (device) o.device = device->value;
  if (dtype) o.dtype = dtype->value;
  return o;
}

py::object var_or_none(const Variable& v) { return v.defined() ? py::cast(v) : py::none(); }
py::object buffer_or_none(const Tensor& t) {
  return t.defined() ? py::cast(variable_of(t)) : py::none();
}
py::tuple pair_tuple(const std::array<int64_t, 2>& p) { return py::make_tuple(p[0], p[1]); }

Activation activation_from(py::handle a) {
  if (a.is_none()) return Activation::None;
  return parse_activation(a.cast<std::string>());
}

Tensor optional_tensor(const std::optional<Variable>& v) { return v ? v->data() : Tensor(); }

template <class M>
using Layer = py::class_<M, Module, std::shared_ptr<M>>;

void bind_linear_conv(py::module_& nn) {
  Layer<Linear>(nn, "Linear",
                "y = x W^T + b (weight [out_features, in_features]), optionally "
                "with a fused activation ('relu', 'gelu', 'gelu_tanh', 'silu', "
                "'tanh', 'sigmoid').")
      .def(py::init([](int64_t in, int64_t out, bool bias, py::object activation, OptDevice device,
                       OptDtype dtype) {
             return std::make_shared<Linear>(in, out, bias, activation_from(activation),
                                             options_of(device, dtype));
           }),
           py::arg("in_features"), py::arg("out_features"), py::arg("bias") = true,
           py::arg("activation") = py::none(), py::kw_only(), py::arg("device") = py::none(),
           py::arg("dtype") = py::none())
      .def_property_readonly("weight", [](Linear& l) { return l.weight(); })
      .def_property_readonly("bias", [](Linear& l) { return var_or_none(l.bias()); })
      .def_property_readonly("in_features", &Linear::in_features)
      .def_property_readonly("out_features", &Linear::out_features)
      .def_property_readonly("activation", [](const Linear& l) -> py::object {
        if (l.activation() == Activation::None) return py::none();
        return py::str(activation_name(l.activation()));
      });

  Layer<Conv2d>(nn, "Conv2d", "2-d convolution over NCHW tensors (torch.nn.Conv2d, zero padding)")
      .def(py::init([](int64_t in, int64_t out, py::handle kernel, py::handle stride,
                       py::handle padding, py::handle dilation, int64_t groups, bool bias,
                       const std::string& padding_mode, OptDevice device, OptDtype dtype) {
             NN_CHECK(padding_mode == "zeros", ValueError, "Conv2d: padding_mode '", padding_mode,
                      "' is not supported, expected 'zeros'");
             Conv2dOptions conv;
             conv.stride = pair_from(stride, "stride");
             conv.padding = pair_from(padding, "padding");
             conv.dilation = pair_from(dilation, "dilation");
             conv.groups = groups;
             return std::make_shared<Conv2d>(in, out, pair_from(kernel, "kernel_size"), conv, bias,
                                             options_of(device, dtype));
           }),
           py::arg("in_channels"), py::arg("out_channels"), py::arg("kernel_size"),
           py::arg("stride") = 1, py::arg("padding") = 0, py::arg("dilation") = 1,
           py::arg("groups") = 1, py::arg("bias") = true, py::arg("padding_mode") = "zeros",
           py::kw_only(), py::arg("device") = py::none(), py::arg("dtype") = py::none())
      .def_property_readonly("weight", [](Conv2d& c) { return c.weight(); })
      .def_property_readonly("bias", [](Conv2d& c) { return var_or_none(c.bias()); })
      .def_property_readonly("in_channels", &Conv2d::in_channels)
      .def_property_readonly("out_channels", &Conv2d::out_channels)
      .def_property_readonly("kernel_size",
                             [](const Conv2d& c) { return pair_tuple(c.kernel_size()); })
      .def_property_readonly("stride",
                             [](const Conv2d& c) { return pair_tuple(c.options().stride); })
      .def_property_readonly("padding",
                             [](const Conv2d& c) { return pair_tuple(c.options().padding); })
      .def_property_readonly("dilation",
                             [](const Conv2d& c) { return pair_tuple(c.options().dilation); })
      .def_property_readonly("groups", [](const Conv2d& c) { return c.options().groups; });
}

template <class P>
void pool_properties(Layer<P>& cls) {
  cls.def_property_readonly("kernel_size",
                            [](const P& p) { return pair_tuple(p.options().kernel); })
      .def_property_readonly("stride",
                             [](const P& p) {
                               auto s = p.options().stride;
                               if (s[0] == 0) s[0] = p.options().kernel[0];
                               if (s[1] == 0) s[1] = p.options().kernel[1];
                               return pair_tuple(s);
                             })
      .def_property_readonly("padding", [](const P& p) { return pair_tuple(p.options().padding); })
      .def_property_readonly("ceil_mode", [](const P& p) { return p.options().ceil_mode; });
}

void bind_pooling(py::module_& nn) {
  Layer<MaxPool2d> maxpool(nn, "MaxPool2d",
                           "Max pooling over NCHW tensors (stride defaults to "
                           "the kernel size; padding pads with -inf)");
  maxpool
      .def(py::init([](py::handle kernel, py::handle stride, py::handle padding,
                       py::handle dilation, bool return_indices, bool ceil_mode) {
             NN_CHECK(!return_indices, ValueError,
                      "MaxPool2d: return_indices=True is not supported by the module, use "
                      "nn_cuda.functional.max_pool2d(..., return_indices=True)");
             Pool2dOptions o;
             o.kernel = pair_from(kernel, "kernel_size");
             o.stride =
                 stride.is_none() ? std::array<int64_t, 2>{0, 0} : pair_from(stride, "stride");
             o.padding = pair_from(padding, "padding");
             o.dilation = pair_from(dilation, "dilation");
             o.ceil_mode = ceil_mode;
             return std::make_shared<MaxPool2d>(o);
           }),
           py::arg("kernel_size"), py::arg("stride") = py::none(), py::arg("padding") = 0,
           py::arg("dilation") = 1, py::arg("return_indices") = false, py::arg("ceil_mode") = false)
      .def_property_readonly("dilation",
                             [](const MaxPool2d& p) { return pair_tuple(p.options().dilation); });
  pool_properties(maxpool);

  Layer<AvgPool2d> avgpool(nn, "AvgPool2d", "Average pooling over NCHW tensors");
  avgpool
      .def(py::init([](py::handle kernel, py::handle stride, py::handle padding, bool ceil_mode,
                       bool count_include_pad, py::handle divisor_override) {
             NN_CHECK(divisor_override.is_none(), ValueError,
                      "AvgPool2d: divisor_override is not supported, expected None");
             Pool2dOptions o;
             o.kernel = pair_from(kernel, "kernel_size");
             o.stride =
                 stride.is_none() ? std::array<int64_t, 2>{0, 0} : pair_from(stride, "stride");
             o.padding = pair_from(padding, "padding");
             o.ceil_mode = ceil_mode;
             o.count_include_pad = count_include_pad;
             return std::make_shared<AvgPool2d>(o);
           }),
           py::arg("kernel_size"), py::arg("stride") = py::none(), py::arg("padding") = 0,
           py::arg("ceil_mode") = false, py::arg("count_include_pad") = true,
           py::arg("divisor_override") = py::none())
      .def_property_readonly("count_include_pad",
                             [](const AvgPool2d& p) { return p.options().count_include_pad; });
  pool_properties(avgpool);

  Layer<AdaptiveAvgPool2d>(nn, "AdaptiveAvgPool2d", "Averages each plane down to output_size")
      .def(py::init([](py::handle output_size) {
             return std::make_shared<AdaptiveAvgPool2d>(pair_from(output_size, "output_size"));
           }),
           py::arg("output_size"))
      .def_property_readonly(
          "output_size", [](const AdaptiveAvgPool2d& p) { return pair_tuple(p.output_size()); });
}

template <class BN>
void bind_batchnorm_class(py::module_& nn, const char* name) {
  py::class_<BN, BatchNorm, std::shared_ptr<BN>>(nn, name).def(
      py::init([](int64_t num_features, double eps, py::handle momentum, bool affine,
                  bool track_running_stats, OptDevice device, OptDtype dtype) {
        NN_CHECK(!momentum.is_none(), ValueError,
                 "BatchNorm: momentum=None (cumulative average) is not supported, expected a "
                 "number in [0, 1]");
        BatchNormOptions bn;
        bn.eps = eps;
        bn.momentum = momentum.cast<double>();
        bn.affine = affine;
        bn.track_running_stats = track_running_stats;
        return std::make_shared<BN>(num_features, bn, options_of(device, dtype));
      }),
      py::arg("num_features"), py::arg("eps") = 1e-5, py::arg("momentum") = 0.1,
      py::arg("affine") = true, py::arg("track_running_stats") = true, py::kw_only(),
      py::arg("device") = py::none(), py::arg("dtype") = py::none());
}

void bind_batchnorm(py::module_& nn) {
  py::class_<BatchNorm, Module, std::shared_ptr<BatchNorm>>(nn, "_BatchNorm",
                                                            "The shared base of BatchNorm1d/2d")
      .def_property_readonly("weight", [](BatchNorm& b) { return var_or_none(b.weight()); })
      .def_property_readonly("bias", [](BatchNorm& b) { return var_or_none(b.bias()); })
      .def_property_readonly("running_mean",
                             [](BatchNorm& b) { return buffer_or_none(b.running_mean()); })
      .def_property_readonly("running_var",
                             [](BatchNorm& b) { return buffer_or_none(b.running_var()); })
      .def_property_readonly("num_batches_tracked",
                             [](BatchNorm& b) { return buffer_or_none(b.num_batches_tracked()); })
      .def_property_readonly("num_features", &BatchNorm::num_features)
      .def_property_readonly("eps", [](const BatchNorm& b) { return b.options().eps; })
      .def_property_readonly("momentum", [](const BatchNorm& b) { return b.options().momentum; })
      .def_property_readonly("affine", [](const BatchNorm& b) { return b.options().affine; })
      .def_property_readonly("track_running_stats",
                             [](const BatchNorm& b) { return b.options().track_running_stats; })
      .def("reset_running_stats", &BatchNorm::reset_running_stats);
  bind_batchnorm_class<BatchNorm1d>(nn, "BatchNorm1d");
  bind_batchnorm_class<BatchNorm2d>(nn, "BatchNorm2d");
}

void bind_simple_layers(py::module_& nn) {
  Layer<Dropout>(nn, "Dropout",
                 "Inverted dropout: zeroes with probability p and scales the rest "
                 "by 1/(1-p) in training; the identity in eval mode")
      .def(py::init([](double p, bool /*inplace*/, std::optional<uint64_t> seed) {
             return std::make_shared<Dropout>(p, seed);
           }),
           py::arg("p") = 0.5, py::arg("inplace") = false, py::kw_only(),
           py::arg("seed") = py::none())
      .def_property_readonly("p", &Dropout::p)
      .def(
          "manual_seed", [](Dropout& d, uint64_t seed) { d.generator().manual_seed(seed); },
          py::arg("seed"), "Reseeds the mask generator (replays the same sequence of masks)");

  Layer<Flatten>(nn, "Flatten")
      .def(py::init<int64_t, int64_t>(), py::arg("start_dim") = 1, py::arg("end_dim") = -1);

  Layer<ReLU>(nn, "ReLU")
      .def(py::init([](bool /*inplace*/) { return std::make_shared<ReLU>(); }),
           py::arg("inplace") = false);
  Layer<LeakyReLU>(nn, "LeakyReLU")
      .def(py::init(
               [](double slope, bool /*inplace*/) { return std::make_shared<LeakyReLU>(slope); }),
           py::arg("negative_slope") = 0.01, py::arg("inplace") = false)
      .def_property_readonly("negative_slope", &LeakyReLU::negative_slope);
  Layer<Sigmoid>(nn, "Sigmoid").def(py::init<>());
  Layer<Tanh>(nn, "Tanh").def(py::init<>());
  Layer<GELU>(nn, "GELU").def(py::init<const std::string&>(), py::arg("approximate") = "none");
  Layer<SiLU>(nn, "SiLU")
      .def(py::init([](bool /*inplace*/) { return std::make_shared<SiLU>(); }),
           py::arg("inplace") = false);
  Layer<Softplus>(nn, "Softplus")
      .def(py::init<double, double>(), py::arg("beta") = 1.0, py::arg("threshold") = 20.0);
  Layer<Identity>(nn, "Identity").def(py::init([](const py::args&, const py::kwargs&) {
    return std::make_shared<Identity>();
  }));

  Layer<ResidualBlock>(nn, "ResidualBlock",
                       "ResNet basic block laid out as torchvision's BasicBlock: conv1, bn1, "
                       "conv2, bn2 and an optional downsample (1x1 conv + batch norm)")
      .def(py::init([](int64_t in, int64_t out, int64_t stride, OptDevice device, OptDtype dtype) {
             return std::make_shared<ResidualBlock>(in, out, stride, options_of(device, dtype));
           }),
           py::arg("in_channels"), py::arg("out_channels"), py::arg("stride") = 1, py::kw_only(),
           py::arg("device") = py::none(), py::arg("dtype") = py::none())
      .def_property_readonly("conv1", &ResidualBlock::conv1)
      .def_property_readonly("bn1", &ResidualBlock::bn1)
      .def_property_readonly("conv2", &ResidualBlock::conv2)
      .def_property_readonly("bn2", &ResidualBlock::bn2)
      .def_property_readonly("downsample", [](const ResidualBlock& r) -> py::object {
        return r.downsample() ? py::cast(r.downsample()) : py::none();
      });
}

void bind_losses(py::module_& nn) {
  Layer<MSELoss>(nn, "MSELoss",
                 "mean/sum/none of (input - target)^2; called as loss(input, target)")
      .def(py::init([](const std::string& reduction) {
             return std::make_shared<MSELoss>(parse_reduction(reduction));
           }),
           py::kw_only(), py::arg("reduction") = "mean")
      .def(
          "forward",
          [](MSELoss& l, const Variable& input, const Variable& target) {
            return l.forward(input, target);
          },
          py::arg("input"), py::arg("target"));

  Layer<L1Loss>(nn, "L1Loss", "mean/sum/none of |input - target|")
      .def(py::init([](const std::string& reduction) {
             return std::make_shared<L1Loss>(parse_reduction(reduction));
           }),
           py::kw_only(), py::arg("reduction") = "mean")
      .def(
          "forward",
          [](L1Loss& l, const Variable& input, const Variable& target) {
            return l.forward(input, target);
          },
          py::arg("input"), py::arg("target"));

  Layer<CrossEntropyLoss>(nn, "CrossEntropyLoss",
                          "Cross-entropy of logits [N, C] against int64 class targets [N]")
      .def(py::init([](std::optional<Variable> weight, int64_t ignore_index,
                       const std::string& reduction, double label_smoothing) {
             return std::make_shared<CrossEntropyLoss>(optional_tensor(weight), label_smoothing,
                                                       ignore_index, parse_reduction(reduction));
           }),
           py::arg("weight") = py::none(), py::kw_only(), py::arg("ignore_index") = -100,
           py::arg("reduction") = "mean", py::arg("label_smoothing") = 0.0)
      .def(
          "forward",
          [](CrossEntropyLoss& l, const Variable& input, const Variable& target) {
            return l.forward(input, target.data());
          },
          py::arg("input"), py::arg("target"));

  Layer<BCEWithLogitsLoss>(nn, "BCEWithLogitsLoss",
                           "Binary cross-entropy of logits, with an optional pos_weight")
      .def(py::init([](std::optional<Variable> weight, const std::string& reduction,
                       std::optional<Variable> pos_weight) {
             NN_CHECK(!weight, ValueError,
                      "BCEWithLogitsLoss: a per-element weight is not supported, expected None "
                      "(pos_weight is)");
             return std::make_shared<BCEWithLogitsLoss>(optional_tensor(pos_weight),
                                                        parse_reduction(reduction));
           }),
           py::arg("weight") = py::none(), py::kw_only(), py::arg("reduction") = "mean",
           py::arg("pos_weight") = py::none())
      .def(
          "forward",
          [](BCEWithLogitsLoss& l, const Variable& input, const Variable& target) {
            return l.forward(input, target);
          },
          py::arg("input"), py::arg("target"));
}

}  // namespace

void bind_nn_layers(py::module_& nn) {
  bind_linear_conv(nn);
  bind_pooling(nn);
  bind_batchnorm(nn);
  bind_simple_layers(nn);
  bind_losses(nn);
}

}  // namespace nn::python
