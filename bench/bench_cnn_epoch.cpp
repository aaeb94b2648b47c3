// One CNN training epoch on Fashion-MNIST in libnn_cuda and, when the build found LibTorch, in
// LibTorch in the same process on the same device and thread count: the LeNet-style network of
// `nn-train --model cnn` with its default widths (two stages of 3x3 convolution 32 and 64, ReLU
// or with --batch-norm batch norm + ReLU, 2x2 max pooling; Linear 3136 -> 128 + ReLU, dropout,
// Linear 128 -> 10), cross-entropy, Adam (lr 1e-3), batch 128 with the last partial batch
// dropped. Both sides start from the same weights (ours, copied into LibTorch's modules) and see
// the same batches in the same order (our DataLoader's shuffled order of epoch 0). Before the
// timed epoch each side trains a throw-away copy for a few steps, so caches (allocator, cuDNN
// plans, the conv backend's per-shape choice) are warm and no warm-up step lands in the epoch.
//
//   bench_cnn_epoch [--device cpu|cuda] [--limit N] [--batch-size N] [--batch-norm]
//                   [--dropout P] [--warmup N] [--seed N] [--threads N] [--data DIR]
//                   [--interleave K] [--side both|ours|libtorch] [--json]
//
// --limit N trains on the first N training images (all 60000 by default). --threads sets the CPU
// threads of both sides (NN_NUM_THREADS for ours, torch::set_num_threads for LibTorch; default
// NN_NUM_THREADS, else the hardware's count), so neither gets more cores than the other. On the
// CPU the two sides take turns of --interleave K steps (default 5; 0: one whole epoch after the
// other, as on CUDA), so a shared machine's changing load falls on both alike. Prints a markdown
// table of seconds per epoch, ms per step and LibTorch / libnn_cuda (above 1: libnn_cuda is
// faster), or with --json one JSON object per side (bench/cnn_epoch_compare.sh joins them with
// PyTorch eager's from bench/cnn_pytorch.py). Each side's first-step loss and final loss (the
// mean over the epoch's last tenth of steps) are printed too; the program exits 1 when a side did
// not learn (final loss above 0.75 of the first) or the two final losses disagree (see
// losses_agree), so a broken run cannot pass as a fast one.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/mnist.h"
#include "graph/functions.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/models.h"
#include "layers/pool.h"
#include "layers/sequential.h"
#include "optim/adam.h"

#if defined(NN_BENCH_WITH_LIBTORCH)
#include <torch/torch.h>
#endif

