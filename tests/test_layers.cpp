// Modules and layers: registration and naming, modes, devices and dtypes, state dicts and
// checkpoint files, Linear, Sequential's fusion, activation modules, Dropout, Flatten,
// initialisers and printing; float64 gradient checks of every layer, inputs and parameters.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "graph/functions.h"
#include "layers/activation.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/init.h"
#include "layers/linear.h"
#include "layers/module.h"
#include "layers/sequential.h"
#include "tests/grad_check.h"
#include "tests/op_harness.h"

namespace nn {
namespace {

using test::ErrKind;
using test::expect_error;
using test::grad_check;
using test::param_grad_check;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr TensorOptions kF64 = {Dtype::Float64};

// float64 CPU values in +-[0.2, 2]: away from the kinks of relu, leaky_relu and abs.
Tensor away_from_zero(const Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> mag(0.2, 2.0);
  std::vector<double> v(size_t(shape_numel(shape)));
  for (double& x : v) x = (rng() & 1u) ? mag(rng) : -mag(rng);
  return from_vector<double>(v, shape);
}

std::vector<double> values(const Variable& v) { return v.data().to_vector<double>(); }

void expect_near_all(const std::vector<double>& got, const std::vector<double>& want, double tol,
                     const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], tol * (1.0 + std::abs(want[i]))) << what << " at " << i;
  }
}

// A user-defined module with a nested Sequential, a buffer and a bias-free layer.
class Net : public Module {
 public:
  explicit Net(uint64_t seed) {
    Generator gen(seed);
    fc1 = register_module(
        "fc1", std::make_shared<Linear>(4, 3, true, Activation::None, TensorOptions{}, &gen));
    body = register_module(
        "body",
        std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
            std::make_shared<ReLU>(),
            std::make_shared<Linear>(3, 2, false, Activation::None, TensorOptions{}, &gen)}));
    register_buffer("steps", zeros({1}, {Dtype::Int64}));
    register_buffer("scale", ones({2}));
  }
  Variable forward(const Variable& x) override { return (*body)((*fc1)(x)); }
  std::shared_ptr<Linear> fc1;
  std::shared_ptr<Sequential> body;
};

std::vector<std::string> names_of(const std::vector<std::pair<std::string, Variable>>& v) {
  std::vector<std::string> out;
  for (const auto& e : v) out.push_back(e.first);
  return out;
}

// ---- registration, traversal, modes ----------------------------------------------------------

TEST(Module, NamesFollowRegistrationOrderAndNesting) {
  Net net(1);
  EXPECT_THAT(names_of(net.named_parameters()),
              ElementsAre("fc1.weight", "fc1.bias", "body.1.weight"));
  EXPECT_EQ(net.parameters().size(), 3u);
  std::vector<std::string> buffers;
  for (auto& [name, t] : net.named_buffers()) buffers.push_back(name);
  EXPECT_THAT(buffers, ElementsAre("steps", "scale"));
  std::vector<std::string> modules;
  for (auto& [name, m] : net.named_modules()) modules.push_back(name);
  EXPECT_THAT(modules, ElementsAre("", "fc1", "body", "body.0", "body.1"));
  EXPECT_EQ(net.named_modules()[0].second.get(), &net);
  EXPECT_EQ(net.children().size(), 2u);
  EXPECT_EQ(net.children()[1].get(), net.body.get());

  Sequential seq{std::make_shared<Linear>(2, 2), std::make_shared<Tanh>(),
                 std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
                     std::make_shared<Linear>(2, 3), std::make_shared<Linear>(3, 1)})};
  EXPECT_THAT(names_of(seq.named_parameters()), ElementsAre("0.weight", "0.bias", "2.0.weight",
                                                            "2.0.bias", "2.1.weight", "2.1.bias"));
  Sequential named({{"enc", std::make_shared<Linear>(2, 2)}, {"act", std::make_shared<ReLU>()}});
  EXPECT_THAT(names_of(named.named_parameters()), ElementsAre("enc.weight", "enc.bias"));
  EXPECT_EQ(named.at<ReLU>(1)->name(), "ReLU");
  expect_error(
      ErrKind::Value, "Sequential", [&] { named.at<Linear>(1); }, "at<> of a ReLU");
  expect_error(
      ErrKind::Index, "Sequential", [&] { named[2]; }, "index past the end");
}

