#include "layers/models.h"

#include <string>

#include "core/error.h"
#include "kernels/conv_ops.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/linear.h"
#include "layers/pool.h"
#include "layers/residual.h"

namespace nn {
namespace {

void check_widths(const std::vector<int64_t>& widths, const char* what, const char* model) {
  for (int64_t w : widths) {
    NN_CHECK(w > 0, ValueError, model, ": ", what, " widths must be positive, got ", w);
  }
}

void check_image(const Shape& image, int64_t classes, const char* model) {
  NN_CHECK(image.size() == 4 && image[1] > 0 && image[2] > 0 && image[3] > 0, ValueError, model,
           ": the image shape must be [N, C, H, W] with positive C, H and W, got ",
           shape_str(image));
  NN_CHECK(classes > 0, ValueError, model, ": classes must be positive, got ", classes);
}

}  // namespace

std::shared_ptr<Sequential> lenet_cnn(ImageNetOptions o, const Shape& image, int64_t classes,
                                      TensorOptions options, Generator& gen) {
  check_image(image, classes, "lenet_cnn");
  if (o.channels.empty()) o.channels = {32, 64};
  if (o.hidden.empty()) o.hidden = {128};
  check_widths(o.channels, "channel", "lenet_cnn");
  check_widths(o.hidden, "hidden", "lenet_cnn");
  auto model = std::make_shared<Sequential>();
  int64_t in = image[1], h = image[2], w = image[3];
  for (int64_t width : o.channels) {
    NN_CHECK(h >= 2 && w >= 2, ValueError, "lenet_cnn: images of ", image[2], "x", image[3],
             " are too small for ", o.channels.size(), " stages of 2x2 pooling");
    model->push_back(std::make_shared<Conv2d>(in, width, 3, Conv2dOptions{.padding = {1, 1}},
                                              !o.batch_norm, options, &gen));
    if (o.batch_norm) {
      model->push_back(std::make_shared<BatchNorm2d>(
          width, BatchNormOptions{.activation = Activation::Relu}, options));
    } else {
      model->push_back(std::make_shared<ReLU>());
    }
    model->push_back(std::make_shared<MaxPool2d>(2));
    in = width;
    h = pool_out_size(h, 2, 2, 0, 1, false);
    w = pool_out_size(w, 2, 2, 0, 1, false);
  }
  model->push_back(std::make_shared<Flatten>());
  int64_t features = in * h * w;
  for (int64_t width : o.hidden) {
    model->push_back(
        std::make_shared<Linear>(features, width, true, Activation::None, options, &gen));
    model->push_back(std::make_shared<ReLU>());
    features = width;
  }
  if (o.dropout > 0) model->push_back(std::make_shared<Dropout>(o.dropout, gen.seed() + 1));
  model->push_back(
      std::make_shared<Linear>(features, classes, true, Activation::None, options, &gen));
  return model;
}

std::shared_ptr<Sequential> small_resnet(ImageNetOptions o, const Shape& image, int64_t classes,
                                         TensorOptions options, Generator& gen) {
  check_image(image, classes, "small_resnet");
  if (o.channels.empty()) o.channels = {16, 32, 64};
  check_widths(o.channels, "channel", "small_resnet");
  auto model = std::make_shared<Sequential>();
  int64_t in = o.channels.front();
  model->push_back("stem", std::make_shared<Conv2d>(image[1], in, 3,
                                                    Conv2dOptions{.padding = {1, 1}}, false,
                                                    options, &gen));
  model->push_back("bn", std::make_shared<BatchNorm2d>(
                             in, BatchNormOptions{.activation = Activation::Relu}, options));
  for (size_t i = 0; i < o.channels.size(); ++i) {
    const int64_t stride = i == 0 ? 1 : 2;
    model->push_back("layer" + std::to_string(i + 1),
                     std::make_shared<ResidualBlock>(in, o.channels[i], stride, options, &gen));
    in = o.channels[i];
  }
  model->push_back("pool", std::make_shared<AdaptiveAvgPool2d>(1));
  model->push_back("flatten", std::make_shared<Flatten>());
  if (o.dropout > 0) {
    model->push_back("dropout", std::make_shared<Dropout>(o.dropout, gen.seed() + 1));
  }
  model->push_back("fc",
                   std::make_shared<Linear>(in, classes, true, Activation::None, options, &gen));
  return model;
}

}  // namespace nn
