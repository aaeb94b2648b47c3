#include "layers/conv.h"

#include <cmath>
#include <sstream>

#include "core/error.h"
#include "graph/functions.h"
#include "layers/init.h"

namespace nn {
namespace {

std::string pair_str(const std::array<int64_t, 2>& p) {
  return "(" + std::to_string(p[0]) + ", " + std::to_string(p[1]) + ")";
}

}  // namespace

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size,
               const Conv2dOptions& conv, bool bias, TensorOptions options, Generator* gen)
    : Conv2d(in_channels, out_channels, std::array<int64_t, 2>{kernel_size, kernel_size}, conv,
             bias, options, gen) {}

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel_size,
               const Conv2dOptions& conv, bool bias, TensorOptions options, Generator* gen)
    : in_channels_(in_channels), out_channels_(out_channels), kernel_(kernel_size), conv_(conv) {
  NN_CHECK(in_channels > 0 && out_channels > 0, ValueError,
           "Conv2d: in_channels and out_channels must be positive, got ", in_channels, " and ",
           out_channels);
  NN_CHECK(kernel_size[0] > 0 && kernel_size[1] > 0, ValueError,
           "Conv2d: kernel_size must be positive, got ", pair_str(kernel_size));
  NN_CHECK(conv.stride[0] >= 1 && conv.stride[1] >= 1, ValueError,
           "Conv2d: stride must be at least 1, got ", pair_str(conv.stride));
  NN_CHECK(conv.padding[0] >= 0 && conv.padding[1] >= 0, ValueError,
           "Conv2d: padding must be non-negative, got ", pair_str(conv.padding));
  NN_CHECK(conv.dilation[0] >= 1 && conv.dilation[1] >= 1, ValueError,
           "Conv2d: dilation must be at least 1, got ", pair_str(conv.dilation));
  NN_CHECK(conv.groups >= 1, ValueError, "Conv2d: groups must be at least 1, got ", conv.groups);
  NN_CHECK(in_channels % conv.groups == 0 && out_channels % conv.groups == 0, ValueError,
           "Conv2d: groups ", conv.groups, " must divide in_channels ", in_channels,
           " and out_channels ", out_channels);
  NN_CHECK(is_floating(options.dtype), DtypeError, "Conv2d: parameters must be floating, got ",
           dtype_name(options.dtype));

  Tensor w =
      empty({out_channels, in_channels / conv.groups, kernel_size[0], kernel_size[1]}, options);
  init::kaiming_uniform_(w, std::sqrt(5.0), init::FanMode::FanIn, init::Nonlinearity::LeakyRelu,
                         gen);
  weight_ = register_parameter("weight", w);
  if (bias) {
    const double bound = 1.0 / std::sqrt(double(init::fan_in_and_fan_out(w).first));
    Tensor b = empty({out_channels}, options);
    init::uniform_(b, -bound, bound, gen);
    bias_ = register_parameter("bias", b);
  }
}

Variable Conv2d::forward(const Variable& x) { return conv2d(x, weight_, bias_, conv_); }

std::string Conv2d::extra_repr() const {
  std::ostringstream os;
  os << in_channels_ << ", " << out_channels_ << ", kernel_size=" << pair_str(kernel_)
     << ", stride=" << pair_str(conv_.stride);
  if (conv_.padding != std::array<int64_t, 2>{0, 0}) os << ", padding=" << pair_str(conv_.padding);
  if (conv_.dilation != std::array<int64_t, 2>{1, 1}) {
    os << ", dilation=" << pair_str(conv_.dilation);
  }
  if (conv_.groups != 1) os << ", groups=" << conv_.groups;
  if (!bias_.defined()) os << ", bias=false";
  return os.str();
}

}  // namespace nn
