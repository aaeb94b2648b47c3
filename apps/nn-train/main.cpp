// nn-train: trains a classifier on Fashion-MNIST (or any folder of MNIST-layout IDX files) with
// libnn_cuda, on the GPU when there is one: an MLP, a LeNet-style CNN or a small ResNet. It shows
// a progress bar per epoch, validation accuracy, early stopping, checkpoints with --resume, the
// final test accuracy and a CSV of per-epoch metrics. Run `nn-train --help` for the flags.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "apps/nn-train/progress.h"
#include "core/error.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/mnist.h"
#include "data/augment.h"
#include "graph/functions.h"
#include "layers/activation.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/models.h"
#include "layers/sequential.h"
#include "optim/adam.h"
#include "optim/checkpoint.h"
#include "optim/clip.h"
#include "optim/early_stopping.h"
#include "optim/rmsprop.h"
#include "optim/scheduler.h"
#include "optim/sgd.h"

namespace {

namespace fs = std::filesystem;
using nn::Tensor;
using nn::Variable;

constexpr const char* kUsage = R"(usage: nn-train [flags]

Trains a classifier on Fashion-MNIST with libnn_cuda and reports its test accuracy.

  --model NAME          mlp (default); cnn: LeNet-style, two stages of 3x3 convolution, ReLU
                        and 2x2 max pooling, then a linear head; resnet: a small ResNet (a 3x3
                        stem, one residual block per stage, global average pooling)
  --data DIR            a folder of MNIST-layout IDX files (train-images-idx3-ubyte[.gz], ...);
                        default: $NN_FASHION_MNIST_DIR, else Debian's dataset-fashion-mnist
  --device DEV          auto (default: cuda when a GPU is present), cpu, cuda, cuda:N
  --epochs N            at most N epochs (default 10)
  --batch-size N        (default 128)
  --hidden A,B,...      hidden layer widths of the mlp (default 256,256) or of the cnn's head
                        (default 128)
  --channels A,B,...    conv widths: cnn's two stages (default 32,64); resnet's stages, each
                        after the first halving the image (default 16,32,64)
  --batch-norm          cnn: batch norm after each convolution (resnet always has it)
  --dropout P           dropout after each hidden layer of the mlp, before the classifier of
                        the cnn and resnet (default 0.1)
  --optimizer NAME      adam (default), adamw, sgd, rmsprop
  --lr X                learning rate (default 1e-3; 0.05 for sgd)
  --momentum X          sgd / rmsprop momentum (default 0.9 for sgd)
  --weight-decay X      (default 0; 1e-2 for adamw)
  --schedule NAME       none (default), step, exponential, cosine (with warm-up), plateau
  --clip-norm X         clip gradients to this global norm (default: off)
  --label-smoothing X   (default 0)
  --augment             random crop (pad 2) and horizontal flip of training images
  --val-size N          training images held out for validation (default 5000)
  --limit N             use only the first N training images (quick runs)
  --patience N          early stopping patience in epochs (default 3; 0 disables)
  --min-delta X         smallest validation-accuracy gain that counts (default 1e-4)
  --seed N              seed for initialisation, splitting, shuffling and dropout (default 1)
  --out DIR             where the checkpoint, metrics CSV and final weights go (default nn-train-out)
  --checkpoint PATH     the training checkpoint, written after every epoch
                        (default OUT/checkpoint.safetensors)
  --resume PATH         continue a run from its checkpoint
  --metrics PATH        per-epoch CSV (default OUT/metrics.csv)
  --min-accuracy X      exit with status 3 when the test accuracy is below X
  --quiet               no progress bar
  --help                this text
)";