namespace {

using nn::Tensor;
using nn::Variable;

// nn-train's --model cnn defaults.
constexpr int64_t kChannels[] = {32, 64};
constexpr int64_t kHidden = 128;
// Fashion-MNIST's pixel mean and standard deviation over the training set (nn-train's).
constexpr double kPixelMean = 0.2860, kPixelStd = 0.3530;
// A side learned when its final loss is below this share of its first-step loss.
constexpr double kLearnedShare = 0.75;
// Steps per turn when both sides train on the CPU (--interleave's default there; on CUDA the
// sides run one after the other).
constexpr int64_t kCpuTurnSteps = 5;

struct Options {
  nn::Device device = nn::Device::cpu();
  int64_t limit = 0;
  int64_t batch = 128;
  bool batch_norm = false;
  double dropout = 0.1;
  int warmup = 5;
  uint64_t seed = 1;
  std::string data;
  int threads = 0;          // CPU threads of both sides; 0: NN_NUM_THREADS, else the hardware's
  int64_t interleave = -1;  // steps per turn; 0: one side after the other; -1: see kCpuTurnSteps
  bool ours = true;         // --side: which sides run
  bool peer = true;
  bool json = false;
};

struct EpochResult {
  double seconds = 0;
  int64_t steps = 0;
  double first_loss = 0;
  double final_loss = 0;  // mean over the last tenth of the steps
};

int64_t tail_steps(int64_t steps) { return std::max<int64_t>(1, steps / 10); }

bool learned(const EpochResult& r) { return r.final_loss < kLearnedShare * r.first_loss; }

// Same weights and batches, different dropout masks and summation orders: the final losses are
// close, not equal. Within 0.1 plus a quarter of the smaller one.
bool losses_agree(double a, double b) { return std::abs(a - b) <= 0.1 + 0.25 * std::min(a, b); }

// nn-train's --model cnn (layers/models.h) at its default widths.
std::shared_ptr<nn::Sequential> make_cnn(const Options& o, nn::Generator& gen) {
  return nn::lenet_cnn({.channels = {std::begin(kChannels), std::end(kChannels)},
                        .hidden = {kHidden},
                        .batch_norm = o.batch_norm,
                        .dropout = o.dropout},
                       {1, 1, 28, 28}, 10, {.device = o.device}, gen);
}

struct Data {
  std::string dir;
  std::shared_ptr<nn::data::TensorDataset> train;  // normalised float32 [N, 1, 28, 28], int64 [N]
};

Data load_data(const Options& o) {
  Data d;
  d.dir = o.data.empty() ? nn::data::find_fashion_mnist_dir() : o.data;
  nn::data::LabelledImages split = nn::data::load_mnist(d.dir, nn::data::Split::Train);
  Tensor images = split.images, labels = split.labels;
  if (o.limit > 0 && o.limit < images.size(0)) {
    images = images.narrow(0, 0, o.limit);
    labels = labels.narrow(0, 0, o.limit);
  }
  NN_CHECK(images.size(0) >= o.batch, ValueError, "bench_cnn_epoch: ", images.size(0),
           " training images make no batch of ", o.batch);
  Tensor x = nn::mul(nn::add(images, -kPixelMean), 1.0 / kPixelStd).contiguous();
  d.train = std::make_shared<nn::data::TensorDataset>(x, labels.contiguous());
  return d;
}

nn::data::LoaderOptions loader_options(const Options& o) {
  return {.batch_size = o.batch,
          .shuffle = true,
          .seed = o.seed,
          .drop_last = true,
          .device = o.device,
          .prefetch = true};
}

// One side's training run, resumable so the two sides can take turns: run(k) trains the next k
// steps (fewer at the end) and returns the seconds they took, the device waited for.
class Side {
 public:
  virtual ~Side() = default;
  double run(int64_t k) {
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < k && done_ < steps_; ++i, ++done_)
      step(done_ == 0, done_ >= tail_from_);
    sync();
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    seconds_ += s;
    return s;
  }
  int64_t left() const { return steps_ - done_; }
  EpochResult result() {
    EpochResult r;
    r.seconds = seconds_;
    r.steps = done_;
    r.first_loss = first_loss();
    r.final_loss = tail_sum() / double(std::max<int64_t>(1, done_ - tail_from_));
    return r;
  }

 protected:
  void set_steps(int64_t steps) {
    steps_ = steps;
    tail_from_ = steps - tail_steps(steps);
  }
  // One training step; keeps the loss (on the device) when `first` or `tail` says so.
  virtual void step(bool first, bool tail) = 0;
  virtual void sync() = 0;
  virtual double first_loss() = 0;
  virtual double tail_sum() = 0;

 private:
  int64_t steps_ = 0, done_ = 0, tail_from_ = 0;
  double seconds_ = 0;
};

// Ours: the loader's epoch 0, `max_steps` of it when positive.
class NnSide : public Side {
 public:
  NnSide(const Options& o, const Data& d, std::shared_ptr<nn::Sequential> model, int64_t max_steps)
      : device_(o.device),
        model_(std::move(model)),
        loader_(d.train, loader_options(o)),
        opt_(model_->parameters(), {.lr = 1e-3}) {
    set_steps(max_steps > 0 ? std::min(max_steps, loader_.size()) : loader_.size());
    model_->train();
    loader_.set_epoch(0);
    it_ = loader_.begin();
  }

 protected:
  void step(bool first, bool tail) override {
    const nn::data::Batch& b = *it_;
    Variable loss = criterion_((*model_)(Variable(b.inputs)), b.targets);
    opt_.zero_grad();
    loss.backward();
    opt_.step();
    if (first) first_ = loss.data().to(nn::Dtype::Float64);
    if (tail) {
      Tensor l = loss.data().to(nn::Dtype::Float64);
      if (tail_sum_.defined()) {
        nn::add_(tail_sum_, l);
      } else {
        tail_sum_ = l;
      }
    }
    ++it_;
  }
  void sync() override {
    if (device_.is_cuda()) nn::cuda::synchronize(device_.index);
  }
  double first_loss() override { return first_.defined() ? first_.item() : 0.0; }
  double tail_sum() override { return tail_sum_.defined() ? tail_sum_.item() : 0.0; }

 private:
  nn::Device device_;
  std::shared_ptr<nn::Sequential> model_;
  nn::data::DataLoader loader_;
  nn::data::DataLoader::Iterator it_;
  nn::Adam opt_;
  nn::CrossEntropyLoss criterion_;
  Tensor first_, tail_sum_;  // on the device: read once, after the clock stops
};

