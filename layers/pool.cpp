#include "layers/pool.h"

#include <sstream>

#include "core/error.h"
#include "graph/functions.h"

namespace nn {
namespace {

std::string pair_str(const std::array<int64_t, 2>& p) {
  if (p[0] == p[1]) return std::to_string(p[0]);
  return "(" + std::to_string(p[0]) + ", " + std::to_string(p[1]) + ")";
}

// Checked here so that a bad layer fails when it is built, not at its first batch.
Pool2dOptions checked(Pool2dOptions o, const char* layer) {
  for (int i = 0; i < 2; ++i) {
    NN_CHECK(o.kernel[i] >= 1, ValueError, layer, ": kernel_size must be at least 1, got ",
             pair_str(o.kernel));
    NN_CHECK(o.stride[i] >= 0, ValueError, layer,
             ": stride must be at least 1 (or 0 for the kernel size), got ", pair_str(o.stride));
    NN_CHECK(o.padding[i] >= 0 && 2 * o.padding[i] <= o.kernel[i], ValueError, layer,
             ": padding must be in [0, kernel_size / 2], got padding ", pair_str(o.padding),
             " for kernel_size ", pair_str(o.kernel));
    NN_CHECK(o.dilation[i] >= 1, ValueError, layer, ": dilation must be at least 1, got ",
             pair_str(o.dilation));
    if (o.stride[i] == 0) o.stride[i] = o.kernel[i];
  }
  return o;
}

void put_common(std::ostringstream& os, const Pool2dOptions& o) {
  os << "kernel_size=" << pair_str(o.kernel) << ", stride=" << pair_str(o.stride)
     << ", padding=" << pair_str(o.padding);
}

}  // namespace

MaxPool2d::MaxPool2d(int64_t kernel_size, int64_t stride, int64_t padding, int64_t dilation,
                     bool ceil_mode)
    : MaxPool2d(Pool2dOptions{.kernel = {kernel_size, kernel_size},
                              .stride = {stride, stride},
                              .padding = {padding, padding},
                              .dilation = {dilation, dilation},
                              .ceil_mode = ceil_mode}) {}

MaxPool2d::MaxPool2d(const Pool2dOptions& options) : opt_(checked(options, "MaxPool2d")) {}

Variable MaxPool2d::forward(const Variable& x) { return max_pool2d(x, opt_); }

std::string MaxPool2d::extra_repr() const {
  std::ostringstream os;
  put_common(os, opt_);
  os << ", dilation=" << pair_str(opt_.dilation)
     << ", ceil_mode=" << (opt_.ceil_mode ? "true" : "false");
  return os.str();
}

AvgPool2d::AvgPool2d(int64_t kernel_size, int64_t stride, int64_t padding, bool ceil_mode,
                     bool count_include_pad)
    : AvgPool2d(Pool2dOptions{.kernel = {kernel_size, kernel_size},
                              .stride = {stride, stride},
                              .padding = {padding, padding},
                              .ceil_mode = ceil_mode,
                              .count_include_pad = count_include_pad}) {}

AvgPool2d::AvgPool2d(const Pool2dOptions& options) : opt_(checked(options, "AvgPool2d")) {
  NN_CHECK(opt_.dilation[0] == 1 && opt_.dilation[1] == 1, ValueError,
           "AvgPool2d: average pooling has no dilation, got ", pair_str(opt_.dilation));
}

Variable AvgPool2d::forward(const Variable& x) { return avg_pool2d(x, opt_); }

std::string AvgPool2d::extra_repr() const {
  std::ostringstream os;
  put_common(os, opt_);
  os << ", ceil_mode=" << (opt_.ceil_mode ? "true" : "false")
     << ", count_include_pad=" << (opt_.count_include_pad ? "true" : "false");
  return os.str();
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(std::array<int64_t, 2> output_size) : out_(output_size) {
  NN_CHECK(out_[0] >= 1 && out_[1] >= 1, ValueError,
           "AdaptiveAvgPool2d: output_size must be at least 1, got ", pair_str(out_));
}

Variable AdaptiveAvgPool2d::forward(const Variable& x) { return adaptive_avg_pool2d(x, out_); }

std::string AdaptiveAvgPool2d::extra_repr() const { return "output_size=" + pair_str(out_); }

}  // namespace nn
