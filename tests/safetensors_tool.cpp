// The C++ side of the safetensors interop test (tests/safetensors_interop.py drives it):
//   nn_safetensors_tool write <path>   saves the fixed set of tensors below with nn::io
//   nn_safetensors_tool dump <path>    loads a file with nn::io and prints what it got:
//                                        meta<TAB>key<TAB>value
//                                        tensor<TAB>name<TAB>dtype<TAB>d0,d1,..<TAB>v0 v1 ...
// Values print exactly (%.17g for floats, integers as integers, bools as 0/1), so the Python
// side compares them bit for bit. Exit status 1 and a message on stderr on any error.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "core/io.h"
#include "kernels/ops.h"

namespace {

// The values both sides agree on: tensor k, element i (row-major). Quarters of small integers
// are exact in every floating dtype, bfloat16 included.
double agreed_value(int k, int64_t i) { return double((i * 7 + k * 3) % 23 - 11) / 4.0; }

nn::Tensor agreed(int k, const nn::Shape& shape, nn::Dtype dtype) {
  std::vector<double> v(size_t(nn::shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = agreed_value(k, int64_t(i));
  return nn::from_vector<double>(v, shape, {dtype});
}

// Keep in step with EXPECTED_FROM_NN in safetensors_interop.py.
void write_reference(const std::string& path) {
  using nn::Dtype;
  // Stored transposed, so that the saved view [2, 3] is not contiguous.
  nn::Tensor f32 = nn::empty({3, 2});
  f32.t().copy_(agreed(0, {2, 3}, Dtype::Float32));
  std::vector<int64_t> big = {-2'000'000'000'014, -1'000'000'000'007, 0, 1'000'000'000'007};
  nn::io::NamedTensors tensors = {
      {"f32.t", f32.t()},
      {"f64", agreed(1, {4}, Dtype::Float64)},
      {"bf16", agreed(2, {2, 2}, Dtype::BFloat16)},
      {"f16", agreed(3, {3}, Dtype::Float16)},
      {"i64", nn::from_vector<int64_t>(big, {2, 2})},
      {"bool", nn::from_vector<float>({1, 0, 0, 1, 1}, {5}).to(Dtype::Bool)},
      {"scalar", agreed(4, {}, Dtype::Float32)},
      {"empty", nn::zeros({0, 3})},
  };
  nn::io::save_safetensors(path, tensors, {{"epoch", "7"}, {"producer", "nn"}});
}

void dump(const std::string& path) {
  nn::io::SafetensorsFile f = nn::io::load_safetensors(path);
  for (const auto& [k, v] : f.metadata) std::printf("meta\t%s\t%s\n", k.c_str(), v.c_str());
  for (const auto& [name, t] : f.tensors) {
    std::string shape;
    for (int64_t d : t.shape()) shape += (shape.empty() ? "" : ",") + std::to_string(d);
    std::printf("tensor\t%s\t%s\t%s\t", name.c_str(), nn::dtype_name(t.dtype()), shape.c_str());
    if (t.dtype() == nn::Dtype::Int64 || t.dtype() == nn::Dtype::Bool) {
      for (int64_t x : t.to(nn::Dtype::Int64).to_vector<int64_t>())
        std::printf("%lld ", (long long)x);
    } else {
      for (double x : t.to_vector<double>()) std::printf("%.17g ", x);
    }
    std::printf("\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s write|dump <file.safetensors>\n", argv[0]);
    return 2;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "write") {
      write_reference(argv[2]);
    } else if (cmd == "dump") {
      dump(argv[2]);
    } else {
      std::fprintf(stderr, "unknown command '%s', expected write or dump\n", cmd.c_str());
      return 2;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