struct Config {
  std::string model = "mlp";
  std::string data;
  std::string device = "auto";
  int64_t epochs = 10;
  int64_t batch_size = 128;
  std::vector<int64_t> hidden;    // empty: the model's default
  std::vector<int64_t> channels;  // empty: the model's default
  bool batch_norm = false;
  double dropout = 0.1;
  std::string optimizer = "adam";
  std::optional<double> lr, momentum, weight_decay;
  std::string schedule = "none";
  double clip_norm = 0.0;
  double label_smoothing = 0.0;
  bool augment = false;
  int64_t val_size = 5000;
  int64_t limit = 0;
  int64_t patience = 3;
  double min_delta = 1e-4;
  uint64_t seed = 1;
  std::string out = "nn-train-out";
  std::string checkpoint, resume, metrics;
  std::optional<double> min_accuracy;
  bool quiet = false;
};

// A bad command line: reported with a pointer to --help, exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

int64_t parse_int(const std::string& flag, const std::string& text, int64_t min) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty()) {
    throw UsageError(flag + " expects an integer, got '" + text + "'");
  }
  if (v < min) throw UsageError(flag + " must be at least " + std::to_string(min));
  return v;
}

double parse_double(const std::string& flag, const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || !std::isfinite(v)) {
    throw UsageError(flag + " expects a number, got '" + text + "'");
  }
  return v;
}

Config parse_args(int argc, char** argv) {
  Config c;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw UsageError(flag + " needs a value");
      return args[++i];
    };
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (flag == "--model") {
      c.model = value();
    } else if (flag == "--data") {
      c.data = value();
    } else if (flag == "--device") {
      c.device = value();
    } else if (flag == "--epochs") {
      c.epochs = parse_int(flag, value(), 1);
    } else if (flag == "--batch-size") {
      c.batch_size = parse_int(flag, value(), 1);
    } else if (flag == "--hidden") {
      c.hidden.clear();
      std::stringstream ss(value());
      for (std::string w; std::getline(ss, w, ',');) c.hidden.push_back(parse_int(flag, w, 1));
    } else if (flag == "--channels") {
      c.channels.clear();
      std::stringstream ss(value());
      for (std::string w; std::getline(ss, w, ',');) c.channels.push_back(parse_int(flag, w, 1));
      if (c.channels.empty()) throw UsageError("--channels expects widths like 32,64");
    } else if (flag == "--batch-norm") {
      c.batch_norm = true;
    } else if (flag == "--dropout") {
      c.dropout = parse_double(flag, value());
      if (c.dropout < 0 || c.dropout >= 1) throw UsageError("--dropout must be in [0, 1)");
    } else if (flag == "--optimizer") {
      c.optimizer = value();
    } else if (flag == "--lr") {
      c.lr = parse_double(flag, value());
    } else if (flag == "--momentum") {
      c.momentum = parse_double(flag, value());
    } else if (flag == "--weight-decay") {
      c.weight_decay = parse_double(flag, value());
    } else if (flag == "--schedule") {
      c.schedule = value();
    } else if (flag == "--clip-norm") {
      c.clip_norm = parse_double(flag, value());
    } else if (flag == "--label-smoothing") {
      c.label_smoothing = parse_double(flag, value());
    } else if (flag == "--augment") {
      c.augment = true;
    } else if (flag == "--val-size") {
      c.val_size = parse_int(flag, value(), 1);
    } else if (flag == "--limit") {
      c.limit = parse_int(flag, value(), 1);
    } else if (flag == "--patience") {
      c.patience = parse_int(flag, value(), 0);
    } else if (flag == "--min-delta") {
      c.min_delta = parse_double(flag, value());
    } else if (flag == "--seed") {
      c.seed = uint64_t(parse_int(flag, value(), 0));
    } else if (flag == "--out") {
      c.out = value();
    } else if (flag == "--checkpoint") {
      c.checkpoint = value();
    } else if (flag == "--resume") {
      c.resume = value();
    } else if (flag == "--metrics") {
      c.metrics = value();
    } else if (flag == "--min-accuracy") {
      c.min_accuracy = parse_double(flag, value());
    } else if (flag == "--quiet") {
      c.quiet = true;
    } else {
      throw UsageError("unknown flag '" + flag + "'");
    }
  }
  if (c.model != "mlp" && c.model != "cnn" && c.model != "resnet") {
    throw UsageError("unknown model '" + c.model + "' (expected mlp, cnn or resnet)");
  }
  if (c.model == "mlp" && (!c.channels.empty() || c.batch_norm)) {
    throw UsageError("--channels and --batch-norm apply to --model cnn or resnet, not mlp");
  }
  if (c.model == "cnn" && !c.channels.empty() && c.channels.size() != 2) {
    throw UsageError("--model cnn takes two --channels widths (one per stage), got " +
                     std::to_string(c.channels.size()));
  }
  if (c.model == "resnet" && !c.hidden.empty()) {
    throw UsageError("--hidden applies to --model mlp or cnn, not resnet");
  }
  if (c.hidden.empty()) {
    c.hidden = c.model == "cnn" ? std::vector<int64_t>{128} : std::vector<int64_t>{256, 256};
  }
  if (c.channels.empty()) {
    c.channels =
        c.model == "resnet" ? std::vector<int64_t>{16, 32, 64} : std::vector<int64_t>{32, 64};
  }
  const std::vector<std::string> schedules = {"none", "step", "exponential", "cosine", "plateau"};
  if (std::find(schedules.begin(), schedules.end(), c.schedule) == schedules.end()) {
    throw UsageError("unknown schedule '" + c.schedule +
                     "' (expected none, step, exponential, cosine or plateau)");
  }
  if (c.optimizer != "adam" && c.optimizer != "adamw" && c.optimizer != "sgd" &&
      c.optimizer != "rmsprop") {
    throw UsageError("unknown optimizer '" + c.optimizer + "' (expected adam, adamw, sgd or rmsprop)");
  }
  if (c.checkpoint.empty()) c.checkpoint = (fs::path(c.out) / "checkpoint.safetensors").string();
  if (c.metrics.empty()) c.metrics = (fs::path(c.out) / "metrics.csv").string();
  return c;
}

