// Softmax bandwidth over the last axis of [rows, cols], counting one read and one write of every
// element (the minimum traffic; a fused kernel reaches it). CPU: float32; CUDA: float32 and
// bfloat16, skipped with a reason where no GPU is present. "bytes" is the achieved rate
// (e.g. 2.5T/s = 2.5 TB/s; the H100's copy ceiling is about 3.0 TB/s).
#include <string>

#include "bench/bench_common.h"

namespace {

struct Config {
  nn::Device device;
  nn::Dtype dtype;
};

void bm_softmax(benchmark::State& state, Config config) {
  if (!nn::bench::usable(state, config.device)) return;
  nn::bench::guarded(state, [&] {
    const int64_t rows = state.range(0);
    const int64_t cols = state.range(1);
    nn::Generator gen(2);
    nn::Tensor x = nn::randn({rows, cols}, {config.dtype, config.device}, &gen);
    nn::bench::timed_loop(state, config.device, 0.0, 2.0 * double(x.nbytes()),
                          [&] { benchmark::DoNotOptimize(nn::softmax(x, -1)); });
  });
}

}  // namespace

int main(int argc, char** argv) {
  const Config configs[] = {
      {nn::Device::cpu(), nn::Dtype::Float32},
      {nn::Device::cuda(), nn::Dtype::Float32},
      {nn::Device::cuda(), nn::Dtype::BFloat16},
  };
  for (const Config& c : configs) {
    std::string name = "softmax/" + c.device.str() + "/" + nn::dtype_name(c.dtype);
    benchmark::RegisterBenchmark(name.c_str(), bm_softmax, c)
        ->Args({4096, 1024})
        ->Args({16384, 256})
        ->Args({1024, 8192})
        ->Args({256, 32768})
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  }
  return nn::bench::run_registered(argc, argv);
}
