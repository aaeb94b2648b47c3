// Bandwidth of the row-wise kernels over the last axis of [rows, cols], counting the least
// traffic each needs (a fused kernel reaches it; anything more is a cost the rate shows):
//   softmax, log_softmax                    read x, write y                      2 x tensor bytes
//   softmax_backward, log_softmax_backward  read grad_y and y, write grad_x      3 x tensor bytes
//   cross_entropy                           read the logits once                 1 x tensor bytes
//   cross_entropy_backward                  read the logits, write their grad    2 x tensor bytes
// (cross-entropy's per-row terms, targets, losses and log-sum-exps, are not counted.) Shapes: the
// issue's 4096 x 1024 and 16384 x 50304 (a GPT-2 vocabulary) for every kernel, and softmax also
// at the earlier 16384 x 256, 1024 x 8192 and 256 x 32768. CUDA: float32 and bfloat16 (at
// 16384 x 50304 a float32 tensor is 3.3 GB, a few of them fit an 80 GB card); CPU: float32 at
// the small shapes only. "bytes" is the achieved rate (2.5T/s = 2.5 TB/s); bench/report.py
// divides it by the copy ceiling bench/kernels_pytorch.py measures.
// Names: <kernel>/<device>/<dtype>/<rows>/<cols>.
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_common.h"

namespace {

enum class Kernel {
  Softmax,
  LogSoftmax,
  SoftmaxBackward,
  LogSoftmaxBackward,
  CrossEntropy,
  CrossEntropyBackward
};

struct Config {
  nn::Device device;
  nn::Dtype dtype;
  Kernel kernel;
};

const char* kernel_name(Kernel k) {
  switch (k) {
    case Kernel::Softmax:
      return "softmax";
    case Kernel::LogSoftmax:
      return "log_softmax";
    case Kernel::SoftmaxBackward:
      return "softmax_backward";
    case Kernel::LogSoftmaxBackward:
      return "log_softmax_backward";
    case Kernel::CrossEntropy:
      return "cross_entropy";
    case Kernel::CrossEntropyBackward:
      break;
  }
  return "cross_entropy_backward";
}

// Class indices uniform in [0, classes), made on the device (no host loop over 16384 rows).
nn::Tensor random_targets(int64_t rows, int64_t classes, const nn::Device& device,
                          nn::Generator* gen) {
  nn::Tensor u = nn::rand({rows}, {nn::Dtype::Float32, device}, gen) * double(classes);
  return nn::clamp(u, 0.0, double(classes - 1)).to(nn::Dtype::Int64);
}

void bm_rowwise(benchmark::State& state, Config config) {
  if (!nn::bench::usable(state, config.device)) return;
  nn::bench::guarded(state, [&] {
    const int64_t rows = state.range(0);
    const int64_t cols = state.range(1);
    const nn::TensorOptions options{config.dtype, config.device};
    nn::Generator gen(2);
    nn::Tensor x = nn::randn({rows, cols}, options, &gen);
    const double tensor_bytes = double(x.nbytes());
    const nn::Device& dev = config.device;
    switch (config.kernel) {
      case Kernel::Softmax:
        nn::bench::timed_loop(state, dev, 0.0, 2.0 * tensor_bytes,
                              [&] { benchmark::DoNotOptimize(nn::softmax(x, -1)); });
        break;
      case Kernel::LogSoftmax:
        nn::bench::timed_loop(state, dev, 0.0, 2.0 * tensor_bytes,
                              [&] { benchmark::DoNotOptimize(nn::log_softmax(x, -1)); });
        break;
      case Kernel::SoftmaxBackward:
      case Kernel::LogSoftmaxBackward: {
        const bool log = config.kernel == Kernel::LogSoftmaxBackward;
        nn::Tensor y = log ? nn::log_softmax(x, -1) : nn::softmax(x, -1);
        nn::Tensor grad_y = nn::randn({rows, cols}, options, &gen);
        x = nn::Tensor();  // the backward reads y only; free x's memory for the big shapes
        nn::bench::timed_loop(state, dev, 0.0, 3.0 * tensor_bytes, [&] {
          benchmark::DoNotOptimize(log ? nn::log_softmax_backward(grad_y, y, -1)
                                       : nn::softmax_backward(grad_y, y, -1));
        });
        break;
      }
      case Kernel::CrossEntropy: {
        nn::Tensor target = random_targets(rows, cols, dev, &gen);
        nn::Tensor lse;
        nn::bench::timed_loop(state, dev, 0.0, tensor_bytes, [&] {
          benchmark::DoNotOptimize(nn::cross_entropy(x, target, {}, &lse));
        });
        break;
      }
      case Kernel::CrossEntropyBackward: {
        nn::Tensor target = random_targets(rows, cols, dev, &gen);
        nn::Tensor lse;
        benchmark::DoNotOptimize(nn::cross_entropy(x, target, {}, &lse));
        // The upstream gradient of a mean reduction: 1 / rows for every sample.
        nn::Tensor grad_loss = nn::full({rows}, 1.0 / double(rows), options);
        nn::bench::timed_loop(state, dev, 0.0, 2.0 * tensor_bytes, [&] {
          benchmark::DoNotOptimize(nn::cross_entropy_backward(grad_loss, x, target, lse));
        });
        break;
      }
    }
  });
}

}  // namespace

int main(int argc, char** argv) {
  using Shape = std::pair<int64_t, int64_t>;
  const std::vector<Shape> issue_shapes = {{4096, 1024}, {16384, 50304}};
  const std::vector<Shape> earlier_shapes = {{16384, 256}, {1024, 8192}, {256, 32768}};
  const Kernel kernels[] = {Kernel::Softmax,         Kernel::LogSoftmax,
                            Kernel::SoftmaxBackward, Kernel::LogSoftmaxBackward,
                            Kernel::CrossEntropy,    Kernel::CrossEntropyBackward};
  const Config devices[] = {
      {nn::Device::cpu(), nn::Dtype::Float32, Kernel::Softmax},
      {nn::Device::cuda(), nn::Dtype::Float32, Kernel::Softmax},
      {nn::Device::cuda(), nn::Dtype::BFloat16, Kernel::Softmax},
  };
  for (Kernel kernel : kernels) {
    for (Config c : devices) {
      c.kernel = kernel;
      std::vector<Shape> shapes;
      for (const Shape& s : issue_shapes) {
        // 16384 x 50304 on a CPU takes seconds a call and adds nothing the small shape lacks.
        if (c.device.is_cuda() || s.second < 50304) shapes.push_back(s);
      }
      if (kernel == Kernel::Softmax)
        shapes.insert(shapes.end(), earlier_shapes.begin(), earlier_shapes.end());
      const std::string name =
          std::string(kernel_name(kernel)) + "/" + c.device.str() + "/" + nn::dtype_name(c.dtype);
      auto* bench = benchmark::RegisterBenchmark(name.c_str(), bm_rowwise, c);
      for (const Shape& s : shapes) bench->Args({s.first, s.second});
      bench->UseManualTime()->Unit(benchmark::kMicrosecond);
    }
  }
  return nn::bench::run_registered(argc, argv);
}
