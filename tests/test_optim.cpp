// optim/: SGD, Adam, AdamW and RMSprop against update rules written out in this file (and a few
// numbers worked out by hand), parameter groups, skipped parameters, zero_grad, state dicts,
// gradient clipping and the L1/L2 penalties. Float64 on the CPU.
// Schedulers, early stopping, checkpoints and end-to-end fits: test_optim_training.cpp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "graph/functions.h"
#include "kernels/ops.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/regularization.h"
#include "optim/rmsprop.h"
#include "optim/sgd.h"
#include "tests/grad_check.h"
#include "tests/test_util.h"

namespace nn {
namespace {

using ::nn::test::message_of;

using ::testing::HasSubstr;
using Vec = std::vector<double>;

Variable param(const Vec& v, const Shape& shape) {
  return Variable(from_vector(v, shape, {Dtype::Float64}), /*requires_grad=*/true);
}
Variable param(const Vec& v) { return param(v, {int64_t(v.size())}); }
void set_grad(Variable& p, const Vec& g) {
  p.set_grad(from_vector(g, p.shape(), {Dtype::Float64}));
}
Vec values(const Variable& v) { return v.data().to_vector<double>(); }
Vec grad_values(const Variable& v) { return v.grad().to_vector<double>(); }

void expect_close(const Vec& got, const Vec& want, double rtol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], rtol * std::max(1.0, std::abs(want[i])))
        << what << " [" << i << "]";
}

// ---- the update rules, element by element (torch.optim's documented algorithms) -------------

enum class Kind { Sgd, Adam, AdamW, RMSprop };
struct Rule {
  Kind kind = Kind::Sgd;
  double lr = 0.1, wd = 0.0, momentum = 0.0, dampening = 0.0;
  bool nesterov = false;
  double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  bool amsgrad = false;
  double alpha = 0.99;
  bool centered = false, maximize = false;
};

struct RefParam {
  Vec p, buf, m, v, vmax, sq, gavg;
  int t = 0;
  explicit RefParam(Vec init)
      : p(std::move(init)),
        buf(p.size()),
        m(p.size()),
        v(p.size()),
        vmax(p.size()),
        sq(p.size()),
        gavg(p.size()) {}

  void step(const Rule& r, const Vec& grad) {
    ++t;
    for (size_t i = 0; i < p.size(); ++i) {
      double g = r.maximize ? -grad[i] : grad[i];
      double& x = p[i];
      if (r.kind == Kind::Sgd) {
        g += r.wd * x;
        if (r.momentum != 0.0) {
          buf[i] = t == 1 ? g : r.momentum * buf[i] + (1 - r.dampening) * g;
          g = r.nesterov ? g + r.momentum * buf[i] : buf[i];
        }
        x -= r.lr * g;
      } else if (r.kind == Kind::RMSprop) {
        g += r.wd * x;
        sq[i] = r.alpha * sq[i] + (1 - r.alpha) * g * g;
        double avg;
        if (r.centered) {
          gavg[i] = r.alpha * gavg[i] + (1 - r.alpha) * g;
          avg = std::sqrt(sq[i] - gavg[i] * gavg[i]) + r.eps;
        } else {
          avg = std::sqrt(sq[i]) + r.eps;
        }
        if (r.momentum > 0) {
          buf[i] = r.momentum * buf[i] + g / avg;
          x -= r.lr * buf[i];
        } else {
          x -= r.lr * g / avg;
        }
      } else {
        if (r.kind == Kind::AdamW)
          x *= 1 - r.lr * r.wd;
        else
          g += r.wd * x;
        m[i] = r.b1 * m[i] + (1 - r.b1) * g;
        v[i] = r.b2 * v[i] + (1 - r.b2) * g * g;
        vmax[i] = std::max(vmax[i], v[i]);
        const double vh = r.amsgrad ? vmax[i] : v[i];
        const double bc1 = 1 - std::pow(r.b1, t), bc2 = 1 - std::pow(r.b2, t);
        x -= r.lr / bc1 * m[i] / (std::sqrt(vh) / std::sqrt(bc2) + r.eps);
      }
    }
  }
};

