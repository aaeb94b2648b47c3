// Counter-based random numbers (Philox 4x32-10, Salmon et al., SC'11). A draw is a pure
// function of (seed, offset, element index), so the CPU and CUDA paths produce the same numbers
// for the same seed and offset, in any order and any number of threads.
//
// Element i of a fill uses the counter (lo32(i), hi32(i), lo32(offset), hi32(offset)) and the
// key (lo32(seed), hi32(seed)); each fill advances the generator's offset by one.
#pragma once

#include <cmath>
#include <cstdint>
#include <mutex>

#include "core/macros.h"

namespace nn {

struct Philox4x32 {
  uint32_t v[4];
};

NN_HOST_DEVICE NN_INLINE Philox4x32 philox4x32_10(uint64_t seed, uint64_t offset, uint64_t index) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  uint32_t c0 = uint32_t(index), c1 = uint32_t(index >> 32);
  uint32_t c2 = uint32_t(offset), c3 = uint32_t(offset >> 32);
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t(kMul0) * c0;
    uint64_t p1 = uint64_t(kMul1) * c2;
    uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0;
    uint32_t n1 = uint32_t(p1);
    uint32_t n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
    uint32_t n3 = uint32_t(p0);
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return {{c0, c1, c2, c3}};
}

// Uniform in (0, 1]: never 0, so log() in Box-Muller is finite.
NN_HOST_DEVICE NN_INLINE float uint_to_unit_float(uint32_t x) {
  return (float(x >> 8) + 1.0f) * (1.0f / 16777216.0f);
}
NN_HOST_DEVICE NN_INLINE double uints_to_unit_double(uint32_t hi, uint32_t lo) {
  uint64_t bits53 = ((uint64_t(hi) << 32) | lo) >> 11;
  return (double(bits53) + 1.0) * (1.0 / 9007199254740992.0);
}

// The i-th uniform (0, 1] draw of a fill, in float or double precision.
template <class T>
NN_HOST_DEVICE NN_INLINE T philox_uniform(uint64_t seed, uint64_t offset, uint64_t i) {
  Philox4x32 r = philox4x32_10(seed, offset, i);
  if constexpr (sizeof(T) == 8) {
    return uints_to_unit_double(r.v[0], r.v[1]);
  } else {
    return uint_to_unit_float(r.v[0]);
  }
}

// The i-th standard normal draw of a fill (Box-Muller on two uniforms of the same counter).
template <class T>
NN_HOST_DEVICE NN_INLINE T philox_normal(uint64_t seed, uint64_t offset, uint64_t i) {
  Philox4x32 r = philox4x32_10(seed, offset, i);
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  if constexpr (sizeof(T) == 8) {
    double u1 = uints_to_unit_double(r.v[0], r.v[1]);
    double u2 = uints_to_unit_double(r.v[2], r.v[3]);
    return sqrt(-2.0 * log(u1)) * cos(kTwoPi * u2);
  } else {
    float u1 = uint_to_unit_float(r.v[0]);
    float u2 = uint_to_unit_float(r.v[1]);
    return sqrtf(-2.0f * logf(u1)) * cosf(float(kTwoPi) * u2);
  }
}

// A seed and a running offset. Each fill takes the current offset and advances it by one.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) : seed_(seed) {}
  void manual_seed(uint64_t seed) {
    std::lock_guard<std::mutex> lock(mutex_);
    seed_ = seed;
    offset_ = 0;
  }
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  // Returns the offset for the next fill and advances past it.
  uint64_t next_offset() {
    std::lock_guard<std::mutex> lock(mutex_);
    return offset_++;
  }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
  std::mutex mutex_;
};

// The process-wide generator used when a call passes none.
Generator& default_generator();
inline void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace nn