TEST(Module, RejectsBadNames) {
  Module m;
  m.register_parameter("w", zeros({2}));
  expect_error(
      ErrKind::Value, "already", [&] { m.register_buffer("w", zeros({1})); }, "dup");
  expect_error(
      ErrKind::Value, "'.'", [&] { m.register_parameter("a.b", zeros({1})); }, "dot");
  expect_error(
      ErrKind::Value, "empty", [&] { m.register_module("", std::make_shared<ReLU>()); }, "empty");
  expect_error(
      ErrKind::Value, "forward", [&] { m.forward(Variable(zeros({1}))); }, "base forward");
}

TEST(Module, SharedParameterListedOnceButSavedUnderEachPath) {
  Module m;
  auto lin = std::make_shared<Linear>(2, 2);
  m.register_module("a", lin);
  m.register_module("b", lin);
  EXPECT_THAT(names_of(m.named_parameters()), ElementsAre("a.weight", "a.bias"));
  EXPECT_EQ(m.state_dict().size(), 4u);
}

TEST(Module, TrainAndEvalReachEveryDescendant) {
  Net net(1);
  EXPECT_TRUE(net.is_training());
  net.eval();
  for (auto& [name, m] : net.named_modules()) EXPECT_FALSE(m->is_training()) << name;
  net.body->train();
  EXPECT_FALSE(net.is_training());
  EXPECT_TRUE(net.body->at<ReLU>(0)->is_training());
  net.train();
  for (auto& [name, m] : net.named_modules()) EXPECT_TRUE(m->is_training()) << name;

  // A Dropout deep inside a model follows the model's mode.
  Sequential seq{std::make_shared<Sequential>(
      std::initializer_list<std::shared_ptr<Module>>{std::make_shared<Dropout>(0.5, 3)})};
  const Tensor x = away_from_zero({20, 20}, 1);
  EXPECT_NE(values(seq(Variable(x))), x.to_vector<double>());
  seq.eval();
  EXPECT_EQ(values(seq(Variable(x))), x.to_vector<double>());
}

TEST(Module, ZeroGradToNoneOrToZerosInPlace) {
  Net net(2);
  sum(net(Variable(ones({5, 4})))).backward();
  for (auto& p : net.parameters()) ASSERT_TRUE(p.grad().defined());
  const void* buffer = net.fc1->weight().grad().data_ptr();
  net.zero_grad(false);
  EXPECT_EQ(net.fc1->weight().grad().data_ptr(), buffer);
  for (auto& p : net.parameters()) {
    for (double g : p.grad().to_vector<double>()) EXPECT_EQ(g, 0.0);
  }
  net.zero_grad();
  for (auto& p : net.parameters()) EXPECT_FALSE(p.grad().defined());
}

TEST(Module, ToDtypeKeepsVariableHandlesAndConvertsGrads) {
  Net net(3);
  std::vector<Variable> held = net.parameters();  // what an optimizer would keep
  sum(net(Variable(ones({2, 4})))).backward();
  const std::vector<double> w_before = values(held[0]);
  net.to(Dtype::Float64);
  for (size_t i = 0; i < held.size(); ++i) {
    EXPECT_TRUE(held[i].same(net.parameters()[i]));
    EXPECT_EQ(held[i].dtype(), Dtype::Float64);
    EXPECT_TRUE(held[i].requires_grad());
    ASSERT_TRUE(held[i].grad().defined());
    EXPECT_EQ(held[i].grad().dtype(), Dtype::Float64);
  }
  EXPECT_EQ(values(held[0]), w_before);  // float32 -> float64 is exact
  for (auto& [name, t] : net.named_buffers()) {
    EXPECT_EQ(t.dtype(), name == "steps" ? Dtype::Int64 : Dtype::Float64) << name;
  }
  Variable y = net(Variable(ones({2, 4}, kF64)));
  EXPECT_EQ(y.dtype(), Dtype::Float64);
  expect_error(
      ErrKind::Dtype, "int64", [&] { net.to(Dtype::Int64); }, "to(int64)");

  net.to(Device::cpu());  // already there: nothing changes
  EXPECT_TRUE(held[0].same(net.fc1->weight()));
  if (!cuda::available()) {
    expect_error(
        ErrKind::Device, "cuda", [&] { net.to(Device::cuda()); }, "to(cuda) w/o GPU");
  }
}

// ---- state dicts and files -------------------------------------------------------------------

