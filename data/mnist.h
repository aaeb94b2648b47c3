// MNIST-layout data sets (MNIST, Fashion-MNIST): four IDX files per directory,
// {train,t10k}-{images-idx3,labels-idx1}-ubyte, each optionally gzipped (.gz).
//
// Fashion-MNIST is found at run time: the directory named by the environment variable
// NN_FASHION_MNIST_DIR when it is set, else where Debian's dataset-fashion-mnist package puts
// it. A missing data set throws IoError naming the directory tried and saying
// "install Debian's dataset-fashion-mnist or pass --data DIR" (apps print that message).
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"

namespace nn::data {

enum class Split { Train, Test };
const char* split_name(Split split);  // "train", "test"

struct LabelledImages {
  Tensor images;  // float32 [N, 1, H, W] in [0, 1]
  Tensor labels;  // int64 [N], each in [0, 10)
};

constexpr int64_t kMnistClasses = 10;

// The directories probed for Fashion-MNIST, in order (the environment variable alone when set).
std::vector<std::string> fashion_mnist_search_dirs();
// The first of them that holds the training images; IoError (see above) when none does.
std::string find_fashion_mnist_dir();

// Loads one split from an MNIST-layout directory. Throws IoError for a missing or bad file,
// for image and label counts that differ, and for a label outside [0, 10).
LabelledImages load_mnist(const std::string& dir, Split split);
// Fashion-MNIST from `dir`, or from find_fashion_mnist_dir() when `dir` is empty.
LabelledImages load_fashion_mnist(const std::string& dir, Split split);

}  // namespace nn::data