struct OptCase {
  std::string name;
  Rule rule;
  std::function<std::unique_ptr<Optimizer>(std::vector<Variable>)> make;
};

std::vector<OptCase> opt_cases() {
  using P = std::vector<Variable>;
  std::vector<OptCase> c;
  auto sgd = [&](std::string n, SGDOptions o) {
    Rule r{Kind::Sgd, o.lr, o.weight_decay, o.momentum, o.dampening, o.nesterov};
    r.maximize = o.maximize;
    c.push_back({n, r, [o](P p) { return std::make_unique<SGD>(std::move(p), o); }});
  };
  sgd("sgd", {.lr = 0.1});
  sgd("sgd_momentum", {.lr = 0.1, .momentum = 0.9});
  sgd("sgd_dampening", {.lr = 0.1, .momentum = 0.9, .dampening = 0.5});
  sgd("sgd_nesterov", {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  sgd("sgd_weight_decay", {.lr = 0.1, .momentum = 0.5, .weight_decay = 0.1});
  sgd("sgd_maximize", {.lr = 0.1, .momentum = 0.9, .maximize = true});
  auto adam = [&](std::string n, AdamOptions o) {
    Rule r{Kind::Adam, o.lr, o.weight_decay};
    r.b1 = o.betas.first, r.b2 = o.betas.second, r.eps = o.eps, r.amsgrad = o.amsgrad;
    r.maximize = o.maximize;
    c.push_back({n, r, [o](P p) { return std::make_unique<Adam>(std::move(p), o); }});
  };
  adam("adam", {.lr = 0.01});
  adam("adam_betas_eps", {.lr = 0.01, .betas = {0.8, 0.9}, .eps = 1e-3});
  adam("adam_weight_decay", {.lr = 0.01, .weight_decay = 0.1});
  adam("adam_amsgrad", {.lr = 0.01, .betas = {0.9, 0.5}, .amsgrad = true});
  adam("adam_maximize", {.lr = 0.01, .maximize = true});
  auto adamw = [&](std::string n, AdamWOptions o) {
    Rule r{Kind::AdamW, o.lr, o.weight_decay};
    r.b1 = o.betas.first, r.b2 = o.betas.second, r.eps = o.eps, r.amsgrad = o.amsgrad;
    c.push_back({n, r, [o](P p) { return std::make_unique<AdamW>(std::move(p), o); }});
  };
  adamw("adamw", {.lr = 0.01, .weight_decay = 0.1});
  adamw("adamw_amsgrad", {.lr = 0.01, .betas = {0.9, 0.5}, .amsgrad = true});
  auto rms = [&](std::string n, RMSpropOptions o) {
    Rule r{Kind::RMSprop, o.lr, o.weight_decay, o.momentum};
    r.eps = o.eps, r.alpha = o.alpha, r.centered = o.centered, r.maximize = o.maximize;
    c.push_back({n, r, [o](P p) { return std::make_unique<RMSprop>(std::move(p), o); }});
  };
  rms("rmsprop", {.lr = 0.01});
  rms("rmsprop_momentum", {.lr = 0.01, .momentum = 0.9});
  rms("rmsprop_centered", {.lr = 0.01, .centered = true});
  rms("rmsprop_all",
      {.lr = 0.01, .alpha = 0.9, .weight_decay = 0.1, .momentum = 0.5, .centered = true});
  rms("rmsprop_maximize", {.lr = 0.01, .maximize = true});
  return c;
}

// Three steps of gradients for a [3] and a [2, 2] parameter; large first, then small, so
// AMSGrad's running maximum differs from the second moment.
const std::vector<Vec> kGradsA = {{2.0, -1.5, 0.5}, {0.1, 0.3, -0.4}, {-0.2, 0.05, 0.1}};
const std::vector<Vec> kGradsB = {
    {1.0, -3.0, 0.25, 2.0}, {-0.5, 0.2, 0.1, 0.05}, {0.3, -0.1, 0.2, -0.02}};

class EachOptimizer : public ::testing::TestWithParam<OptCase> {};

TEST_P(EachOptimizer, ThreeStepsMatchTheUpdateRule) {
  const OptCase& c = GetParam();
  Variable a = param({1.0, -2.0, 0.5});
  Variable b = param({0.3, -0.7, 1.2, 2.0}, {2, 2});
  RefParam ra(values(a)), rb(values(b));
  auto opt = c.make({a, b});
  for (size_t k = 0; k < kGradsA.size(); ++k) {
    set_grad(a, kGradsA[k]);
    set_grad(b, kGradsB[k]);
    opt->step();
    ra.step(c.rule, kGradsA[k]);
    rb.step(c.rule, kGradsB[k]);
    expect_close(values(a), ra.p, 1e-12, c.name + " a, step " + std::to_string(k + 1));
    expect_close(values(b), rb.p, 1e-12, c.name + " b, step " + std::to_string(k + 1));
  }
  EXPECT_EQ(opt->step_count(), 3);
  EXPECT_EQ(opt->param_step(0), 3);
}

TEST_P(EachOptimizer, StateDictRoundTripContinuesExactly) {
  const OptCase& c = GetParam();
  Variable a = param({1.0, -2.0, 0.5});
  auto opt = c.make({a});
  for (int k = 0; k < 2; ++k) {
    set_grad(a, kGradsA[k]);
    opt->step();
  }
  // A second optimizer over a copy of the parameter, restored from the first's state.
  Variable a2 = param(values(a));
  auto opt2 = c.make({a2});
  OptimizerStateDict state = opt->state_dict();
  for (auto& [name, t] : state.tensors) t = t.clone();  // a snapshot, not the live buffers
  opt2->load_state_dict(state);
  EXPECT_EQ(opt2->step_count(), 2);
  set_grad(a, kGradsA[2]);
  set_grad(a2, kGradsA[2]);
  opt->step();
  opt2->step();
  EXPECT_EQ(values(a), values(a2)) << c.name;
}

INSTANTIATE_TEST_SUITE_P(Optim, EachOptimizer, ::testing::ValuesIn(opt_cases()),
                         [](const auto& tp) { return tp.param.name; });

// ---- numbers worked out by hand ---------------------------------------------------------------

// p = 1, g = 0.5 on every step.
Vec two_steps(Optimizer& opt, Variable& p, const Vec& g = {0.5}) {
  Vec out;
  for (int k = 0; k < 2; ++k) {
    set_grad(p, g);
    opt.step();
    out.push_back(values(p)[0]);
  }
  return out;
}

TEST(OptimHandWorked, SgdMomentumDampeningNesterov) {
  {  // b = 0.5, p = 0.95; b = 0.9 * 0.5 + 0.5 = 0.95, p = 0.95 - 0.095
    Variable p = param({1.0});
    SGD opt({p}, 0.1, 0.9);
    expect_close(two_steps(opt, p), {0.95, 0.855}, 1e-15, "momentum");
  }
  {  // the first step ignores dampening: b = 0.5; then b = 0.45 + 0.5 * 0.5 = 0.7
    Variable p = param({1.0});
    SGD opt({p}, 0.1, 0.9, 0.5);
    expect_close(two_steps(opt, p), {0.95, 0.88}, 1e-15, "dampening");
  }
  {  // g + 0.9 b: 0.95 then 0.5 + 0.9 * 0.95 = 1.355
    Variable p = param({1.0});
    SGD opt({p}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
    expect_close(two_steps(opt, p), {0.905, 0.7695}, 1e-15, "nesterov");
  }
  {  // g = 0.5 + 0.1 p: 0.6 -> p = 0.94; 0.5 + 0.094 -> p = 0.94 - 0.0594
    Variable p = param({1.0});
    SGD opt({p}, {.lr = 0.1, .weight_decay = 0.1});
    expect_close(two_steps(opt, p), {0.94, 0.8806}, 1e-15, "weight decay");
  }
}

TEST(OptimHandWorked, AdamAdamWRmsprop) {
  {  // bias correction makes each of the first steps lr * g / |g| (eps aside)
    Variable p = param({1.0});
    Adam opt({p}, {.lr = 0.1});
    expect_close(two_steps(opt, p), {0.9, 0.8}, 1e-7, "adam");
  }
  {  // a zero gradient: AdamW only decays, p *= 1 - lr * wd
    Variable p = param({1.0});
    AdamW opt({p}, {.lr = 0.1, .weight_decay = 0.1});
    expect_close(two_steps(opt, p, {0.0}), {0.99, 0.9801}, 1e-15, "adamw");
  }
  {  // Adam's L2 decay goes through the moments: g = 0.1 p, a step of ~lr
    Variable p = param({1.0});
    Adam opt({p}, {.lr = 0.1, .weight_decay = 0.1});
    set_grad(p, {0.0});
    opt.step();
    EXPECT_NEAR(values(p)[0], 0.9, 1e-6);
  }
  {  // s = 0.01 * 0.25 = 0.0025, p = 1 - 0.01 * 0.5 / (0.05 + eps)
    Variable p = param({1.0});
    RMSprop opt({p}, {.lr = 0.01});
    set_grad(p, {0.5});
    opt.step();
    EXPECT_NEAR(values(p)[0], 1.0 - 0.005 / (0.05 + 1e-8), 1e-15);
  }
  {  // centered: a = 0.005, sqrt(0.0025 - 0.005^2) = 0.0497493718553310
    Variable p = param({1.0});
    RMSprop opt({p}, {.lr = 0.01, .centered = true});
    set_grad(p, {0.5});
    opt.step();
    EXPECT_NEAR(values(p)[0], 1.0 - 0.005 / (0.049749371855331 + 1e-8), 1e-14);
  }
}

// ---- groups, skipped parameters, zero_grad ----------------------------------------------------

TEST(Optim, ParametersWithoutGradAreSkipped) {
  Variable a = param({1.0, 2.0});
  Variable b = param({3.0});
  Adam opt({a, b}, {.lr = 0.1});
  set_grad(a, {0.5, -0.5});
  opt.step();
  EXPECT_EQ(values(b), Vec({3.0}));
  EXPECT_EQ(opt.param_step(0), 1);
  EXPECT_EQ(opt.param_step(1), 0);
  EXPECT_EQ(opt.state_dict().tensors.size(), 2u);  // a's exp_avg and exp_avg_sq only

  // b's first update is a first step (bias correction at t = 1) while a takes its second.
  RefParam ra({1.0, 2.0}), rb({3.0});
  const Rule rule{Kind::Adam, 0.1};
  ra.step(rule, {0.5, -0.5});
  set_grad(a, {0.25, 0.5});
  set_grad(b, {2.0});
  opt.step();
  ra.step(rule, {0.25, 0.5});
  rb.step(rule, {2.0});
  expect_close(values(a), ra.p, 1e-12, "a");
  expect_close(values(b), rb.p, 1e-12, "b");
  EXPECT_EQ(opt.param_step(0), 2);
  EXPECT_EQ(opt.param_step(1), 1);
}

TEST(Optim, GroupsHaveTheirOwnLearningRate) {
  Variable a = param({1.0});
  Variable b = param({1.0});
  SGD opt(std::vector<ParamGroup>{{.params = {a}}, {.params = {b}, .lr = 0.01}}, {.lr = 0.1});
  ASSERT_EQ(opt.num_groups(), 2u);
  EXPECT_EQ(opt.group_lr(0), 0.1);
  EXPECT_EQ(opt.group_lr(1), 0.01);
  set_grad(a, {1.0});
  set_grad(b, {1.0});
  opt.step();
  EXPECT_DOUBLE_EQ(values(a)[0], 0.9);
  EXPECT_DOUBLE_EQ(values(b)[0], 0.99);

  opt.set_lr(0.5);
  EXPECT_EQ(opt.group_lr(1), 0.5);
  opt.set_group_lr(0, 0.25);
  EXPECT_EQ(opt.lr(), 0.25);
  opt.hyper(1).momentum = 0.9;  // any hyper-parameter per group
  opt.step();
  EXPECT_DOUBLE_EQ(values(a)[0], 0.9 - 0.25);
  EXPECT_DOUBLE_EQ(values(b)[0], 0.99 - 0.5);

  Variable c = param({0.0});
  opt.add_param_group({.params = {c}, .lr = 2.0});
  set_grad(c, {1.0});
  opt.zero_grad();
  set_grad(c, {1.0});
  opt.step();
  EXPECT_DOUBLE_EQ(values(c)[0], -2.0);
  EXPECT_EQ(opt.parameters().size(), 3u);
}

TEST(Optim, ZeroGrad) {
  Variable a = param({1.0, 2.0});
  SGD opt({a}, 0.1);
  set_grad(a, {1.0, 1.0});
  const void* buffer = a.grad().data_ptr();
  opt.zero_grad(/*set_to_none=*/false);
  EXPECT_EQ(grad_values(a), Vec({0.0, 0.0}));
  EXPECT_EQ(a.grad().data_ptr(), buffer);
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
}

TEST(Optim, SteadyStateStepsKeepTheirBuffers) {
  Variable a = param({1.0, 2.0});
  Adam opt({a}, {.amsgrad = true});
  set_grad(a, {1.0, 1.0});
  opt.step();
  std::vector<const void*> before;
  for (auto& [n, t] : opt.state_dict().tensors) before.push_back(t.data_ptr());
  opt.step();
  std::vector<const void*> after;
  for (auto& [n, t] : opt.state_dict().tensors) after.push_back(t.data_ptr());
  EXPECT_EQ(before.size(), 3u);
  EXPECT_EQ(before, after);
}

TEST(Optim, StateFollowsAParameterConvertedAfterwards) {
  Variable a = param({1.0, 2.0});
  SGD opt({a}, {.lr = 0.1, .momentum = 0.9});
  set_grad(a, {1.0, 1.0});
  opt.step();  // momentum buffer {1, 1}, a = {0.9, 1.9}

  a.data() = a.data().to(Dtype::Float32);  // what Module::to(Dtype) does
  a.set_grad(ones({2}, {Dtype::Float32}));
  opt.step();  // buffer 0.9 + 1 = 1.9, a -= 0.19
  EXPECT_EQ(opt.state_dict().tensors[0].second.dtype(), Dtype::Float32);
  const std::vector<float> got = a.data().to_vector<float>();
  EXPECT_FLOAT_EQ(got[0], 0.71f);
  EXPECT_FLOAT_EQ(got[1], 1.71f);
}

TEST(Optim, BadHyperParametersAndParameters) {
  Variable a = param({1.0});
  EXPECT_THAT(message_of<ValueError>([&] { SGD({a}, -0.1); }), HasSubstr("learning rate"));
  EXPECT_THAT(message_of<ValueError>([&] { SGD({a}, {.lr = 0.1, .nesterov = true}); }),
              HasSubstr("Nesterov"));
  EXPECT_THROW(SGD({a}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}),
               ValueError);
  EXPECT_THROW(SGD({a}, {.momentum = -1.0}), ValueError);
  EXPECT_THAT(message_of<ValueError>([&] { Adam({a}, {.betas = {1.0, 0.9}}); }), HasSubstr("beta"));
  EXPECT_THROW(AdamW({a}, {.eps = -1.0}), ValueError);
  EXPECT_THROW(Adam({a}, {.weight_decay = -1.0}), ValueError);
  EXPECT_THROW(RMSprop({a}, {.alpha = 1.5}), ValueError);
  EXPECT_THAT(message_of<ValueError>([&] { Adam(std::vector<Variable>{}); }), HasSubstr("empty"));
  EXPECT_THAT(message_of<ValueError>([&] { SGD({a, a}, 0.1); }), HasSubstr("more than once"));
  Variable b = param({2.0});
  EXPECT_THROW(SGD(std::vector<ParamGroup>{{.params = {a}}, {.params = {a, b}}}, {}), ValueError);
  EXPECT_THAT(message_of<ValueError>([&] { SGD({mul(a, 2.0)}, 0.1); }), HasSubstr("leaf"));
  SGD opt({a}, 0.1);
  EXPECT_THROW(opt.set_lr(std::nan("")), ValueError);
  EXPECT_THROW(opt.group_lr(1), IndexError);
  Variable c = param({1.0, 2.0});
  SGD opt2({c}, 0.1);
  c.set_grad(from_vector(Vec{1.0, 2.0}, {2}));
  EXPECT_NO_THROW(opt2.step());
  opt2.hyper(0).lr = -1.0;  // validated by the next step
  EXPECT_THROW(opt2.step(), ValueError);
}

TEST(Optim, LoadStateDictRefusesAnotherOptimizerOrLayout) {
  Variable a = param({1.0, 2.0});
  Adam adam({a});
  set_grad(a, {1.0, 1.0});
  adam.step();
  const OptimizerStateDict state = adam.state_dict();

  Variable a2 = param({1.0, 2.0});
  SGD sgd({a2}, 0.1);
  EXPECT_THAT(message_of<ValueError>([&] { sgd.load_state_dict(state); }), HasSubstr("Adam"));
  Variable big = param({1.0, 2.0, 3.0});
  Adam other({big});
  EXPECT_THAT(message_of<ValueError>([&] { other.load_state_dict(state); }),
              HasSubstr("state.0.exp_avg"));
  Adam two({param({1.0, 2.0}), param({3.0})});
  EXPECT_THAT(message_of<ValueError>([&] { two.load_state_dict(state); }), HasSubstr("parameters"));
  OptimizerStateDict missing = state;
  missing.tensors.pop_back();
  Adam fresh({param({1.0, 2.0})});
  EXPECT_THAT(message_of<ValueError>([&] { fresh.load_state_dict(missing); }),
              HasSubstr("missing state.0.exp_avg_sq"));
  EXPECT_EQ(fresh.step_count(), 0);  // nothing changed
  OptimizerStateDict bad_number = state;
  bad_number.metadata["group.0.lr"] = "fast";
  EXPECT_THROW(fresh.load_state_dict(bad_number), ValueError);
  EXPECT_NO_THROW(fresh.load_state_dict(state));
  EXPECT_EQ(fresh.param_step(0), 1);
}

// ---- clipping --------------------------------------------------------------------------------

struct ClipFixture {
  Variable a = param({3.0, -4.0});
  Variable b = param({0.0, 0.0, 12.0});
  Variable none = param({1.0});  // no gradient: skipped
  std::vector<Variable> all{a, b, none};
  ClipFixture() {
    set_grad(a, {3.0, -4.0});
    set_grad(b, {0.0, 0.0, 12.0});
  }
};

TEST(Clip, GradNormTwoAndInfinity) {
  {
    ClipFixture f;  // sqrt(9 + 16 + 144) = 13
    Tensor norm = clip_grad_norm_(f.all, 6.5);
    EXPECT_EQ(norm.dim(), 0);
    EXPECT_DOUBLE_EQ(norm.item(), 13.0);
    const double c = 6.5 / (13.0 + 1e-6);
    expect_close(grad_values(f.a), {3.0 * c, -4.0 * c}, 1e-15, "a");
    expect_close(grad_values(f.b), {0.0, 0.0, 12.0 * c}, 1e-15, "b");
    EXPECT_FALSE(f.none.grad().defined());
  }
  {
    ClipFixture f;  // max |g| = 12
    Tensor norm = clip_grad_norm_(f.all, 6.0, INFINITY);
    EXPECT_DOUBLE_EQ(norm.item(), 12.0);
    const double c = 6.0 / (12.0 + 1e-6);
    expect_close(grad_values(f.b), {0.0, 0.0, 12.0 * c}, 1e-15, "b");
  }
  {
    ClipFixture f;
    EXPECT_DOUBLE_EQ(total_grad_norm(f.all, 1.0).item(), 19.0);
    EXPECT_NEAR(total_grad_norm(f.all, 3.0).item(), std::cbrt(27.0 + 64.0 + 1728.0), 1e-12);
  }
}

TEST(Clip, BelowTheMaximumNothingChanges) {
  ClipFixture f;
  EXPECT_DOUBLE_EQ(clip_grad_norm_(f.all, 13.5).item(), 13.0);
  EXPECT_EQ(grad_values(f.a), Vec({3.0, -4.0}));
  EXPECT_EQ(grad_values(f.b), Vec({0.0, 0.0, 12.0}));
  EXPECT_DOUBLE_EQ(clip_coefficient(total_grad_norm(f.all), INFINITY).item(), 1.0);
}

TEST(Clip, FusedIntoTheStepEqualsClippingFirst) {
  ClipFixture f, g;
  SGD fused({f.a, f.b}, {.lr = 0.1, .momentum = 0.9});
  SGD plain({g.a, g.b}, {.lr = 0.1, .momentum = 0.9});
  fused.step(clip_coefficient(total_grad_norm(f.all), 2.0));
  clip_grad_norm_(g.all, 2.0);
  plain.step();
  // optimizer_step takes the scale in float32 (kernels/nn_ops.h): agreement to float32 rounding.
  expect_close(values(f.a), values(g.a), 1e-7, "a");
  expect_close(values(f.b), values(g.b), 1e-7, "b");
}

TEST(Clip, ByValueAndErrors) {
  ClipFixture f;
  clip_grad_value_(f.all, 3.5);
  EXPECT_EQ(grad_values(f.a), Vec({3.0, -3.5}));
  EXPECT_EQ(grad_values(f.b), Vec({0.0, 0.0, 3.5}));
  EXPECT_THROW(clip_grad_value_(f.all, -1.0), ValueError);
  EXPECT_THROW(clip_grad_norm_(f.all, 1.0, 0.0), ValueError);
  EXPECT_THROW(clip_grad_norm_(f.all, 1.0, -2.0), ValueError);
  EXPECT_THROW(clip_grad_norm_(f.all, -1.0), ValueError);
  EXPECT_DOUBLE_EQ(clip_grad_norm_({f.none}, 1.0).item(), 0.0);  // no gradients at all
}

// ---- L1 / L2 penalties -----------------------------------------------------------------------

TEST(Penalty, ValuesAndGradients) {
  Variable a = param({1.0, -2.0});
  Variable b = param({3.0}, {1, 1});
  Variable l1 = l1_penalty({a, b}, 0.1);
  EXPECT_EQ(l1.dim(), 0);
  EXPECT_NEAR(l1.item(), 0.6, 1e-15);
  l1.backward();
  expect_close(grad_values(a), {0.1, -0.1}, 1e-15, "l1 a");
  expect_close(grad_values(b), {0.1}, 1e-15, "l1 b");
  a.zero_grad();
  b.zero_grad();
  Variable l2 = l2_penalty({a, b}, 0.1);  // 0.05 * (1 + 4 + 9)
  EXPECT_NEAR(l2.item(), 0.7, 1e-15);
  l2.backward();
  expect_close(grad_values(a), {0.1, -0.2}, 1e-15, "l2 a");
  expect_close(grad_values(b), {0.3}, 1e-15, "l2 b");
  EXPECT_THROW(l1_penalty({}, 0.1), ValueError);
  EXPECT_THROW(l2_penalty({a}, -0.1), ValueError);
}

TEST(Penalty, GradCheck) {
  auto inputs = std::vector<Tensor>{from_vector(Vec{0.7, -1.3, 2.1}, {3}),
                                    from_vector(Vec{-0.4, 0.9, 1.6, -2.2}, {2, 2})};
  EXPECT_TRUE(test::grad_check(
      "l1_penalty", [](const std::vector<Variable>& v) { return l1_penalty(v, 0.3); }, inputs));
  EXPECT_TRUE(test::grad_check(
      "l2_penalty", [](const std::vector<Variable>& v) { return l2_penalty(v, 0.3); }, inputs));
}

TEST(Penalty, L2MatchesSgdWeightDecay) {
  Variable a = param({1.0, -2.0});
  Variable b = param({1.0, -2.0});
  SGD with_penalty({a}, 0.1);
  SGD with_decay({b}, {.lr = 0.1, .weight_decay = 0.5});
  l2_penalty({a}, 0.5).backward();
  set_grad(b, {0.0, 0.0});
  with_penalty.step();
  with_decay.step();
  EXPECT_EQ(values(a), values(b));
}

}  // namespace
}  // namespace nn
