// Matmul throughput: C[n, n] = A[n, n] B[n, n] for n = 256 .. 2048, counting 2 n^3 FLOP.
// CPU: float32 and float64 (BLAS). CUDA: float32 (with and without TF32) and bfloat16 (tensor
// cores, float32 accumulation); skipped with a reason where no GPU is present.
// The "FLOP" counter is the achieved rate (e.g. 1.2T/s = 1.2 TFLOP/s).
#include <string>

#include "bench/bench_common.h"

namespace {

struct Config {
  nn::Device device;
  nn::Dtype dtype;
  bool tf32;
};

void bm_matmul(benchmark::State& state, Config config) {
  if (!nn::bench::usable(state, config.device)) return;
  nn::bench::guarded(state, [&] {
    const int64_t n = state.range(0);
    const nn::TensorOptions options{config.dtype, config.device};
    nn::Generator gen(1);
    nn::Tensor a = nn::randn({n, n}, options, &gen);
    nn::Tensor b = nn::randn({n, n}, options, &gen);
    const bool previous_tf32 = nn::allow_tf32();
    nn::set_allow_tf32(config.tf32);
    nn::bench::timed_loop(state, config.device, 2.0 * double(n) * double(n) * double(n), 0.0,
                          [&] { benchmark::DoNotOptimize(nn::matmul(a, b)); });
    nn::set_allow_tf32(previous_tf32);
  });
}

}  // namespace

int main(int argc, char** argv) {
  const Config configs[] = {
      {nn::Device::cpu(), nn::Dtype::Float32, false},
      {nn::Device::cpu(), nn::Dtype::Float64, false},
      {nn::Device::cuda(), nn::Dtype::Float32, false},
      {nn::Device::cuda(), nn::Dtype::Float32, true},
      {nn::Device::cuda(), nn::Dtype::BFloat16, false},
  };
  for (const Config& c : configs) {
    std::string name =
        "matmul/" + c.device.str() + "/" + nn::dtype_name(c.dtype) + (c.tf32 ? "_tf32" : "");
    benchmark::RegisterBenchmark(name.c_str(), bm_matmul, c)
        ->RangeMultiplier(2)
        ->Range(256, 2048)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  }
  return nn::bench::run_registered(argc, argv);
}