#if defined(NN_BENCH_WITH_LIBTORCH)
torch::nn::Sequential make_torch_cnn(const Options& o) {
  torch::nn::Sequential model;
  int64_t in = 1, hw = 28;
  for (int64_t width : kChannels) {
    model->push_back(
        torch::nn::Conv2d(torch::nn::Conv2dOptions(in, width, 3).padding(1).bias(!o.batch_norm)));
    if (o.batch_norm) model->push_back(torch::nn::BatchNorm2d(width));
    model->push_back(torch::nn::ReLU());
    model->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2)));
    in = width;
    hw /= 2;
  }
  model->push_back(torch::nn::Flatten());
  model->push_back(torch::nn::Linear(in * hw * hw, kHidden));
  model->push_back(torch::nn::ReLU());
  if (o.dropout > 0) model->push_back(torch::nn::Dropout(o.dropout));
  model->push_back(torch::nn::Linear(kHidden, 10));
  return model;
}

// A host float32 copy of one of our tensors as a torch tensor.
torch::Tensor to_torch(const Tensor& t) {
  Tensor host = t.to(nn::Device::cpu()).to(nn::Dtype::Float32).contiguous();
  std::vector<int64_t> sizes(host.shape().begin(), host.shape().end());
  return torch::from_blob(host.data<float>(), sizes, torch::kFloat32).clone();
}

// Copies our initial parameters into LibTorch's modules: both list them in the same order
// (per layer weight then bias, batch norm's gamma then beta), which the shapes confirm.
void copy_weights(nn::Sequential& ours, torch::nn::Sequential& theirs) {
  std::vector<Variable> src = ours.parameters();
  std::vector<torch::Tensor> dst = theirs->parameters();
  NN_CHECK(src.size() == dst.size(), ValueError, "bench_cnn_epoch: libnn_cuda's model has ",
           src.size(), " parameters, LibTorch's ", dst.size());
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < src.size(); ++i) {
    torch::Tensor t = to_torch(src[i].data());
    NN_CHECK(t.sizes() == dst[i].sizes(), ShapeError, "bench_cnn_epoch: parameter ", i, " has ",
             t.numel(), " values here and ", dst[i].numel(),
             " in LibTorch (or another "
             "shape)");
    dst[i].copy_(t);
  }
}

// LibTorch from our model's initial weights, on our loader's epoch-0 order; the batch is
// assembled on the host, as our loader does, then moved to the device.
class TorchSide : public Side {
 public:
  TorchSide(const Options& o, const torch::Tensor& images, const torch::Tensor& labels,
            std::vector<int64_t> order, nn::Sequential* initial, int64_t max_steps)
      : device_(o.device.is_cuda() ? torch::Device(torch::kCUDA, o.device.index)
                                   : torch::Device(torch::kCPU)),
        images_(images),
        labels_(labels),
        order_(std::move(order)),
        batch_(o.batch),
        model_(make_torch_cnn(o)) {
    if (initial != nullptr) copy_weights(*initial, model_);
    model_->to(device_);
    opt_ =
        std::make_unique<torch::optim::Adam>(model_->parameters(), torch::optim::AdamOptions(1e-3));
    const int64_t batches = int64_t(order_.size()) / batch_;
    set_steps(max_steps > 0 ? std::min(max_steps, batches) : batches);
    model_->train();
    tail_sum_ = torch::zeros({}, torch::dtype(torch::kFloat64).device(device_));
  }

 protected:
  void step(bool first, bool tail) override {
    torch::Tensor idx = torch::from_blob(order_.data() + next_ * batch_, {batch_}, torch::kInt64);
    ++next_;
    torch::Tensor x = images_.index_select(0, idx).to(device_);
    torch::Tensor y = labels_.index_select(0, idx).to(device_);
    opt_->zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(model_->forward(x), y);
    loss.backward();
    opt_->step();
    if (first) first_ = loss.detach().to(torch::kFloat64);
    if (tail) tail_sum_ += loss.detach().to(torch::kFloat64);
  }
  void sync() override {
    if (device_.is_cuda()) torch::cuda::synchronize();
  }
  double first_loss() override { return first_.defined() ? first_.item<double>() : 0.0; }
  double tail_sum() override { return tail_sum_.item<double>(); }

 private:
  torch::Device device_;
  torch::Tensor images_, labels_;
  std::vector<int64_t> order_;
  int64_t batch_;
  int64_t next_ = 0;
  torch::nn::Sequential model_;
  std::unique_ptr<torch::optim::Adam> opt_;
  torch::Tensor first_, tail_sum_;
};

