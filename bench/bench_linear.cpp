// GEMM + bias + activation through the public linear API, forward and backward, our GEMM against
// cuBLASLt's epilogues and the per-shape autotuned choice between them:
//   forward  y = act(x w^T + b), as in training (it keeps what backward reads), 2 M N K FLOP;
//   backward dx, dw and db of linear_backward from that forward, 4 M N K FLOP (dx 2 M N K,
//            dw 2 M N K; the bias column sums and act' are not counted).
// x: [M, K], w: [N, K], b: [N]. Shapes are the squares (M = N = K = 1024 .. 8192) and MLP
// layers (batch M x 784 -> 256, 1024 -> 1024, 4096 -> 4096 for M = 128 .. 65536); CUDA dtypes
// bfloat16, float16 and float32 with TF32, activations relu and gelu (exact), backends
// set_linear_backend(Ours), (Cublas) = cuBLASLt and (Auto). The CPU runs a few small float32 cases
// so a CPU-only build exercises the same code. `--quick` registers a subset.
// Names: linear/<device>/<dtype>/<fwd|bwd>/<act>/<ours|cublaslt|auto>/<M>/<N>/<K>; the "FLOP"
// counter is the achieved rate (1.2T/s = 1.2 TFLOP/s). bench/report.py joins the backends and
// PyTorch's rows of the same case (bench/kernels_pytorch.py) into one table.
#include <cmath>
#include <string>
#include <vector>

#include "bench/bench_common.h"

namespace {

struct GemmShape {
  int64_t m, n, k;  // batch, out features, in features
};

struct Config {
  nn::Device device;
  nn::Dtype dtype;
  bool tf32;
  bool backward;
  nn::Activation act;
  nn::LinearBackend backend;
};

const char* backend_label(nn::LinearBackend b) {
  switch (b) {
    case nn::LinearBackend::Ours:
      return "ours";
    case nn::LinearBackend::Cublas:
      return "cublaslt";  // LinearBackend::Cublas is cuBLASLt with its fused epilogues
    case nn::LinearBackend::Auto:
      break;
  }
  return "auto";
}

using ScopedSettings =
    nn::bench::ScopedBackend<nn::LinearBackend, &nn::linear_backend, &nn::set_linear_backend>;

void bm_linear(benchmark::State& state, Config config) {
  if (!nn::bench::usable(state, config.device)) return;
  nn::bench::guarded(state, [&] {
    const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
    const nn::TensorOptions options{config.dtype, config.device};
    nn::Generator gen(3);
    // w ~ N(0, 1/K) keeps x w^T of order one, so float16 never overflows at K = 8192.
    nn::Tensor x = nn::randn({m, k}, options, &gen);
    nn::Tensor w = nn::randn({n, k}, options, &gen) * (1.0 / std::sqrt(double(k)));
    nn::Tensor b = nn::randn({n}, options, &gen);
    ScopedSettings settings(config.backend, config.tf32);
    const double mnk = double(m) * double(n) * double(k);
    nn::Tensor saved;
    if (!config.backward) {
      nn::bench::timed_loop(state, config.device, 2.0 * mnk, 0.0, [&] {
        benchmark::DoNotOptimize(nn::linear(x, w, b, config.act, &saved));
      });
      return;
    }
    nn::Tensor y = nn::linear(x, w, b, config.act, &saved);
    nn::Tensor grad_y = nn::randn({m, n}, options, &gen);
    nn::bench::timed_loop(state, config.device, 4.0 * mnk, 0.0, [&] {
      nn::LinearGrads g = nn::linear_backward(grad_y, x, w, saved, config.act, /*need_dx=*/true,
                                              /*need_dw=*/true, /*need_db=*/true);
      benchmark::DoNotOptimize(g);
    });
  });
}

// The shapes, without repeats (M = N = K = 1024 is both a square and an MLP layer).
std::vector<GemmShape> cuda_shapes(bool quick) {
  if (quick) return {{1024, 1024, 1024}, {4096, 4096, 4096}, {1024, 256, 784}, {8192, 4096, 4096}};
  std::vector<GemmShape> shapes;
  for (int64_t s : {1024, 2048, 4096, 8192}) shapes.push_back({s, s, s});
  const GemmShape layers[] = {{0, 256, 784}, {0, 1024, 1024}, {0, 4096, 4096}};
  for (int64_t batch : {128, 1024, 8192, 65536}) {
    for (const GemmShape& l : layers) {
      const GemmShape s{batch, l.n, l.k};
      bool seen = false;
      for (const GemmShape& t : shapes) seen = seen || (t.m == s.m && t.n == s.n && t.k == s.k);
      if (!seen) shapes.push_back(s);
    }
  }
  return shapes;
}

void register_cases(bool quick) {
  struct DtypeCase {
    nn::Dtype dtype;
    bool tf32;
    const char* label;
  };
  const DtypeCase cuda_dtypes[] = {{nn::Dtype::BFloat16, false, "bfloat16"},
                                   {nn::Dtype::Float16, false, "float16"},
                                   {nn::Dtype::Float32, true, "float32_tf32"}};
  const nn::Activation acts[] = {nn::Activation::Relu, nn::Activation::Gelu};
  const nn::LinearBackend backends[] = {nn::LinearBackend::Ours, nn::LinearBackend::Cublas,
                                        nn::LinearBackend::Auto};
  auto add = [](const Config& c, const char* dtype_label, const std::vector<GemmShape>& shapes) {
    const std::string name = "linear/" + c.device.str() + "/" + dtype_label + "/" +
                             (c.backward ? "bwd" : "fwd") + "/" + nn::activation_name(c.act) + "/" +
                             backend_label(c.backend);
    auto* bench = benchmark::RegisterBenchmark(name.c_str(), bm_linear, c);
    for (const GemmShape& s : shapes) bench->Args({s.m, s.n, s.k});
    bench->UseManualTime()->Unit(benchmark::kMicrosecond);
  };
  // CPU: the library's own float32 path (the backend switch does not apply there).
  const std::vector<GemmShape> cpu_shapes = {{128, 256, 784}, {128, 1024, 1024}};
  for (bool backward : {false, true}) {
    for (nn::Activation act : acts) {
      add({nn::Device::cpu(), nn::Dtype::Float32, false, backward, act, nn::LinearBackend::Ours},
          "float32", cpu_shapes);
    }
  }
  const std::vector<GemmShape> shapes = cuda_shapes(quick);
  for (const DtypeCase& d : cuda_dtypes) {
    for (bool backward : {false, true}) {
      for (nn::Activation act : acts) {
        for (nn::LinearBackend backend : backends) {
          add({nn::Device::cuda(), d.dtype, d.tf32, backward, act, backend}, d.label, shapes);
        }
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  return nn::bench::run_with_quick_flag(argc, argv, register_cases);
}