TEST(StateDict, RoundTripMakesTwoModelsAgree) {
  Net a(10), b(20);
  const Tensor x = randn({3, 4});
  EXPECT_NE(values(a(Variable(x))), values(b(Variable(x))));
  StateDict sd = a.state_dict();
  std::vector<std::string> names;
  for (auto& [name, t] : sd) names.push_back(name);
  // A module's own parameters and buffers come before its children's.
  EXPECT_THAT(names, ElementsAre("steps", "scale", "fc1.weight", "fc1.bias", "body.1.weight"));
  // The entries are the module's own tensors, not copies.
  EXPECT_EQ(sd[2].second.data_ptr(), a.fc1->weight().data().data_ptr());

  fill_(a.named_buffers()[1].second, 3.0);
  const LoadReport report = b.load_state_dict(a.state_dict());
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(values(a(Variable(x))), values(b(Variable(x))));
  EXPECT_THAT(b.named_buffers()[1].second.to_vector<float>(), ElementsAre(3.0f, 3.0f));
  // Loading copies: b's parameters are still its own.
  EXPECT_NE(b.fc1->weight().data().data_ptr(), a.fc1->weight().data().data_ptr());
}

TEST(StateDict, StrictLoadReportsEveryProblemInOneMessage) {
  Net net(1);
  StateDict sd = net.state_dict();
  StateDict bad;
  for (auto& [name, t] : sd) {
    if (name == "fc1.weight") {
      bad.emplace_back(name, zeros({5, 4}));
    } else if (name != "body.1.weight" && name != "scale") {
      bad.emplace_back(name, zeros_like(t));
    }
  }
  bad.emplace_back("fc3.weight", zeros({1}));
  bad.emplace_back("extra", zeros({1}));
  const std::vector<double> before = values(net.fc1->bias());
  try {
    net.load_state_dict(bad);
    FAIL() << "no error";
  } catch (const ValueError& e) {
    const std::string msg = e.what();
    EXPECT_THAT(msg, HasSubstr("load_state_dict"));
    EXPECT_THAT(msg, HasSubstr("missing: scale, body.1.weight"));
    EXPECT_THAT(msg, HasSubstr("unexpected: fc3.weight, extra"));
    EXPECT_THAT(
        msg, HasSubstr("shape mismatch: fc1.weight is [3, 4] in the module, [5, 4] in the state"));
  }
  EXPECT_EQ(values(net.fc1->bias()), before);  // nothing was copied

  StateDict twice = net.state_dict();
  twice.push_back(twice[0]);
  expect_error(
      ErrKind::Value, "given twice: steps", [&] { net.load_state_dict(twice); }, "duplicate");
}

TEST(StateDict, NonStrictLoadsWhatMatchesAndReports) {
  Net a(1), b(2);
  StateDict sd = a.state_dict();
  std::erase_if(sd, [](const auto& e) { return e.first == "fc1.bias"; });
  sd.emplace_back("head.weight", zeros({2}));
  const std::vector<double> b_bias = values(b.fc1->bias());
  const LoadReport report = b.load_state_dict(sd, false);
  EXPECT_THAT(report.missing, ElementsAre("fc1.bias"));
  EXPECT_THAT(report.unexpected, ElementsAre("head.weight"));
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(values(b.fc1->weight()), values(a.fc1->weight()));
  EXPECT_EQ(values(b.fc1->bias()), b_bias);
  expect_error(
      ErrKind::Value, "missing: fc1.bias; unexpected: head.weight", [&] { b.load_state_dict(sd); },
      "strict");
  // A shape mismatch is an error even when not strict.
  for (auto& [name, t] : sd) {
    if (name == "fc1.weight") t = zeros({1, 4});
  }
  expect_error(
      ErrKind::Value, "shape mismatch", [&] { b.load_state_dict(sd, false); },
      "non-strict mismatch");
}

