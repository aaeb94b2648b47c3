// Element types. float32 and float64 run everywhere; bfloat16 and float16 are storage types on
// the CPU (arithmetic converts through float32) and tensor-core types on CUDA. int64 holds
// indices (argmax, class labels) and bool holds masks (comparisons, where).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/macros.h"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace nn {

enum class Dtype : uint8_t { Float32, Float64, BFloat16, Float16, Int64, Bool };

// Bit-level float <-> half conversions, round to nearest even; usable in kernels.
namespace detail {
NN_HOST_DEVICE NN_INLINE uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
NN_HOST_DEVICE NN_INLINE float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}
NN_HOST_DEVICE NN_INLINE uint16_t float_to_bf16_bits(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
NN_HOST_DEVICE NN_INLINE float bf16_bits_to_float(uint16_t h) { return bits_float(uint32_t(h) << 16); }

NN_HOST_DEVICE NN_INLINE uint16_t float_to_f16_bits(float f) {
  uint32_t u = float_bits(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow rounds to inf
  if (a < 0x38800000u) {  // subnormal or zero in half precision
    float af = bits_float(a);
    // 2^-24 is the smallest half subnormal; scale and round to nearest even via float addition.
    float scaled = af + 0.5f;  // 0.5 = 2^-1 places the half subnormal lsb at float's lsb
    uint32_t m = float_bits(scaled) - float_bits(0.5f);
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t mant_odd = (a >> 13) & 1u;
  a += 0xc8000fffu + mant_odd;  // rebias exponent (-112 << 23) and round to nearest even
  return static_cast<uint16_t>(sign | (a >> 13));
}
NN_HOST_DEVICE NN_INLINE float f16_bits_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13));  // inf or NaN
  if (exp == 0) {                                                         // zero or subnormal
    float f = static_cast<float>(mant) * 5.9604644775390625e-8f;          // mant * 2^-24
    return sign ? -f : f;
  }
  return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}
}  // namespace detail

// 16-bit brain float: the top half of an IEEE float32.
struct bfloat16 {
  uint16_t bits = 0;
  bfloat16() = default;
  NN_HOST_DEVICE bfloat16(float f) : bits(detail::float_to_bf16_bits(f)) {}
  NN_HOST_DEVICE operator float() const { return detail::bf16_bits_to_float(bits); }
  static NN_HOST_DEVICE bfloat16 from_bits(uint16_t b) {
    bfloat16 h;
    h.bits = b;
    return h;
  }
};

// IEEE 754 binary16.
struct float16 {
  uint16_t bits = 0;
  float16() = default;
  NN_HOST_DEVICE float16(float f) : bits(detail::float_to_f16_bits(f)) {}
  NN_HOST_DEVICE operator float() const { return detail::f16_bits_to_float(bits); }
  static NN_HOST_DEVICE float16 from_bits(uint16_t b) {
    float16 h;
    h.bits = b;
    return h;
  }
};

static_assert(sizeof(bfloat16) == 2 && sizeof(float16) == 2, "half types must be 2 bytes");

template <class T>
struct DtypeOf;
template <> struct DtypeOf<float> { static constexpr Dtype value = Dtype::Float32; };
template <> struct DtypeOf<double> { static constexpr Dtype value = Dtype::Float64; };
template <> struct DtypeOf<bfloat16> { static constexpr Dtype value = Dtype::BFloat16; };
template <> struct DtypeOf<float16> { static constexpr Dtype value = Dtype::Float16; };
template <> struct DtypeOf<int64_t> { static constexpr Dtype value = Dtype::Int64; };
template <> struct DtypeOf<bool> { static constexpr Dtype value = Dtype::Bool; };
template <class T>
inline constexpr Dtype dtype_of = DtypeOf<T>::value;

// The type arithmetic on T is carried out in: float for the half types, T otherwise.
template <class T> struct AccType { using type = T; };
template <> struct AccType<bfloat16> { using type = float; };
template <> struct AccType<float16> { using type = float; };
template <> struct AccType<bool> { using type = float; };
template <class T>
using acc_t = typename AccType<T>::type;

constexpr size_t dtype_size(Dtype d) {
  switch (d) {
    case Dtype::Float32: return 4;
    case Dtype::Float64: return 8;
    case Dtype::BFloat16: return 2;
    case Dtype::Float16: return 2;
    case Dtype::Int64: return 8;
    case Dtype::Bool: return 1;
  }
  return 0;
}

constexpr const char* dtype_name(Dtype d) {
  switch (d) {
    case Dtype::Float32: return "float32";
    case Dtype::Float64: return "float64";
    case Dtype::BFloat16: return "bfloat16";
    case Dtype::Float16: return "float16";
    case Dtype::Int64: return "int64";
    case Dtype::Bool: return "bool";
  }
  return "?";
}

constexpr bool is_floating(Dtype d) {
  return d == Dtype::Float32 || d == Dtype::Float64 || d == Dtype::BFloat16 || d == Dtype::Float16;
}
constexpr bool is_half(Dtype d) { return d == Dtype::BFloat16 || d == Dtype::Float16; }

// Parses "float32", "f32", "float", "bf16", ... Throws DtypeError for an unknown name.
Dtype parse_dtype(const std::string& name);

// Calls f.template operator()<T>() with T the C++ type of d:
//   visit_floating(x.dtype(), "exp", [&]<class T>() { ... });
// visit_floating accepts the four floating dtypes and throws DtypeError naming `op` otherwise.
template <class F>
decltype(auto) visit_floating(Dtype d, const char* op, F&& f) {
  switch (d) {
    case Dtype::Float32: return f.template operator()<float>();
    case Dtype::Float64: return f.template operator()<double>();
    case Dtype::BFloat16: return f.template operator()<bfloat16>();
    case Dtype::Float16: return f.template operator()<float16>();
    default: break;
  }
  NN_THROW(DtypeError, op, ": dtype ", dtype_name(d), " is not supported, expected a floating dtype");
}

template <class F>
decltype(auto) visit_all(Dtype d, F&& f) {
  switch (d) {
    case Dtype::Float32: return f.template operator()<float>();
    case Dtype::Float64: return f.template operator()<double>();
    case Dtype::BFloat16: return f.template operator()<bfloat16>();
    case Dtype::Float16: return f.template operator()<float16>();
    case Dtype::Int64: return f.template operator()<int64_t>();
    case Dtype::Bool: return f.template operator()<bool>();
  }
  NN_THROW(DtypeError, "unknown dtype code ", int(d));
}

}  // namespace nn