// Flatten, then Linear + ReLU (+ Dropout) per hidden width, then the classifier. Sequential
// folds each Linear + ReLU pair into one fused op.
std::shared_ptr<nn::Sequential> make_mlp(const Config& c, int64_t in_features, int64_t classes,
                                         nn::TensorOptions options, nn::Generator& gen) {
  auto model = std::make_shared<nn::Sequential>();
  model->push_back(std::make_shared<nn::Flatten>());
  int64_t width = in_features;
  for (int64_t h : c.hidden) {
    model->push_back(std::make_shared<nn::Linear>(width, h, true, nn::Activation::None, options, &gen));
    model->push_back(std::make_shared<nn::ReLU>());
    if (c.dropout > 0) model->push_back(std::make_shared<nn::Dropout>(c.dropout, gen.seed() + width + h));
    width = h;
  }
  model->push_back(std::make_shared<nn::Linear>(width, classes, true, nn::Activation::None, options, &gen));
  return model;
}

// --model cnn and resnet: the networks of layers/models.h.
nn::ImageNetOptions image_net_options(const Config& c) {
  return {.channels = c.channels, .hidden = c.hidden, .batch_norm = c.batch_norm, .dropout = c.dropout};
}

std::unique_ptr<nn::Optimizer> make_optimizer(const Config& c, std::vector<Variable> params) {
  if (c.optimizer == "sgd") {
    return std::make_unique<nn::SGD>(params, nn::SGDOptions{.lr = c.lr.value_or(0.05),
                                                            .momentum = c.momentum.value_or(0.9),
                                                            .weight_decay = c.weight_decay.value_or(0)});
  }
  if (c.optimizer == "rmsprop") {
    return std::make_unique<nn::RMSprop>(params, nn::RMSpropOptions{.lr = c.lr.value_or(1e-3),
                                                                    .weight_decay = c.weight_decay.value_or(0),
                                                                    .momentum = c.momentum.value_or(0)});
  }
  if (c.optimizer == "adamw") {
    return std::make_unique<nn::AdamW>(params, nn::AdamWOptions{.lr = c.lr.value_or(1e-3),
                                                                .weight_decay = c.weight_decay.value_or(1e-2)});
  }
  return std::make_unique<nn::Adam>(params, nn::AdamOptions{.lr = c.lr.value_or(1e-3),
                                                            .weight_decay = c.weight_decay.value_or(0)});
}

