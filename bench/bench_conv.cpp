// The conv layers of two networks through the public conv API, each pass on its own, our
// implicit-GEMM kernels against cuDNN and against the per-shape autotuned choice between them:
//   fwd         y = conv(x, w) (+ b where the layer has a bias), 2 N O Ho Wo C kH kW FLOP;
//   bwd_data    dx of conv2d_backward (need_dx only), the same FLOP count;
//   bwd_weight  dw (and db where the layer has a bias) of conv2d_backward, the same FLOP count
//               (the bias sums are not counted).
// Layers (no groups, no dilation, padding kH / 2):
//   LeNet: the convolutions of `nn-train --model cnn` (default channels): 1 -> 32 3x3 on 28x28
//          and 32 -> 64 3x3 on 14x14, each with a bias (not LeNet-5's 5x5 kernels: nn-train's
//          CNN is the one the library trains);
//   ResNet-18 on 224x224 images (no bias, as before a batch norm): the 7x7/2 stem 3 -> 64, the
//          3x3 convolutions of each stage (64 at 56, 128 at 28, 256 at 14, 512 at 7), the 3x3/2
//          convolutions that open stages 2-4 and their 1x1/2 shortcut convolutions.
// Batches 64 and 256; CUDA dtypes bfloat16 and float32 with TF32 (what PyTorch's cuDNN convolution
// does by default), backends set_conv_backend(Ours), (Cudnn) and (Auto). Timed as bench_linear:
// batches of launches between CUDA events, the median of the batches. Without a GPU the CPU path
// runs the LeNet layers in float32 so a CPU-only build exercises the same code. `--quick`
// registers a subset (batch 256; LeNet's second layer and ResNet-18's 3x3 layers of stages 1 and
// 3, the stage-3 downsampling and shortcut convolutions and the stem).
//
// Names: conv/<device>/<dtype>/<fwd|bwd_data|bwd_weight>/<ours|cudnn|auto>/<layer>/<batch>, the
// layer as <net>-<C>x<H>-<O>-k<kH>s<stride> (e.g. resnet18-64x56-128-k3s2: 64 channels of 56x56
// in, 128 out, 3x3 kernel, stride 2). bench/cnn_pytorch.py names PyTorch's rows the same way and
// bench/report.py joins them; the "FLOP" counter is the achieved rate (1.2T/s = 1.2 TFLOP/s).
#include <cmath>
#include <string>
#include <vector>

#include "bench/bench_common.h"

