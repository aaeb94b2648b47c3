// Augmentations as plain loops over a contiguous float32 batch. Random draws are Philox
// (seed, stream, index): stream tells the augmentations apart, index is the sample (or the
// element for noise), so a sample's draw does not depend on the others.
#include "data/augment.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/rng.h"
#include "data/dataset.h"

namespace nn::data {
namespace {

constexpr uint64_t kCropStream = 1;
constexpr uint64_t kFlipStream = 2;
constexpr uint64_t kNoiseStream = 3;

struct Geometry {
  int64_t n = 0, c = 1, h = 0, w = 0;
  int64_t plane() const { return h * w; }
  int64_t sample() const { return c * h * w; }
};

Geometry check_images(const Tensor& t, const char* what) {
  NN_CHECK(t.defined(), ValueError, what, ": the batch is an undefined tensor");
  NN_CHECK(t.device().is_cpu(), DeviceError, what,
           ": augmentation runs on the host, the batch is on ", t.device().str());
  NN_CHECK(t.dtype() == Dtype::Float32, DtypeError, what, ": the batch is ", dtype_name(t.dtype()),
           ", expected float32 images");
  NN_CHECK(t.dim() == 3 || t.dim() == 4, ShapeError, what, ": the batch has shape ",
           shape_str(t.shape()), ", expected images [N, C, H, W] or [N, H, W]");
  NN_CHECK(t.is_contiguous(), ValueError, what, ": the batch of shape ", shape_str(t.shape()),
           " must be contiguous");
  Geometry g;
  g.n = t.size(0);
  g.c = t.dim() == 4 ? t.size(1) : 1;
  g.h = t.size(-2);
  g.w = t.size(-1);
  return g;
}

void check_probability(double p, const char* what) {
  NN_CHECK(p >= 0.0 && p <= 1.0, ValueError, what, ": probability ", p, " is outside [0, 1]");
}

void check_padding(int64_t padding, const char* what) {
  NN_CHECK(padding >= 0, ValueError, what, ": padding ", padding, " is negative");
}

void check_std(double stddev, const char* what) {
  NN_CHECK(stddev >= 0.0 && std::isfinite(stddev), ValueError, what, ": stddev ", stddev,
           " must be finite and non-negative");
}

void flip_sample(float* p, const Geometry& g) {
  for (int64_t row = 0; row < g.c * g.h; ++row) std::reverse(p + row * g.w, p + (row + 1) * g.w);
}

}  // namespace

void random_crop_(Tensor& images, int64_t padding, uint64_t seed) {
  const Geometry g = check_images(images, "random_crop");
  check_padding(padding, "random_crop");
  if (padding == 0 || images.numel() == 0) return;
  const uint32_t choices = static_cast<uint32_t>(2 * padding + 1);
  std::vector<float> copy(static_cast<size_t>(g.sample()));
  float* data = images.data<float>();
  for (int64_t s = 0; s < g.n; ++s) {
    const Philox4x32 r = philox4x32_10(seed, kCropStream, uint64_t(s));
    // The crop window's top-left corner in the padded image is (dy, dx); in the original
    // image's coordinates that is an offset of (dy - padding, dx - padding).
    const int64_t oy = int64_t(r.v[0] % choices) - padding;
    const int64_t ox = int64_t(r.v[1] % choices) - padding;
    float* sample = data + s * g.sample();
    std::memcpy(copy.data(), sample, copy.size() * sizeof(float));
    const int64_t x0 = std::clamp<int64_t>(-ox, 0, g.w);       // first column with a source
    const int64_t x1 = std::clamp<int64_t>(g.w - ox, 0, g.w);  // one past the last
    for (int64_t ch = 0; ch < g.c; ++ch) {
      for (int64_t y = 0; y < g.h; ++y) {
        float* dst = sample + ch * g.plane() + y * g.w;
        const int64_t sy = y + oy;
        if (sy < 0 || sy >= g.h || x0 >= x1) {
          std::fill(dst, dst + g.w, 0.0f);
          continue;
        }
        const float* src = copy.data() + ch * g.plane() + sy * g.w;
        std::fill(dst, dst + x0, 0.0f);
        std::memcpy(dst + x0, src + x0 + ox, size_t(x1 - x0) * sizeof(float));
        std::fill(dst + x1, dst + g.w, 0.0f);
      }
    }
  }
}

void horizontal_flip_(Tensor& images) {
  const Geometry g = check_images(images, "horizontal_flip");
  float* data = images.data<float>();
  for (int64_t s = 0; s < g.n; ++s) flip_sample(data + s * g.sample(), g);
}

void random_horizontal_flip_(Tensor& images, double p, uint64_t seed) {
  const Geometry g = check_images(images, "random_horizontal_flip");
  check_probability(p, "random_horizontal_flip");
  float* data = images.data<float>();
  for (int64_t s = 0; s < g.n; ++s) {
    const double u = philox_uniform<double>(seed, kFlipStream, uint64_t(s));  // in (0, 1]
    if (u <= p) flip_sample(data + s * g.sample(), g);
  }
}

void gaussian_noise_(Tensor& images, double stddev, uint64_t seed) {
  check_images(images, "gaussian_noise");
  check_std(stddev, "gaussian_noise");
  if (stddev == 0.0) return;
  float* data = images.data<float>();
  const auto scale = static_cast<float>(stddev);
  for (int64_t i = 0; i < images.numel(); ++i)
    data[i] += scale * philox_normal<float>(seed, kNoiseStream, uint64_t(i));
}

void normalize_(Tensor& images, const std::vector<double>& mean,
                const std::vector<double>& stddev) {
  const Geometry g = check_images(images, "normalize");
  const auto per_channel = [&](const std::vector<double>& v, const char* name) {
    NN_CHECK(v.size() == 1 || int64_t(v.size()) == g.c, ValueError, "normalize: ", v.size(), " ",
             name, " values for ", g.c, " channel", g.c == 1 ? "" : "s",
             ", expected 1 or one per channel");
  };
  per_channel(mean, "mean");
  per_channel(stddev, "stddev");
  for (double s : stddev)
    NN_CHECK(s > 0.0 && std::isfinite(s), ValueError, "normalize: stddev ", s,
             " must be positive and finite");
  float* data = images.data<float>();
  for (int64_t s = 0; s < g.n; ++s) {
    for (int64_t ch = 0; ch < g.c; ++ch) {
      const size_t k = mean.size() == 1 ? 0 : size_t(ch);
      const size_t j = stddev.size() == 1 ? 0 : size_t(ch);
      const auto m = static_cast<float>(mean[k]);
      const auto inv = static_cast<float>(1.0 / stddev[j]);
      float* p = data + s * g.sample() + ch * g.plane();
      for (int64_t i = 0; i < g.plane(); ++i) p[i] = (p[i] - m) * inv;
    }
  }
}

Transform compose(std::vector<Transform> transforms) {
  for (size_t k = 0; k < transforms.size(); ++k)
    NN_CHECK(bool(transforms[k]), ValueError, "compose: transform ", k, " is empty");
  return [transforms = std::move(transforms)](Tensor& inputs, uint64_t seed) {
    for (size_t k = 0; k < transforms.size(); ++k) transforms[k](inputs, mix_seed(seed, k));
  };
}

Transform random_crop(int64_t padding) {
  check_padding(padding, "random_crop");
  return [padding](Tensor& x, uint64_t seed) { random_crop_(x, padding, seed); };
}

Transform random_horizontal_flip(double p) {
  check_probability(p, "random_horizontal_flip");
  return [p](Tensor& x, uint64_t seed) { random_horizontal_flip_(x, p, seed); };
}

Transform gaussian_noise(double stddev) {
  check_std(stddev, "gaussian_noise");
  return [stddev](Tensor& x, uint64_t seed) { gaussian_noise_(x, stddev, seed); };
}

Transform normalize(std::vector<double> mean, std::vector<double> stddev) {
  NN_CHECK(!mean.empty() && !stddev.empty(), ValueError,
           "normalize: mean and stddev must not be empty");
  return [mean = std::move(mean), stddev = std::move(stddev)](Tensor& x, uint64_t) {
    normalize_(x, mean, stddev);
  };
}

}  // namespace nn::data