class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ =
        std::filesystem::temp_directory_path() / ("nn_test_layers_" + std::string(info->name()) +
                                                  "_" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

TEST(StateDict, SaveAndLoadThroughAFile) {
  TempDir dir;
  const std::string path = dir.file("net.safetensors");
  Net a(5), b(6);
  a.save(path);
  EXPECT_TRUE(b.load(path).ok());
  const Tensor x = randn({2, 4});
  EXPECT_EQ(values(a(Variable(x))), values(b(Variable(x))));

  Sequential other{std::make_shared<Linear>(4, 3)};
  expect_error(
      ErrKind::Value, "missing: 0.weight, 0.bias; unexpected: steps", [&] { other.load(path); },
      "wrong model");
  const LoadReport r = other.load(path, false);  // "0.weight" etc. are missing, all of a's extra
  EXPECT_THAT(r.missing, ElementsAre("0.weight", "0.bias"));
  EXPECT_EQ(r.unexpected.size(), 5u);

  const std::string small = dir.file("small.safetensors");
  Sequential(std::initializer_list<std::shared_ptr<Module>>{std::make_shared<Linear>(4, 3)})
      .save(small);
  Sequential wider{std::make_shared<Linear>(5, 3)};
  expect_error(
      ErrKind::Value, "shape mismatch: 0.weight is [3, 5] in the module, [3, 4] in the file",
      [&] { wider.load(small); }, "mis-shaped file");
}

TEST(StateDict, CorruptOrMissingFilesThrowNnErrors) {
  TempDir dir;
  Net net(1);
  const std::string garbage = dir.file("garbage.safetensors");
  std::ofstream(garbage, std::ios::binary) << "this is not a safetensors file at all";
  EXPECT_THROW(net.load(garbage), Error);

  const std::string truncated = dir.file("truncated.safetensors");
  net.save(truncated);
  std::filesystem::resize_file(truncated, std::filesystem::file_size(truncated) / 2);
  EXPECT_THROW(net.load(truncated), Error);
  EXPECT_THROW(net.load(dir.file("absent.safetensors")), Error);
}

// ---- Linear ----------------------------------------------------------------------------------

TEST(LinearLayer, ShapesInitialisationAndErrors) {
  Generator g1(7), g2(7);
  Linear a(5, 3, true, Activation::None, {}, &g1), b(5, 3, true, Activation::None, {}, &g2);
  EXPECT_EQ(a.weight().shape(), (Shape{3, 5}));
  EXPECT_EQ(a.bias().shape(), (Shape{3}));
  EXPECT_EQ(values(a.weight()), values(b.weight()));  // same seed, same weights
  const double bound = 1.0 / std::sqrt(5.0);
  for (double w : values(a.weight())) EXPECT_LE(std::abs(w), bound);
  for (double w : values(a.bias())) EXPECT_LE(std::abs(w), bound);

  EXPECT_EQ(a(Variable(randn({5}))).shape(), (Shape{3}));
  EXPECT_EQ(a(Variable(randn({4, 5}))).shape(), (Shape{4, 3}));
  EXPECT_EQ(a(Variable(randn({2, 4, 5}))).shape(), (Shape{2, 4, 3}));

  Linear nb(5, 3, false);
  EXPECT_FALSE(nb.bias().defined());
  EXPECT_EQ(nb.parameters().size(), 1u);
  Linear d(2, 2, true, Activation::None, {Dtype::Float64});
  EXPECT_EQ(d.weight().dtype(), Dtype::Float64);

  Linear big(512, 10);
  expect_error(
      ErrKind::Shape, "linear: input has 784 features, weight expects 512",
      [&] {
        big(Variable(randn({2, 784})));
      },
      "features");
  expect_error(
      ErrKind::Value, "Linear", [] { Linear(0, 3); }, "zero inputs");
  expect_error(
      ErrKind::Dtype, "Linear", [] { Linear(2, 3, true, Activation::None, {Dtype::Int64}); },
      "int64 weights");
}

TEST(LinearLayer, ComputesXWtPlusBThroughTheActivation) {
  Linear lin(3, 2, true, Activation::Tanh, kF64);
  const std::vector<double> w = values(lin.weight()), b = values(lin.bias());
  const std::vector<double> x = {0.5, -1.0, 2.0, 1.5, 0.25, -0.75};
  const std::vector<double> y = values(lin(Variable(from_vector<double>(x, {2, 3}))));
  for (int n = 0; n < 2; ++n) {
    for (int o = 0; o < 2; ++o) {
      double acc = b[size_t(o)];
      for (int i = 0; i < 3; ++i) acc += x[size_t(n * 3 + i)] * w[size_t(o * 3 + i)];
      EXPECT_NEAR(y[size_t(n * 2 + o)], std::tanh(acc), 1e-12);
    }
  }
}

const std::vector<Activation>& all_activations() {
  static const std::vector<Activation> kAll = {
      Activation::None, Activation::Relu, Activation::Gelu,   Activation::GeluTanh,
      Activation::Silu, Activation::Tanh, Activation::Sigmoid};
  return kAll;
}

TEST(LinearLayer, GradCheckEveryActivationRankAndBias) {
  const std::vector<Shape> shapes = {{4}, {3, 4}, {2, 3, 4}};
  uint32_t seed = 1;
  for (Activation act : all_activations()) {
    for (bool bias : {true, false}) {
      for (const Shape& shape : shapes) {
        Generator gen(seed);
        Linear lin(4, 3, bias, act, kF64, &gen);
        const std::string what = std::string("Linear ") + activation_name(act) +
                                 (bias ? " bias " : " no bias ") + shape_str(shape);
        const Tensor x = away_from_zero(shape, seed++);
        EXPECT_TRUE(
            grad_check(what, [&](const std::vector<Variable>& v) { return lin(v[0]); }, {x}));
        EXPECT_TRUE(param_grad_check(lin, [&] { return lin(Variable(x)); })) << what;
      }
    }
  }
}

// ---- Sequential fusion ------------------------------------------------------------------------

struct FusionCase {
  std::string label;
  std::function<std::shared_ptr<Module>()> make;
  std::optional<Activation> fused;  // nullopt: must not fuse
};

TEST(SequentialLayer, FusesLinearWithAFollowingActivationExactly) {
  const std::vector<FusionCase> cases = {
      {"ReLU", [] { return std::make_shared<ReLU>(); }, Activation::Relu},
      {"GELU", [] { return std::make_shared<GELU>(); }, Activation::Gelu},
      {"GELU tanh", [] { return std::make_shared<GELU>("tanh"); }, Activation::GeluTanh},
      {"SiLU", [] { return std::make_shared<SiLU>(); }, Activation::Silu},
      {"Tanh", [] { return std::make_shared<Tanh>(); }, Activation::Tanh},
      {"Sigmoid", [] { return std::make_shared<Sigmoid>(); }, Activation::Sigmoid},
      {"LeakyReLU", [] { return std::make_shared<LeakyReLU>(0.2); }, std::nullopt},
      {"Softplus", [] { return std::make_shared<Softplus>(); }, std::nullopt},
      {"Identity", [] { return std::make_shared<Identity>(); }, std::nullopt},
  };
  for (const auto& c : cases) {
    Generator gen(3);
    auto lin = std::make_shared<Linear>(4, 3, true, Activation::None, kF64, &gen);
    auto act = c.make();
    Sequential seq{lin, act};
    Variable x(away_from_zero({5, 4}, 11), true);
    Variable fused = seq(x);
    Variable plain = (*act)((*lin)(x));  // the unfused chain, by hand
    expect_near_all(values(fused), values(plain), 1e-14, c.label);
    const std::string expected_op =
        c.fused ? linear(x, lin->weight(), lin->bias(), *c.fused).op_name() : plain.op_name();
    EXPECT_STREQ(fused.op_name(), expected_op.c_str()) << c.label;
    if (c.fused) {
      EXPECT_STRNE(fused.op_name(), plain.op_name()) << c.label;
    }

    const Tensor w = randn(fused.shape(), kF64);
    auto grads_of = [&](const Variable& y) {
      return nn::grad({sum(y * Variable(w))}, {x, lin->weight(), lin->bias()});
    };
    const std::vector<Tensor> gf = grads_of(fused), gp = grads_of(plain);
    for (size_t i = 0; i < gf.size(); ++i) {
      expect_near_all(gf[i].to_vector<double>(), gp[i].to_vector<double>(), 1e-12,
                      c.label + " gradient " + std::to_string(i));
    }
  }
}

TEST(SequentialLayer, DoesNotFuseIntoALinearThatHasItsOwnActivation) {
  Generator gen(4);
  auto lin = std::make_shared<Linear>(3, 3, true, Activation::Tanh, kF64, &gen);
  Sequential seq{lin, std::make_shared<Sigmoid>()};
  Variable x(away_from_zero({2, 3}, 5), true);
  const Variable y = seq(x);
  EXPECT_EQ(values(y), values(sigmoid((*lin)(x))));
  EXPECT_STREQ(y.op_name(), sigmoid((*lin)(x)).op_name());
}

// ---- activations, Flatten, Dropout ----------------------------------------------------------

TEST(ActivationLayers, MatchTheirFunctionsAndPassGradCheck) {
  const std::vector<std::pair<std::shared_ptr<Module>, std::function<Variable(const Variable&)>>>
      cases = {
          {std::make_shared<ReLU>(), [](const Variable& v) { return relu(v); }},
          {std::make_shared<LeakyReLU>(0.1), [](const Variable& v) { return leaky_relu(v, 0.1); }},
          {std::make_shared<Sigmoid>(), [](const Variable& v) { return sigmoid(v); }},
          {std::make_shared<Tanh>(), [](const Variable& v) { return tanh(v); }},
          {std::make_shared<GELU>(), [](const Variable& v) { return gelu(v, false); }},
          {std::make_shared<GELU>("tanh"), [](const Variable& v) { return gelu(v, true); }},
          {std::make_shared<SiLU>(), [](const Variable& v) { return silu(v); }},
          {std::make_shared<Softplus>(2.0, 3.0),
           [](const Variable& v) { return softplus(v, 2.0, 3.0); }},
          {std::make_shared<Identity>(), [](const Variable& v) { return v; }},
      };
  uint32_t seed = 40;
  for (const auto& [m, fn] : cases) {
    const Tensor x = away_from_zero({3, 5}, seed++);
    EXPECT_EQ(values((*m)(Variable(x))), values(fn(Variable(x)))) << m->name();
    EXPECT_TRUE(
        grad_check(m->name(), [&](const std::vector<Variable>& v) { return (*m)(v[0]); }, {x}));
    EXPECT_TRUE(m->parameters().empty());
  }
  // Identity's result is its input; LeakyReLU keeps a scaled negative part.
  EXPECT_THAT(values(LeakyReLU(0.5)(Variable(from_vector<double>({-2, 3}, {2})))),
              ElementsAre(-1.0, 3.0));
  expect_error(
      ErrKind::Value, "GELU", [] { GELU("fast"); }, "bad approximate");
  expect_error(
      ErrKind::Value, "Softplus", [] { Softplus(0.0); }, "beta 0");
}

TEST(FlattenLayer, MergesTheRequestedDimsAndPassesGradCheck) {
  const Tensor x = away_from_zero({2, 3, 4, 5}, 8);
  EXPECT_EQ(Flatten()(Variable(x)).shape(), (Shape{2, 60}));
  EXPECT_EQ(Flatten(0)(Variable(x)).shape(), (Shape{120}));
  EXPECT_EQ(Flatten(1, 2)(Variable(x)).shape(), (Shape{2, 12, 5}));
  EXPECT_EQ(Flatten(-3, -2)(Variable(x)).shape(), (Shape{2, 12, 5}));
  EXPECT_EQ(values(Flatten()(Variable(x))), x.to_vector<double>());
  Flatten f(1, 2);
  EXPECT_TRUE(grad_check("Flatten", [&](const std::vector<Variable>& v) { return f(v[0]); }, {x}));
  EXPECT_THROW(Flatten(5)(Variable(x)), IndexError);
}

TEST(DropoutLayer, EvalAndZeroPAreTheIdentity) {
  const Tensor x = away_from_zero({50, 40}, 3);
  Dropout d(0.4, 1);
  d.eval();
  EXPECT_EQ(values(d(Variable(x))), x.to_vector<double>());
  Dropout zero(0.0, 1);
  EXPECT_TRUE(zero.is_training());
  EXPECT_EQ(values(zero(Variable(x))), x.to_vector<double>());
  expect_error(
      ErrKind::Value, "Dropout", [] { Dropout(-0.1); }, "p < 0");
  expect_error(
      ErrKind::Value, "Dropout", [] { Dropout(1.5); }, "p > 1");
}

TEST(DropoutLayer, TrainingZeroesAboutPAndScalesTheRest) {
  const double p = 0.3;
  const Tensor x = away_from_zero({400, 500}, 4);
  Dropout d(p, 12345);
  const std::vector<double> in = x.to_vector<double>(), out = values(d(Variable(x)));
  int64_t zeroed = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    if (out[i] == 0.0) {
      ++zeroed;
    } else {
      EXPECT_NEAR(out[i], in[i] / (1 - p), 1e-15 * std::abs(in[i] / (1 - p))) << i;
    }
  }
  const double frac = double(zeroed) / double(in.size());
  EXPECT_NEAR(frac, p, 0.005);  // about 5 standard deviations for 200000 draws

  // Same seed: same mask; the next call draws a new one.
  Dropout same(p, 12345);
  EXPECT_EQ(values(same(Variable(x))), out);
  EXPECT_NE(values(same(Variable(x))), out);
  // Without a seed, manual_seed() makes construction reproducible.
  manual_seed(77);
  Dropout u1(p);
  manual_seed(77);
  Dropout u2(p);
  EXPECT_EQ(values(u1(Variable(x))), values(u2(Variable(x))));
  Dropout all(1.0, 5);
  for (double v : values(all(Variable(x)))) ASSERT_EQ(v, 0.0);
}