std::unique_ptr<nn::Scheduler> make_scheduler(const Config& c, nn::Optimizer& opt,
                                              int64_t steps_per_epoch) {
  if (c.schedule == "step") return std::make_unique<nn::StepLR>(opt, std::max<int64_t>(1, c.epochs / 3), 0.1);
  if (c.schedule == "exponential") return std::make_unique<nn::ExponentialLR>(opt, 0.9);
  if (c.schedule == "cosine") {
    return std::make_unique<nn::CosineWarmupLR>(opt, steps_per_epoch / 2, c.epochs * steps_per_epoch);
  }
  if (c.schedule == "plateau") {
    return std::make_unique<nn::ReduceLROnPlateau>(opt, nn::PlateauOptions{.mode = nn::MetricMode::Min,
                                                                           .factor = 0.5,
                                                                           .patience = 1});
  }
  return nullptr;
}

struct EvalResult {
  double loss = 0;
  double accuracy = 0;
  int64_t correct = 0;
  int64_t count = 0;
};

// Loss and accuracy over a loader; sums stay on the device and are read once at the end.
EvalResult evaluate(nn::Module& model, nn::data::DataLoader& loader) {
  nn::NoGradGuard no_grad;
  model.eval();
  Tensor loss_sum, correct;
  int64_t count = 0;
  for (const nn::data::Batch& b : loader) {
    Variable logits = model(Variable(b.inputs));
    Tensor loss = nn::cross_entropy(logits, b.targets, {}, nn::Reduction::Sum).data();
    // Class indices below 2^24 compare exactly as float32.
    Tensor predicted = nn::argmax(logits.data(), 1).to(nn::Dtype::Float32);
    Tensor hits = nn::sum(nn::eq(predicted, b.targets.to(nn::Dtype::Float32)).to(nn::Dtype::Float32));
    if (loss_sum.defined()) {
      nn::add_(loss_sum, loss.to(nn::Dtype::Float64));
      nn::add_(correct, hits.to(nn::Dtype::Float64));
    } else {
      loss_sum = loss.to(nn::Dtype::Float64);
      correct = hits.to(nn::Dtype::Float64);
    }
    count += b.size();
  }
  model.train();
  EvalResult r;
  r.count = count;
  if (count > 0) {
    r.loss = loss_sum.item() / double(count);
    r.correct = int64_t(std::llround(correct.item()));
    r.accuracy = double(r.correct) / double(count);
  }
  return r;
}

std::shared_ptr<nn::data::TensorDataset> normalized(const nn::data::LabelledImages& split,
                                                    int64_t limit) {
  // Fashion-MNIST's pixel mean and standard deviation over the training set.
  constexpr double kMean = 0.2860, kStd = 0.3530;
  Tensor images = split.images, labels = split.labels;
  if (limit > 0 && limit < images.size(0)) {
    images = images.narrow(0, 0, limit);
    labels = labels.narrow(0, 0, limit);
  }
  Tensor x = nn::mul(nn::add(images, -kMean), 1.0 / kStd);
  return std::make_shared<nn::data::TensorDataset>(x, labels.contiguous());
}