// The data as host torch tensors and our loader's epoch-0 order, for TorchSide.
struct TorchData {
  torch::Tensor images, labels;
  std::vector<int64_t> order;
};

TorchData torch_data(const Options& o, const Data& d) {
  TorchData t;
  t.images = to_torch(d.train->inputs());
  Tensor labels = d.train->targets().to(nn::Device::cpu()).contiguous();
  t.labels = torch::from_blob(labels.data<int64_t>(), {labels.size(0)}, torch::kInt64).clone();
  nn::data::DataLoader loader(d.train, loader_options(o));
  t.order = loader.order(0);
  return t;
}
#endif

std::string case_name(const Options& o, const EpochResult& r) {
  return std::string(o.batch_norm ? "cnn-bn" : "cnn") + "/b" + std::to_string(o.batch) + "/n" +
         std::to_string(r.steps * o.batch);
}

void print_json(const Options& o, const Data& d, const char* peer, const EpochResult& r) {
  std::printf(
      "{\"case\": \"%s\", \"peer\": \"%s\", \"device\": \"%s\", \"seconds\": %.6f, "
      "\"steps\": %lld, \"ms_per_step\": %.6f, \"first_loss\": %.6f, "
      "\"final_loss\": %.6f, \"threads\": %d, \"data\": \"%s\"}\n",
      case_name(o, r).c_str(), peer, o.device.str().c_str(), r.seconds, (long long)r.steps,
      1e3 * r.seconds / double(r.steps), r.first_loss, r.final_loss, o.threads, d.dir.c_str());
  std::fflush(stdout);
}

int64_t parse_count(const std::string& flag, const std::string& text, int64_t min) {
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  NN_CHECK(!text.empty() && end != nullptr && *end == '\0' && v >= min, ValueError,
           "bench_cnn_epoch: ", flag, " expects an integer >= ", min, ", got '", text, "'");
  return v;
}

int run(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      NN_CHECK(i + 1 < argc, ValueError, "bench_cnn_epoch: ", a, " needs a value");
      return argv[++i];
    };
    if (a == "--device") {
      o.device = nn::Device::parse(value());
    } else if (a == "--limit") {
      o.limit = parse_count(a, value(), 1);
    } else if (a == "--batch-size") {
      o.batch = parse_count(a, value(), 1);
    } else if (a == "--batch-norm") {
      o.batch_norm = true;
    } else if (a == "--dropout") {
      const std::string v = value();
      char* end = nullptr;
      o.dropout = std::strtod(v.c_str(), &end);
      NN_CHECK(end != nullptr && *end == '\0' && o.dropout >= 0 && o.dropout < 1, ValueError,
               "bench_cnn_epoch: --dropout expects a number in [0, 1), got '", v, "'");
    } else if (a == "--warmup") {
      o.warmup = int(parse_count(a, value(), 0));
    } else if (a == "--seed") {
      o.seed = uint64_t(parse_count(a, value(), 0));
    } else if (a == "--interleave") {
      o.interleave = parse_count(a, value(), 0);
    } else if (a == "--threads") {
      o.threads = int(parse_count(a, value(), 1));
    } else if (a == "--data") {
      o.data = value();
    } else if (a == "--side") {
      const std::string v = value();
      NN_CHECK(v == "both" || v == "ours" || v == "libtorch", ValueError,
               "bench_cnn_epoch: --side expects both, ours or libtorch, got '", v, "'");
      o.ours = v != "libtorch";
      o.peer = v != "ours";
    } else if (a == "--json") {
      o.json = true;
    } else {
      NN_THROW(ValueError, "bench_cnn_epoch: unknown flag '", a,
               "' (--device cpu|cuda, --limit N, --batch-size N, --batch-norm, --dropout P, "
               "--warmup N, --seed N, --threads N, --interleave K, --data DIR, --side "
               "both|ours|libtorch, --json)");
    }
  }
  // Before any op: the CPU backend reads NN_NUM_THREADS once, at its first parallel loop.
  if (o.threads == 0) {
    const char* env = std::getenv("NN_NUM_THREADS");
    o.threads = env != nullptr && std::atoi(env) > 0
                    ? std::atoi(env)
                    : std::max(1, int(std::thread::hardware_concurrency()));
  }
  setenv("NN_NUM_THREADS", std::to_string(o.threads).c_str(), 1);
#if defined(NN_BENCH_WITH_LIBTORCH)
  torch::set_num_threads(o.threads);
