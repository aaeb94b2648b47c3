#include "core/dtype.h"

#include <algorithm>
#include <cctype>

namespace nn {

Dtype parse_dtype(const std::string& name) {
  std::string s = name;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "float32" || s == "f32" || s == "float") return Dtype::Float32;
  if (s == "float64" || s == "f64" || s == "double") return Dtype::Float64;
  if (s == "bfloat16" || s == "bf16") return Dtype::BFloat16;
  if (s == "float16" || s == "f16" || s == "half") return Dtype::Float16;
  if (s == "int64" || s == "i64" || s == "long") return Dtype::Int64;
  if (s == "bool") return Dtype::Bool;
  NN_THROW(DtypeError, "parse_dtype: unknown dtype '", name,
           "', expected one of float32, float64, bfloat16, float16, int64, bool");
}

}  // namespace nn