TEST(DropoutLayer, GradCheckWithAFixedMask) {
  Dropout d(0.5, 21);
  const Tensor x = away_from_zero({6, 7}, 9);
  EXPECT_TRUE(grad_check("Dropout",
                         [&](const std::vector<Variable>& v) {
                           d.generator().manual_seed(21);  // the same mask at every evaluation
                           return d(v[0]);
                         },
                         {x}));
  // Through a model with parameters: the gradient reaches them only through kept units.
  Generator gen(2);
  auto lin = std::make_shared<Linear>(7, 4, true, Activation::None, kF64, &gen);
  auto drop = std::make_shared<Dropout>(0.5, 33);
  Sequential seq{lin, std::make_shared<Tanh>(), drop};
  EXPECT_TRUE(param_grad_check(seq, [&] {
    drop->generator().manual_seed(33);
    return seq(Variable(x));
  }));
}

// ---- initialisers ----------------------------------------------------------------------------

struct Stats {
  double mean = 0, std = 0, max_abs = 0;
};
Stats stats_of(const Tensor& t) {
  const std::vector<double> v = t.to_vector<double>();
  Stats s;
  for (double x : v) s.mean += x;
  s.mean /= double(v.size());
  for (double x : v) {
    s.std += (x - s.mean) * (x - s.mean);
    s.max_abs = std::max(s.max_abs, std::abs(x));
  }
  s.std = std::sqrt(s.std / double(v.size() - 1));
  return s;
}

