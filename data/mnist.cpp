// MNIST-layout loading on top of read_idx. The Debian location is named here and nowhere else.
#include "data/mnist.h"

#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "data/idx.h"

namespace nn::data {
namespace {

constexpr const char* kDebianFashionMnistDir = "/usr/share/datasets/fashion-mnist";
constexpr const char* kFashionMnistEnv = "NN_FASHION_MNIST_DIR";
constexpr const char* kInstallHint = "install Debian's dataset-fashion-mnist or pass --data DIR";

std::string base_name(Split split, bool images) {
  const std::string prefix = split == Split::Train ? "train" : "t10k";
  return prefix + (images ? "-images-idx3-ubyte" : "-labels-idx1-ubyte");
}

// The plain file when present, else the gzipped one, else empty.
std::string existing_file(const std::string& dir, const std::string& base) {
  std::error_code ec;
  for (const char* suffix : {"", ".gz"}) {
    const auto p = std::filesystem::path(dir) / (base + suffix);
    if (std::filesystem::is_regular_file(p, ec)) return p.string();
  }
  return {};
}

std::string locate(const std::string& dir, Split split, bool images) {
  const std::string base = base_name(split, images);
  std::string path = existing_file(dir, base);
  NN_CHECK(!path.empty(), IoError, "MNIST-layout data set not found: '", dir, "' has neither ",
           base, " nor ", base, ".gz; ", kInstallHint);
  return path;
}

}  // namespace

const char* split_name(Split split) { return split == Split::Train ? "train" : "test"; }

std::vector<std::string> fashion_mnist_search_dirs() {
  const char* env = std::getenv(kFashionMnistEnv);
  if (env != nullptr && *env != '\0') return {env};
  return {kDebianFashionMnistDir};
}

std::string find_fashion_mnist_dir() {
  std::string tried;
  for (const std::string& dir : fashion_mnist_search_dirs()) {
    if (!existing_file(dir, base_name(Split::Train, true)).empty()) return dir;
    tried += (tried.empty() ? "'" : ", '") + dir + "'";
  }
  const char* env = std::getenv(kFashionMnistEnv);
  NN_THROW(IoError, "Fashion-MNIST not found in ", tried,
           env != nullptr && *env != '\0' ? std::string(" (from ") + kFashionMnistEnv + ")"
                                          : std::string(),
           ": ", kInstallHint);
}

LabelledImages load_mnist(const std::string& dir, Split split) {
  const IdxArray images = read_idx(locate(dir, split, true));
  const IdxArray labels = read_idx(locate(dir, split, false));
  NN_CHECK(images.shape.size() == 3 && labels.shape.size() == 1, IoError, "load_mnist: '",
           images.source, "' holds ", shape_str(images.shape), " and '", labels.source, "' holds ",
           shape_str(labels.shape), ", expected images [N, H, W] and labels [N]");
  NN_CHECK(images.shape[0] == labels.shape[0], IoError, "load_mnist: '", images.source, "' has ",
           images.shape[0], " images but '", labels.source, "' has ", labels.shape[0],
           " labels, expected equal counts");
  LabelledImages out;
  out.images = idx_images(images, /*channel_dim=*/true);
  out.labels = idx_labels(labels, kMnistClasses);
  return out;
}

LabelledImages load_fashion_mnist(const std::string& dir, Split split) {
  return load_mnist(dir.empty() ? find_fashion_mnist_dir() : dir, split);
}

}  // namespace nn::data
