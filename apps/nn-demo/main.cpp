// nn-demo: a first look at libnn_cuda. On the best device present (a GPU when there is one,
// else the CPU) it runs a matmul, a GELU and a softmax, times them, and checks each result
// against a float64 computation on the CPU path. Prints PASS or FAIL; exits 1 on FAIL.
//
//   nn-demo [--device cpu|cuda[:N]] [--size N] [--rows R] [--cols C] [--reps K]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "nn.h"

namespace {

struct Options {
  nn::Device device = nn::Device::cpu();
  int64_t size = 1024;  // matmul: [size, size] x [size, size]
  int64_t rows = 4096;  // gelu, softmax: [rows, cols]
  int64_t cols = 1024;
  int reps = 0;  // timed repetitions; 0 picks one for the device
};

// float32 results against a float64 reference: 1e-4 leaves room for a k = 4096 dot product
// summed in float32 in any order, and catches any real bug (errors of 1e-2 and up).
constexpr double kTolerance = 1e-4;

[[noreturn]] void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--device cpu|cuda[:N]] [--size N] [--rows R] [--cols C] [--reps K]\n",
               argv0);
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  Options o;
  o.device = nn::best_device();
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (i + 1 >= argc) usage(argv[0]);
    const char* value = argv[++i];
    if (arg == "--device") {
      o.device = nn::Device::parse(value);
    } else if (arg == "--size") {
      o.size = std::atoll(value);
    } else if (arg == "--rows") {
      o.rows = std::atoll(value);
    } else if (arg == "--cols") {
      o.cols = std::atoll(value);
    } else if (arg == "--reps") {
      o.reps = std::atoi(value);
    } else {
      usage(argv[0]);
    }
  }
  if (o.size <= 0 || o.rows <= 0 || o.cols <= 0 || o.reps < 0) usage(argv[0]);
  if (o.reps == 0) o.reps = o.device.is_cuda() ? 50 : 3;
  return o;
}

void synchronize(const nn::Device& device) {
  if (device.is_cuda()) nn::cuda::synchronize(device.index);
}

// Mean milliseconds per call of `run`, after one untimed warm-up call. The device is
// synchronized before the clock starts and before it stops, so queued GPU work is counted.
double time_ms(const nn::Device& device, int reps, const std::function<nn::Tensor()>& run) {
  run();
  synchronize(device);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) run();
  synchronize(device);
  std::chrono::duration<double, std::milli> elapsed = std::chrono::steady_clock::now() - start;
  return elapsed.count() / reps;
}

// max |out - ref| / max |ref|: the error relative to the result's scale, so entries near zero
// (softmax tails, GELU of negative inputs) do not blow it up.
double max_relative_error(const nn::Tensor& out, const nn::Tensor& ref) {
  std::vector<double> o = out.to(nn::Device::cpu()).to_vector<double>();
  std::vector<double> r = ref.to(nn::Device::cpu()).to_vector<double>();
  if (o.size() != r.size()) return INFINITY;
  double max_diff = 0.0;
  double max_ref = 0.0;
  for (size_t i = 0; i < o.size(); ++i) {
    if (!std::isfinite(o[i])) return INFINITY;
    max_diff = std::max(max_diff, std::fabs(o[i] - r[i]));
    max_ref = std::max(max_ref, std::fabs(r[i]));
  }
  return max_ref > 0.0 ? max_diff / max_ref : max_diff;
}

nn::Tensor cpu64(const nn::Tensor& t) { return t.to(nn::Device::cpu(), nn::Dtype::Float64); }

void print_device(const nn::Device& device) {
  std::printf("libnn_cuda demo\n");
  std::printf("  built with CUDA: %s, GPUs visible: %d\n",
              nn::cuda::built_with_cuda() ? "yes" : "no", nn::cuda::device_count());
  std::printf("  device: %s\n", device.str().c_str());
  if (device.is_cuda()) {
    nn::cuda::DeviceProperties p = nn::cuda::properties(device.index);
    std::printf("    %s, compute capability %d.%d, %d SMs, %.1f GiB\n", p.name.c_str(), p.major,
                p.minor, p.multiprocessors, double(p.total_memory) / (1024.0 * 1024.0 * 1024.0));
    std::printf("    SM clock %d MHz, memory clock %d MHz, %d-bit memory bus\n", p.clock_mhz,
                p.memory_clock_mhz, p.memory_bus_width);
  }
  std::printf("\n");
}

struct Row {
  std::string op;
  std::string shape;
  double ms = 0.0;
  double rate = 0.0;  // in `unit`
  const char* unit = "";
  double error = 0.0;
};

bool print_row(const Row& r) {
  bool pass = r.error <= kTolerance;
  std::printf("  %-8s %-28s %10.3f ms %10.1f %-7s %12.3e  %s\n", r.op.c_str(), r.shape.c_str(),
              r.ms, r.rate, r.unit, r.error, pass ? "PASS" : "FAIL");
  return pass;
}

int run(const Options& o) {
  print_device(o.device);
  const nn::TensorOptions f32{nn::Dtype::Float32, o.device};
  nn::Generator gen(2024);

  std::printf("  %-8s %-28s %13s %18s %12s  %s\n", "op", "shape", "time/iter", "rate",
              "max rel err", "check");
  bool all_pass = true;

  // Matmul: 2 m n k flops.
  {
    const int64_t n = o.size;
    nn::Tensor a = nn::randn({n, n}, f32, &gen);
    nn::Tensor b = nn::randn({n, n}, f32, &gen);
    nn::Tensor c;
    Row r{"matmul", nn::shape_str(a.shape()) + "x" + nn::shape_str(b.shape())};
    r.ms = time_ms(o.device, o.reps, [&] { return c = nn::matmul(a, b); });
    r.rate = 2.0 * double(n) * double(n) * double(n) / (r.ms * 1e6);
    r.unit = "GFLOP/s";
    r.error = max_relative_error(c, nn::matmul(cpu64(a), cpu64(b)));
    all_pass &= print_row(r);
  }

  // GELU and softmax are memory-bound: count one read and one write of every element.
  nn::Tensor x = nn::randn({o.rows, o.cols}, f32, &gen);
  const double gigabytes = 2.0 * double(x.nbytes()) * 1e-9;
  {
    nn::Tensor y;
    Row r{"gelu", nn::shape_str(x.shape())};
    r.ms = time_ms(o.device, o.reps, [&] { return y = nn::gelu(x); });
    r.rate = gigabytes / (r.ms * 1e-3);
    r.unit = "GB/s";
    r.error = max_relative_error(y, nn::gelu(cpu64(x)));
    all_pass &= print_row(r);
  }
  {
    nn::Tensor y;
    Row r{"softmax", nn::shape_str(x.shape())};
    r.ms = time_ms(o.device, o.reps, [&] { return y = nn::softmax(x, -1); });
    r.rate = gigabytes / (r.ms * 1e-3);
    r.unit = "GB/s";
    r.error = max_relative_error(y, nn::softmax(cpu64(x), -1));
    all_pass &= print_row(r);
  }

  std::printf("\n  check against the float64 CPU path (tolerance %.0e): %s\n", kTolerance,
              all_pass ? "PASS" : "FAIL");
  return all_pass ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
  } catch (const nn::Error& e) {
    std::fprintf(stderr, "nn-demo: %s\nFAIL\n", e.what());
    return 1;
  }
}