// mean ~ 0 and std within 2% of the formula (200000 draws: ~0.2% standard error for the std,
// 0.22% of std for the mean), and for uniform fills every value inside the bound.
void expect_stats(const Tensor& t, double want_std, double bound, const std::string& what) {
  const Stats s = stats_of(t);
  EXPECT_NEAR(s.mean, 0.0, 0.012 * want_std) << what;
  EXPECT_NEAR(s.std, want_std, 0.02 * want_std) << what;
  if (bound > 0) {
    EXPECT_LE(s.max_abs, bound) << what;
    EXPECT_GT(s.max_abs, 0.99 * bound) << what;  // the whole range is used
  }
}

TEST(ParamInit, GainsAndFans) {
  using init::Nonlinearity;
  EXPECT_EQ(init::calculate_gain(Nonlinearity::Linear), 1.0);
  EXPECT_EQ(init::calculate_gain(Nonlinearity::Conv2d), 1.0);
  EXPECT_EQ(init::calculate_gain(Nonlinearity::Sigmoid), 1.0);
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::Tanh), 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::Relu), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::LeakyRelu, 0.2), std::sqrt(2.0 / 1.04));
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::LeakyRelu), std::sqrt(2.0 / 1.0001));
  EXPECT_EQ(init::calculate_gain(Nonlinearity::Selu), 0.75);
  EXPECT_EQ(init::fan_in_and_fan_out(empty({3, 4, 5, 6})), (std::pair<int64_t, int64_t>{120, 90}));
  EXPECT_EQ(init::fan_in_and_fan_out(empty({7, 2})), (std::pair<int64_t, int64_t>{2, 7}));
  Tensor v = empty({5});
  expect_error(
      ErrKind::Value, "fan", [&] { init::xavier_uniform_(v); }, "1-D fans");
  Tensor i = zeros({3, 3}, {Dtype::Int64});
  expect_error(
      ErrKind::Dtype, "int64", [&] { init::normal_(i); }, "int64 fill");
}