int run(const Config& c) {
  nn::Device device = c.device == "auto" ? nn::best_device() : nn::Device::parse(c.device);
  if (device.is_cuda()) nn::cuda::check_device(device, "nn-train --device");
  nn::manual_seed(c.seed);

  std::string dir = c.data.empty() ? nn::data::find_fashion_mnist_dir() : c.data;
  nn::data::LabelledImages train_split = nn::data::load_mnist(dir, nn::data::Split::Train);
  nn::data::LabelledImages test_split = nn::data::load_mnist(dir, nn::data::Split::Test);
  auto full_train = normalized(train_split, c.limit);
  NN_CHECK(c.val_size < full_train->size(), ValueError, "--val-size ", c.val_size,
           " leaves no training images out of ", full_train->size());
  auto parts = nn::data::random_split(full_train, {full_train->size() - c.val_size, c.val_size}, c.seed);
  auto test_set = normalized(test_split, 0);

  nn::data::LoaderOptions train_opts{.batch_size = c.batch_size, .shuffle = true, .seed = c.seed,
                                     .drop_last = true, .device = device, .prefetch = true};
  if (c.augment) {
    train_opts.transform = nn::data::compose(
        {nn::data::random_crop(2), nn::data::random_horizontal_flip(0.5)});
  }
  nn::data::DataLoader train_loader(parts[0], train_opts);
  nn::data::LoaderOptions eval_opts{.batch_size = 1000, .device = device, .prefetch = true};
  nn::data::DataLoader val_loader(parts[1], eval_opts);
  nn::data::DataLoader test_loader(test_set, eval_opts);

  const nn::Shape& image_shape = train_split.images.shape();
  int64_t in_features = image_shape[1] * image_shape[2] * image_shape[3];
  nn::Generator init_gen(c.seed);
  const nn::TensorOptions on_device{.device = device};
  std::shared_ptr<nn::Sequential> model;
  if (c.model == "cnn") {
    model = nn::lenet_cnn(image_net_options(c), image_shape, nn::data::kMnistClasses, on_device, init_gen);
  } else if (c.model == "resnet") {
    model = nn::small_resnet(image_net_options(c), image_shape, nn::data::kMnistClasses, on_device,
                                init_gen);
  } else {
    model = make_mlp(c, in_features, nn::data::kMnistClasses, on_device, init_gen);
  }
  auto optimizer = make_optimizer(c, model->parameters());
  auto scheduler = make_scheduler(c, *optimizer, train_loader.size());
  nn::CrossEntropyLoss criterion(Tensor(), c.label_smoothing);
  nn::EarlyStopping stopper(c.patience > 0 ? c.patience : c.epochs + 1, c.min_delta,
                            nn::MetricMode::Max);

  int64_t params = 0;
  for (const Variable& p : model->parameters()) params += p.numel();
  std::printf("nn-train: %s on %s, data %s\n", c.model.c_str(), device.str().c_str(), dir.c_str());
  std::printf("  %lld training, %lld validation, %lld test images; %lld parameters\n",
              (long long)parts[0]->size(), (long long)parts[1]->size(),
              (long long)test_set->size(), (long long)params);
  std::cout << *model << "\n";

  int64_t start_epoch = 0;
  if (!c.resume.empty()) {
    nn::CheckpointInfo info = nn::load_checkpoint(c.resume, *model, *optimizer, scheduler.get());
    start_epoch = info.epoch;
    std::printf("resumed from %s after epoch %lld\n", c.resume.c_str(), (long long)start_epoch);
  }

  fs::create_directories(c.out);
  if (auto parent = fs::path(c.metrics).parent_path(); !parent.empty()) fs::create_directories(parent);
  bool fresh_csv = start_epoch == 0 || !fs::exists(c.metrics);
  std::ofstream csv(c.metrics, fresh_csv ? std::ios::trunc : std::ios::app);
  NN_CHECK(csv.good(), IoError, "nn-train: cannot write ", c.metrics);
  if (fresh_csv) csv << "epoch,train_loss,val_loss,val_accuracy,lr,seconds,samples_per_second\n";

  auto params_list = model->parameters();
  for (int64_t epoch = start_epoch; epoch < c.epochs; ++epoch) {
    train_loader.set_epoch(epoch);
    model->train();
    char label[32];
    std::snprintf(label, sizeof label, "epoch %lld/%lld", (long long)epoch + 1, (long long)c.epochs);
    nn_train::ProgressBar bar(label, train_loader.size(), c.quiet);
    Tensor loss_sum;  // on the device: read only when the bar shows it
    int64_t done = 0, samples = 0;
    for (const nn::data::Batch& b : train_loader) {
      Variable loss = criterion((*model)(Variable(b.inputs)), b.targets);
      optimizer->zero_grad();
      loss.backward();
      if (c.clip_norm > 0) nn::clip_grad_norm_(params_list, c.clip_norm);
      optimizer->step();
      if (c.schedule == "cosine") static_cast<nn::LRScheduler&>(*scheduler).step();
      if (loss_sum.defined()) {
        nn::add_(loss_sum, loss.data().to(nn::Dtype::Float64));
      } else {
        loss_sum = loss.data().to(nn::Dtype::Float64);
      }
      ++done;
      samples += b.size();
      if (bar.due(done)) bar.update(done, samples, loss_sum.item() / double(done));
    }
    double seconds = bar.elapsed();
    double train_loss = done > 0 ? loss_sum.item() / double(done) : 0.0;
    EvalResult val = evaluate(*model, val_loader);
    double lr = optimizer->lr();
    std::printf("epoch %lld: train loss %.4f, validation loss %.4f, validation accuracy %.4f, "
                "lr %.3g, %.1f s\n",
                (long long)epoch + 1, train_loss, val.loss, val.accuracy, lr, seconds);
    csv << epoch + 1 << ',' << train_loss << ',' << val.loss << ',' << val.accuracy << ',' << lr
        << ',' << seconds << ',' << (seconds > 0 ? double(samples) / seconds : 0.0) << '\n';
    csv.flush();

    if (c.schedule == "step" || c.schedule == "exponential") {
      static_cast<nn::LRScheduler&>(*scheduler).step();
    } else if (c.schedule == "plateau") {
      static_cast<nn::ReduceLROnPlateau&>(*scheduler).step(val.loss);
    }
    nn::save_checkpoint(c.checkpoint, *model, *optimizer, scheduler.get(), epoch + 1,
                        {{"model", c.model}, {"validation_accuracy", std::to_string(val.accuracy)}});
    if (stopper.step(val.accuracy, *model)) {
      std::printf("early stopping: no validation gain above %.g for %lld epochs; best was epoch "
                  "%lld (%.4f), its weights are restored\n",
                  c.min_delta, (long long)c.patience, (long long)start_epoch + stopper.best_epoch() + 1,
                  stopper.best());
      break;
    }
  }
  if (!stopper.should_stop() && stopper.best_epoch() >= 0) stopper.restore_best(*model);

  EvalResult test = evaluate(*model, test_loader);
  std::string weights = (fs::path(c.out) / ("nn-train-" + c.model + ".safetensors")).string();
  model->save(weights);
  std::printf("test accuracy: %.4f (%lld/%lld)\n", test.accuracy, (long long)test.correct,
              (long long)test.count);
  std::printf("wrote %s, %s, %s\n", c.checkpoint.c_str(), c.metrics.c_str(), weights.c_str());
  if (c.min_accuracy && test.accuracy < *c.min_accuracy) {
    std::fprintf(stderr, "nn-train: test accuracy %.4f is below --min-accuracy %.4f\n",
                 test.accuracy, *c.min_accuracy);
    return 3;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
  } catch (const UsageError& e) {
    std::fprintf(stderr, "nn-train: %s (see nn-train --help)\n", e.what());
    return 2;
  } catch (const nn::Error& e) {
    std::fprintf(stderr, "nn-train: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nn-train: unexpected error: %s\n", e.what());
    return 1;
  }
}