#endif
  if (o.device.is_cuda()) nn::cuda::check_device(o.device, "bench_cnn_epoch --device");

  const Data d = load_data(o);
  nn::Generator gen(o.seed);
  auto model = make_cnn(o, gen);
  // The initial weights, kept for the peer before ours trains.
  nn::Generator copy_gen(o.seed);
  auto initial = make_cnn(o, copy_gen);

  if (!o.json) {
    std::printf(
        "CNN training epoch (%s, batch %lld, Adam) on %s, Fashion-MNIST from %s, %d "
        "CPU threads each\n\n",
        o.batch_norm ? "conv-BN-ReLU-pool x2, MLP head" : "conv-ReLU-pool x2, MLP head",
        (long long)o.batch, o.device.str().c_str(), d.dir.c_str(), o.threads);
    std::printf(
        "| side | case | steps | seconds | ms per step | first loss | final loss | "
        "peer / libnn_cuda |\n|---|---|---|---|---|---|---|---|\n");
  }
  bool ok = true;
  auto report = [&](const char* peer, const char* label, const EpochResult& r,
                    const EpochResult* ours) {
    if (o.json) {
      print_json(o, d, peer, r);
    } else {
      char ratio[32] = "";
      if (ours != nullptr) std::snprintf(ratio, sizeof ratio, "%.2fx", r.seconds / ours->seconds);
      std::printf("| %s | %s | %lld | %.3f | %.2f | %.4f | %.4f | %s |\n", label,
                  case_name(o, r).c_str(), (long long)r.steps, r.seconds,
                  1e3 * r.seconds / double(r.steps), r.first_loss, r.final_loss, ratio);
      std::fflush(stdout);
    }
    if (!learned(r)) {
      std::fprintf(stderr,
                   "bench_cnn_epoch: %s did not learn: final loss %.4f against a "
                   "first-step loss of %.4f\n",
                   label, r.final_loss, r.first_loss);
      ok = false;
    }
  };
  // The sides: a throw-away copy of each trains `warmup` steps first, then the timed ones.
  std::unique_ptr<Side> ours, peer;
  std::string peer_label;
  if (o.ours) {
    if (o.warmup > 0) {
      nn::Generator warm_gen(o.seed + 1000);
      NnSide(o, d, make_cnn(o, warm_gen), o.warmup).run(o.warmup);
    }
    ours = std::make_unique<NnSide>(o, d, model, 0);
  }
#if defined(NN_BENCH_WITH_LIBTORCH)
  if (o.peer && o.device.is_cuda() && !torch::cuda::is_available()) {
    std::fprintf(stderr, "bench_cnn_epoch: this LibTorch has no CUDA: no peer on %s\n",
                 o.device.str().c_str());
  } else if (o.peer) {
    torch::manual_seed(o.seed);
    const TorchData t = torch_data(o, d);
    if (o.warmup > 0) TorchSide(o, t.images, t.labels, t.order, nullptr, o.warmup).run(o.warmup);
    peer = std::make_unique<TorchSide>(o, t.images, t.labels, t.order, initial.get(), 0);
    peer_label = std::string("LibTorch ") + TORCH_VERSION;
  }
#else
  (void)initial;
  if (o.peer && !o.json) std::printf("(built without LibTorch: no peer in this run)\n");
#endif
  // Taking turns, each side's clock sees the same machine: on a shared CPU the load changes
  // over a run, and whichever side ran second would otherwise meet different neighbours.
  int64_t turn = o.interleave;
  if (turn < 0) turn = ours && peer && o.device.is_cpu() ? kCpuTurnSteps : 0;
  if (turn == 0) turn = std::numeric_limits<int64_t>::max();
  for (int64_t round = 0; (ours && ours->left() > 0) || (peer && peer->left() > 0); ++round) {
    Side* first = round % 2 == 0 ? ours.get() : peer.get();
    Side* second = round % 2 == 0 ? peer.get() : ours.get();
    if (first != nullptr) first->run(turn);
    if (second != nullptr) second->run(turn);
  }
  EpochResult ours_result;
  if (ours) {
    ours_result = ours->result();
    report("nn_cuda", "libnn_cuda", ours_result, nullptr);
  }
  if (peer) {
    const EpochResult r = peer->result();
    report("libtorch", peer_label.c_str(), r, ours ? &ours_result : nullptr);
    if (ours && !losses_agree(ours_result.final_loss, r.final_loss)) {
      std::fprintf(stderr,
                   "bench_cnn_epoch: final losses disagree: libnn_cuda %.4f, LibTorch "
                   "%.4f (from the same weights and batches)\n",
                   ours_result.final_loss, r.final_loss);
      ok = false;
    }
  }
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