TEST(ParamInit, EmpiricalStatisticsMatchTheFormulas) {
  const double sqrt3 = std::sqrt(3.0);
  for (Dtype dt : {Dtype::Float32, Dtype::Float64}) {
    const std::string d = dtype_name(dt);
    Tensor t = empty({400, 500}, {dt});  // fan_in 500, fan_out 400
    Generator gen(1);
    const double xa = 2.0 * std::sqrt(6.0 / 900.0);
    expect_stats(init::xavier_uniform_(t, 2.0, &gen), xa / sqrt3, xa, "xavier_uniform " + d);
    expect_stats(init::xavier_normal_(t, 0.5, &gen), 0.5 * std::sqrt(2.0 / 900.0), 0,
                 "xavier_normal " + d);
    const double ka = std::sqrt(2.0) * sqrt3 / std::sqrt(500.0);
    expect_stats(
        init::kaiming_uniform_(t, 0.0, init::FanMode::FanIn, init::Nonlinearity::LeakyRelu, &gen),
        ka / sqrt3, ka, "kaiming_uniform " + d);
    // PyTorch's Linear default: a = sqrt(5) gives the bound 1/sqrt(fan_in).
    expect_stats(init::kaiming_uniform_(t, std::sqrt(5.0), init::FanMode::FanIn,
                                        init::Nonlinearity::LeakyRelu, &gen),
                 1.0 / std::sqrt(500.0) / sqrt3, 1.0 / std::sqrt(500.0), "kaiming a=sqrt5 " + d);
    expect_stats(
        init::kaiming_normal_(t, 0.0, init::FanMode::FanOut, init::Nonlinearity::Tanh, &gen),
        (5.0 / 3.0) / std::sqrt(400.0), 0, "kaiming_normal fan_out " + d);
    Tensor conv = empty({64, 32, 10, 10}, {dt});  // fan_in 3200, fan_out 6400
    expect_stats(
        init::kaiming_normal_(conv, 0.0, init::FanMode::FanOut, init::Nonlinearity::Relu, &gen),
        std::sqrt(2.0 / 6400.0), 0, "kaiming_normal conv " + d);
    expect_stats(init::normal_(t, 0.0, 0.3, &gen), 0.3, 0, "normal " + d);
    expect_stats(init::uniform_(t, -0.5, 0.5, &gen), 0.5 / sqrt3, 0.5, "uniform " + d);
  }
  Tensor c = empty({2, 3});
  EXPECT_EQ(init::constant_(c, 1.5).to_vector<float>(), std::vector<float>(6, 1.5f));
  EXPECT_EQ(init::zeros_(c).to_vector<float>(), std::vector<float>(6, 0.0f));
  EXPECT_EQ(init::ones_(c).to_vector<float>(), std::vector<float>(6, 1.0f));
  // The same generator state gives the same values.
  Tensor a = empty({8, 8}), b = empty({8, 8});
  Generator g1(9), g2(9);
  EXPECT_EQ(init::xavier_normal_(a, 1.0, &g1).to_vector<float>(),
            init::xavier_normal_(b, 1.0, &g2).to_vector<float>());
}

