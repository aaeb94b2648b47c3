// Gradient-table rows for the fused neural-network ops (linear, cross_entropy, dropout) and the
// shape ops and views (tests/grad_table.h).
#include <numeric>

#include "tests/grad_table_util.h"

namespace nn::test {

namespace {

// ---- linear, cross_entropy, dropout -----------------------------------------------------------

// Trial t: activation t % 7, with a bias on even passes over the activations; x is 1-D, 2-D or
// 3-D. Pre-activations are kept 0.02 away from relu's kink (redrawn otherwise).
GradInstance linear_case(Rng& r, int trial) {
  const Activation act = all_activations()[size_t(trial % 7)];
  const bool has_bias = (trial / 7) % 2 == 0;
  const int64_t in = irand(r, 1, 5), out = irand(r, 1, 4);
  Shape xs = rand_shape(r, 0, 2);
  xs.push_back(in);
  Tensor x, w, b;
  for (int attempt = 0; attempt < 100; ++attempt) {
    x = uniform(r, xs, -2.0, 2.0);
    w = maybe_strided(r, uniform(r, {out, in}, -1.0, 1.0));
    b = has_bias ? uniform(r, {out}, -1.0, 1.0) : Tensor();
    std::vector<double> pre = linear(x, w, b).to_vector<double>();
    if (std::all_of(pre.begin(), pre.end(), [](double p) { return std::abs(p) > 0.02; })) break;
  }
  std::vector<Tensor> inputs = {x, w};
  if (has_bias) inputs.push_back(b);
  return instance(
      inputs,
      [act, has_bias](const Vars& v) {
        return linear(v[0], v[1], has_bias ? v[2] : Variable(), act);
      },
      std::string(activation_name(act)) + (has_bias ? " with bias" : " without bias"));
}

// Trial t: reduction t % 3, class weights on (t / 3) % 2, label smoothing on (t / 6) % 2, and
// ignored targets on (t / 12) % 2 (ignore_index -100, or a real class index, 1).
GradInstance cross_entropy_case(Rng& r, int trial) {
  static const Reduction kReductions[] = {Reduction::None, Reduction::Sum, Reduction::Mean};
  const Reduction reduction = kReductions[trial % 3];
  const bool weighted = (trial / 3) % 2 == 1, smoothing = (trial / 6) % 2 == 1,
             ignoring = (trial / 12) % 2 == 1;
  const int64_t n = irand(r, 1, 6), c = irand(r, 2, 5);
  const int64_t ignore_index = coin(r) ? -100 : 1;
  std::vector<int64_t> target(static_cast<size_t>(n));
  for (int64_t& y : target) y = irand(r, 0, c - 1);
  if (ignoring) {
    for (size_t i = 1; i < target.size(); ++i)
      if (coin(r)) target[i] = ignore_index;
  }
  if (target[0] == ignore_index) target[0] = 0;  // a mean over nothing would be NaN
  // The target and the class weights travel as constant inputs (the row can change device).
  std::vector<Tensor> inputs = {maybe_strided(r, uniform(r, {n, c}, -3.0, 3.0)),
                                from_vector(target, {n})};
  if (weighted) inputs.push_back(uniform(r, {c}, 0.5, 2.0));
  const double smoothing_value = smoothing ? 0.1 : 0.0;
  GradInstance g = instance(
      inputs,
      [=](const Vars& v) {
        CrossEntropyOptions o;
        if (weighted) o.weight = v[2].data();
        o.label_smoothing = smoothing_value;
        o.ignore_index = ignore_index;
        return cross_entropy(v[0], v[1].data(), o, reduction);
      },
      std::string("reduction ") +
          (reduction == Reduction::None  ? "none"
           : reduction == Reduction::Sum ? "sum"
                                         : "mean") +
          (weighted ? ", weights" : "") + (smoothing ? ", label smoothing" : "") +
          ", ignore_index " + std::to_string(ignore_index) + ", targets " + shape_str(target));
  g.options.differentiable.assign(inputs.size(), false);
  g.options.differentiable[0] = true;
  return g;
}

// Trial t: p in {0.3, 0.6, 1.0} in training, or evaluation (the identity). Every evaluation
// draws the mask from a fresh generator with the same seed, so f is a fixed function.
GradInstance dropout_case(Rng& r, int trial) {
  static const double kP[] = {0.3, 0.6, 1.0, 0.5};
  const double p = kP[trial % 4];
  const bool training = trial % 4 != 3;
  const uint64_t seed = r();
  return instance(
      {uniform(r, rand_shape(r, 0, 4), -2.0, 2.0)},
      [=](const Vars& v) {
        Generator gen(seed);
        return dropout(v[0], p, training, &gen);
      },
      "p " + std::to_string(p) + (training ? " training" : " evaluation"));
}

// ---- shapes -----------------------------------------------------------------------------------

int64_t rand_dim(Rng& r, int64_t rank) { return rank == 0 ? 0 : irand(r, -rank, rank - 1); }

// Joins the parts (each scaled differently, so a mix-up of gradients shows) along `dim`.
Variable scaled_cat(const Vars& parts, int64_t dim) {
  Vars scaled;
  for (size_t i = 0; i < parts.size(); ++i) scaled.push_back(mul(parts[i], double(i + 1)));
  return cat(scaled, dim);
}

GradRow shape_row(const std::string& name, const std::string& cover,
                  std::function<GradInstance(Rng&, int)> make, int trials = 6) {
  return {name, {cover}, std::move(make), trials};
}

void add_view_rows(std::vector<GradRow>& t) {
  t.push_back(shape_row("reshape", "reshape(Variable, Shape)", [](Rng& r, int trial) {
    const Shape s = rand_shape(r, 0, 4);
    Shape to = trial % 3 == 0 ? Shape{-1} : Shape(s.rbegin(), s.rend());
    if (trial % 3 == 2) to.insert(to.begin() + irand(r, 0, int64_t(to.size())), 1);
    return instance(
        {maybe_strided(r, uniform(r, s, -2.0, 2.0))},
        [to](const Vars& v) { return reshape(v[0], to); }, "to " + shape_str(to));
  }));
  t.push_back(shape_row("view", "view(Variable, Shape)", [](Rng& r, int) {
    const Shape s = rand_shape(r, 0, 4);
    const Shape to(s.rbegin(), s.rend());
    return instance(
        {uniform(r, s, -2.0, 2.0)}, [to](const Vars& v) { return view(v[0], to); },
        "to " + shape_str(to));
  }));
  t.push_back(shape_row("flatten", "flatten(Variable, int64_t, int64_t)", [](Rng& r, int) {
    const Shape s = rand_shape(r, 0, 4);
    const int64_t rank = std::max<int64_t>(int64_t(s.size()), 1);
    int64_t a = irand(r, 0, rank - 1), b = irand(r, 0, rank - 1);
    if (a > b) std::swap(a, b);
    const int64_t start = coin(r) ? a : a - rank, end = coin(r) ? b : b - rank;
    return instance(
        {maybe_strided(r, uniform(r, s, -2.0, 2.0))},
        [=](const Vars& v) { return flatten(v[0], start, end); },
        "start " + std::to_string(start) + " end " + std::to_string(end));
  }));
  t.push_back(shape_row("transpose", "transpose(Variable, int64_t, int64_t)", [](Rng& r, int) {
    const Shape s = rand_shape(r, 1, 4);
    const int64_t d0 = rand_dim(r, int64_t(s.size())), d1 = rand_dim(r, int64_t(s.size()));
    return instance(
        {uniform(r, s, -2.0, 2.0)}, [=](const Vars& v) { return transpose(v[0], d0, d1); },
        "dims " + std::to_string(d0) + ", " + std::to_string(d1));
  }));
  t.push_back(shape_row("permute", "permute(Variable, vector<int64_t>)", [](Rng& r, int) {
    const Shape s = rand_shape(r, 0, 4);
    std::vector<int64_t> perm(s.size());
    std::iota(perm.begin(), perm.end(), int64_t(0));
    std::shuffle(perm.begin(), perm.end(), r);
    return instance(
        {maybe_strided(r, uniform(r, s, -2.0, 2.0))},
        [perm](const Vars& v) { return permute(v[0], perm); }, "dims " + shape_str(perm));
  }));
  t.push_back(
      shape_row("slice", "slice(Variable, int64_t, int64_t, int64_t, int64_t)", [](Rng& r, int) {
        const Shape s = rand_shape(r, 1, 3, 6);
        const int64_t d = rand_dim(r, int64_t(s.size()));
        const int64_t n = s[size_t((d + int64_t(s.size())) % int64_t(s.size()))];
        const int64_t start = irand(r, -n, n - 1), end = irand(r, -n, n + 1);
        const int64_t step = irand(r, 1, 3);
        return instance(
            {maybe_strided(r, uniform(r, s, -2.0, 2.0))},
            [=](const Vars& v) { return slice(v[0], d, start, end, step); },
            "dim " + std::to_string(d) + " [" + std::to_string(start) + ":" + std::to_string(end) +
                ":" + std::to_string(step) + "]");
      }));
  t.push_back(shape_row("narrow", "narrow(Variable, int64_t, int64_t, int64_t)", [](Rng& r, int) {
    const Shape s = rand_shape(r, 1, 3, 6);
    const int64_t d = rand_dim(r, int64_t(s.size()));
    const int64_t n = s[size_t((d + int64_t(s.size())) % int64_t(s.size()))];
    const int64_t start = irand(r, 0, n - 1), length = irand(r, 0, n - start);
    return instance(
        {uniform(r, s, -2.0, 2.0)}, [=](const Vars& v) { return narrow(v[0], d, start, length); },
        "dim " + std::to_string(d) + " start " + std::to_string(start) + " length " +
            std::to_string(length));
  }));
  t.push_back(shape_row("select", "select(Variable, int64_t, int64_t)", [](Rng& r, int) {
    const Shape s = rand_shape(r, 1, 4);
    const int64_t d = rand_dim(r, int64_t(s.size()));
    const int64_t n = s[size_t((d + int64_t(s.size())) % int64_t(s.size()))];
    const int64_t index = irand(r, -n, n - 1);
    return instance(
        {maybe_strided(r, uniform(r, s, -2.0, 2.0))},
        [=](const Vars& v) { return select(v[0], d, index); },
        "dim " + std::to_string(d) + " index " + std::to_string(index));
  }));
  t.push_back(shape_row("squeeze", "squeeze(Variable, int64_t)", [](Rng& r, int) {
    Shape s = rand_shape(r, 1, 4);
    const int64_t d = rand_dim(r, int64_t(s.size()));
    if (coin(r)) s[size_t((d + int64_t(s.size())) % int64_t(s.size()))] = 1;
    return instance(
        {uniform(r, s, -2.0, 2.0)}, [d](const Vars& v) { return squeeze(v[0], d); },
        "dim " + std::to_string(d));
  }));
  t.push_back(shape_row("unsqueeze", "unsqueeze(Variable, int64_t)", [](Rng& r, int) {
    const Shape s = rand_shape(r, 0, 3);
    const int64_t rank = int64_t(s.size()) + 1;
    const int64_t d = irand(r, -rank, rank - 1);
    return instance(
        {maybe_strided(r, uniform(r, s, -2.0, 2.0))},
        [d](const Vars& v) { return unsqueeze(v[0], d); }, "dim " + std::to_string(d));
  }));
  t.push_back(shape_row("expand", "expand(Variable, Shape)", [](Rng& r, int) {
    const Shape full = rand_shape(r, 0, 4);
    const Shape s = broadcast_of(r, full);
    Shape to = full;
    const size_t lead = full.size() - s.size();
    for (size_t i = 0; i < s.size(); ++i)
      if (s[i] == full[lead + i] && coin(r)) to[lead + i] = -1;  // keep this size
    return instance(
        {uniform(r, s, -2.0, 2.0)}, [to](const Vars& v) { return expand(v[0], to); },
        "to " + shape_str(to));
  }));
  t.push_back(shape_row("contiguous", "contiguous(Variable)", [](Rng& r, int) {
    return instance({maybe_strided(r, uniform(r, rand_shape(r, 0, 4), -2.0, 2.0))},
                    [](const Vars& v) { return contiguous(mul(v[0], 1.5)); });
  }));
  // Through float32 and back: the finite difference must step over float32's rounding, hence
  // a wide step and tolerance.
  t.push_back(shape_row("to_dtype", "to(Variable, Dtype)", [](Rng& r, int trial) {
    const bool via_float32 = trial % 2 == 0;
    GradInstance g = instance(
        {uniform(r, rand_shape(r, 0, 4), -2.0, 2.0)},
        [via_float32](const Vars& v) {
          return via_float32 ? to(mul(to(v[0], Dtype::Float32), 3.0), Dtype::Float64)
                             : to(v[0], Dtype::Float64);
        },
        via_float32 ? "via float32" : "float64 to float64");
    g.options.eps = 1e-2;
    g.options.rtol = 1e-4;
    g.options.atol = 1e-4;
    return g;
  }));
  t.push_back(shape_row("to_device", "to(Variable, Device)", [](Rng& r, int) {
    return instance({uniform(r, rand_shape(r, 0, 4), -2.0, 2.0)},
                    [](const Vars& v) { return to(mul(v[0], 2.0), Device::cpu()); });
  }));
}

void add_join_rows(std::vector<GradRow>& t) {
  t.push_back(shape_row("cat", "cat(vector<Variable>, int64_t)", [](Rng& r, int) {
    Shape s = rand_shape(r, 1, 3);
    const int64_t d = rand_dim(r, int64_t(s.size()));
    const size_t axis = size_t((d + int64_t(s.size())) % int64_t(s.size()));
    const int64_t k = irand(r, 1, 4);
    std::vector<Tensor> xs;
    for (int64_t i = 0; i < k; ++i) {
      s[axis] = irand(r, 0, 3);  // empty parts too
      xs.push_back(maybe_strided(r, uniform(r, s, -2.0, 2.0)));
    }
    GradInstance g = instance(
        xs, [d](const Vars& v) { return scaled_cat(v, d); }, "dim " + std::to_string(d));
    // One part a constant: it must get no gradient and not disturb the others.
    if (k > 1 && coin(r)) {
      g.options.differentiable.assign(size_t(k), true);
      g.options.differentiable[size_t(irand(r, 0, k - 1))] = false;
      g.desc += ", one part constant";
    }
    return g;
  }));
  t.push_back(shape_row("stack", "stack(vector<Variable>, int64_t)", [](Rng& r, int) {
    const Shape s = rand_shape(r, 0, 3);
    const int64_t rank = int64_t(s.size()) + 1;
    const int64_t d = irand(r, -rank, rank - 1);
    std::vector<Tensor> xs;
    for (int64_t i = 0, k = irand(r, 1, 4); i < k; ++i) xs.push_back(uniform(r, s, -2.0, 2.0));
    return instance(
        xs,
        [d](const Vars& v) {
          Vars scaled;
          for (size_t i = 0; i < v.size(); ++i) scaled.push_back(mul(v[i], double(i + 1)));
          return stack(scaled, d);
        },
        "dim " + std::to_string(d));
  }));
  t.push_back(shape_row("chunk", "chunk(Variable, int64_t, int64_t)", [](Rng& r, int) {
    const Shape s = rand_shape(r, 1, 3, 7);
    const int64_t d = rand_dim(r, int64_t(s.size()));
    const int64_t chunks = irand(r, 1, 4);
    return instance(
        {maybe_strided(r, uniform(r, s, -2.0, 2.0))},
        [=](const Vars& v) { return scaled_cat(chunk(v[0], chunks, d), d); },
        "dim " + std::to_string(d) + " chunks " + std::to_string(chunks));
  }));
  t.push_back(shape_row("split", "split(Variable, vector<int64_t>, int64_t)", [](Rng& r, int) {
    const Shape s = rand_shape(r, 1, 3, 7);
    const int64_t d = rand_dim(r, int64_t(s.size()));
    int64_t left = s[size_t((d + int64_t(s.size())) % int64_t(s.size()))];
    std::vector<int64_t> sizes;
    while (left > 0) {
      sizes.push_back(irand(r, 0, left));
      left -= sizes.back();
    }
    return instance(
        {uniform(r, s, -2.0, 2.0)},
        [=](const Vars& v) { return scaled_cat(split(v[0], sizes, d), d); },
        "dim " + std::to_string(d) + " sizes " + shape_str(sizes));
  }));
}

}  // namespace

void add_nn_rows(std::vector<GradRow>& t) {
  t.push_back({"linear", {"linear(Variable, Variable, Variable, Activation)"}, linear_case, 28});
  t.push_back({"cross_entropy",
               {"cross_entropy(Variable, Tensor, CrossEntropyOptions, Reduction)"},
               cross_entropy_case,
               24});
  t.push_back({"dropout", {"dropout(Variable, double, bool, Generator*)"}, dropout_case, 8});
}

void add_shape_rows(std::vector<GradRow>& t) {
  add_view_rows(t);
  add_join_rows(t);
}

}  // namespace nn::test