namespace {

struct ConvLayer {
  const char* net;
  int64_t c, hw, o, k, stride;
  bool bias;
  std::string name() const {
    return std::string(net) + "-" + std::to_string(c) + "x" + std::to_string(hw) + "-" +
           std::to_string(o) + "-k" + std::to_string(k) + "s" + std::to_string(stride);
  }
};

enum class Pass { Forward, BackwardData, BackwardWeight };

const char* pass_label(Pass p) {
  switch (p) {
    case Pass::Forward:
      return "fwd";
    case Pass::BackwardData:
      return "bwd_data";
    case Pass::BackwardWeight:
      break;
  }
  return "bwd_weight";
}

struct Config {
  nn::Device device;
  nn::Dtype dtype;
  bool tf32;
  Pass pass;
  nn::ConvBackend backend;
  ConvLayer layer;
};

using ScopedSettings =
    nn::bench::ScopedBackend<nn::ConvBackend, &nn::conv_backend, &nn::set_conv_backend>;

void bm_conv(benchmark::State& state, Config config) {
  if (!nn::bench::usable(state, config.device)) return;
  nn::bench::guarded(state, [&] {
    const ConvLayer& l = config.layer;
    const int64_t n = state.range(0);
    const nn::TensorOptions options{config.dtype, config.device};
    nn::Generator gen(5);
    nn::Conv2dOptions opt;
    opt.stride = {l.stride, l.stride};
    opt.padding = {l.k / 2, l.k / 2};
    // w ~ N(0, 1/fan_in) keeps y of order one in every dtype.
    const double fan_in = double(l.c * l.k * l.k);
    nn::Tensor x = nn::randn({n, l.c, l.hw, l.hw}, options, &gen);
    nn::Tensor w = nn::randn({l.o, l.c, l.k, l.k}, options, &gen) * (1.0 / std::sqrt(fan_in));
    nn::Tensor b = l.bias ? nn::randn({l.o}, options, &gen) : nn::Tensor();
    const int64_t out = nn::conv_out_size(l.hw, l.k, l.stride, l.k / 2, 1);
    const double flop = 2.0 * double(n) * double(l.o) * double(out * out) * fan_in;
    ScopedSettings settings(config.backend, config.tf32);
    switch (config.pass) {
      case Pass::Forward:
        nn::bench::timed_loop(state, config.device, flop, 0.0,
                              [&] { benchmark::DoNotOptimize(nn::conv2d(x, w, b, opt)); });
        return;
      case Pass::BackwardData:
      case Pass::BackwardWeight: {
        const bool data = config.pass == Pass::BackwardData;
        nn::Tensor grad_y = nn::randn({n, l.o, out, out}, options, &gen);
        nn::bench::timed_loop(state, config.device, flop, 0.0, [&] {
          nn::Conv2dGrads g = nn::conv2d_backward(grad_y, x, w, opt, /*need_dx=*/data,
                                                  /*need_dw=*/!data, /*need_db=*/!data && l.bias);
          benchmark::DoNotOptimize(g);
        });
        return;
      }
    }
  });
}

std::vector<ConvLayer> lenet_layers() {
  return {{"lenet", 1, 28, 32, 3, 1, true}, {"lenet", 32, 14, 64, 3, 1, true}};
}

std::vector<ConvLayer> resnet18_layers() {
  std::vector<ConvLayer> layers = {{"resnet18", 3, 224, 64, 7, 2, false}};
  const int64_t widths[] = {64, 128, 256, 512};
  int64_t hw = 56;
  for (int i = 0; i < 4; ++i) {
    if (i > 0) {
      layers.push_back({"resnet18", widths[i - 1], hw * 2, widths[i], 3, 2, false});
      layers.push_back({"resnet18", widths[i - 1], hw * 2, widths[i], 1, 2, false});
    }
    layers.push_back({"resnet18", widths[i], hw, widths[i], 3, 1, false});
    hw /= 2;
  }
  return layers;
}

void register_cases(bool quick) {
  struct DtypeCase {
    nn::Dtype dtype;
    bool tf32;
    const char* label;
  };
  const DtypeCase cuda_dtypes[] = {{nn::Dtype::BFloat16, false, "bfloat16"},
                                   {nn::Dtype::Float32, true, "float32_tf32"}};
  const Pass passes[] = {Pass::Forward, Pass::BackwardData, Pass::BackwardWeight};
  const nn::ConvBackend backends[] = {nn::ConvBackend::Ours, nn::ConvBackend::Cudnn,
                                      nn::ConvBackend::Auto};
  auto add = [](const Config& c, const char* dtype_label, const std::vector<int64_t>& batches) {
    const std::string name = "conv/" + c.device.str() + "/" + dtype_label + "/" +
                             pass_label(c.pass) + "/" + nn::conv_backend_name(c.backend) + "/" +
                             c.layer.name();
    auto* bench = benchmark::RegisterBenchmark(name.c_str(), bm_conv, c);
    for (int64_t batch : batches) bench->Args({batch});
    bench->UseManualTime()->Unit(benchmark::kMicrosecond);
  };
  // CPU: the library's own float32 path at the LeNet shapes (the backend switch does not apply).
  for (const ConvLayer& l : lenet_layers()) {
    for (Pass p : passes) {
      add({nn::Device::cpu(), nn::Dtype::Float32, false, p, nn::ConvBackend::Ours, l}, "float32",
          {64});
    }
  }
  std::vector<ConvLayer> layers;
  const std::vector<int64_t> batches =
      quick ? std::vector<int64_t>{256} : std::vector<int64_t>{64, 256};
  for (const ConvLayer& l : lenet_layers()) {
    if (!quick || l.c > 1) layers.push_back(l);
  }
  for (const ConvLayer& l : resnet18_layers()) {
    const bool in_quick = l.k == 7 || (l.k == 3 && l.stride == 1 && (l.o == 64 || l.o == 256)) ||
                          (l.o == 256 && l.stride == 2);
    if (!quick || in_quick) layers.push_back(l);
  }
  for (const DtypeCase& d : cuda_dtypes) {
    for (const ConvLayer& l : layers) {
      for (Pass p : passes) {
        for (nn::ConvBackend backend : backends) {
          add({nn::Device::cuda(), d.dtype, d.tf32, p, backend, l}, d.label, batches);
        }
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  return nn::bench::run_with_quick_flag(argc, argv, register_cases);
}