// ---- printing --------------------------------------------------------------------------------

TEST(ModulePrinting, ModuleTreesPrintLikePyTorch) {
  Sequential seq{std::make_shared<Linear>(784, 256, true, Activation::Relu),
                 std::make_shared<Dropout>(0.2, 1),
                 std::make_shared<Linear>(256, 10, false),
                 std::make_shared<GELU>("tanh"),
                 std::make_shared<LeakyReLU>(0.01),
                 std::make_shared<Flatten>()};
  EXPECT_EQ(seq.str(),
            "Sequential(\n"
            "  (0): Linear(in_features=784, out_features=256, bias=true, activation=relu)\n"
            "  (1): Dropout(p=0.2)\n"
            "  (2): Linear(in_features=256, out_features=10, bias=false)\n"
            "  (3): GELU(approximate=tanh)\n"
            "  (4): LeakyReLU(negative_slope=0.01)\n"
            "  (5): Flatten(start_dim=1, end_dim=-1)\n"
            ")");
  Net net(1);
  std::ostringstream os;
  os << net;
  EXPECT_EQ(os.str(),
            "Net(\n"
            "  (fc1): Linear(in_features=4, out_features=3, bias=true)\n"
            "  (body): Sequential(\n"
            "    (0): ReLU()\n"
            "    (1): Linear(in_features=3, out_features=2, bias=false)\n"
            "  )\n"
            ")");
  EXPECT_EQ(Module().str(), "Module()");
}

}  // namespace
}  // namespace nn
