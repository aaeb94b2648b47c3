// nn_cuda.optim: SGD, Adam, AdamW, RMSprop (torch.optim's keywords), their parameter groups
// and state dicts; nn_cuda.optim.lr_scheduler; EarlyStopping; clipping and L1/L2 penalties.
//
// Optimizers are held by std::shared_ptr so that the live `param_groups` views (dict-like:
// opt.param_groups[0]["lr"] = 0.01 sets the rate) and schedulers keep them alive. The
// optimizer state dict is nn_cuda's own layout (optim/optimizer.h): {"tensors": {name: Tensor},
// "metadata": {key: str}}, with the tensors cloned so that later steps do not change it.
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "python/bind.h"

namespace nn::python {

namespace {

// ---- parameters and groups ------------------------------------------------------------------

std::vector<Variable> variable_list(py::handle params) {
  if (py::isinstance<Variable>(params)) return {params.cast<Variable>()};
  std::vector<Variable> out;
  for (py::handle p : py::iter(params)) out.push_back(p.cast<Variable>());
  return out;
}

bool is_key_of(OptimizerKind kind, const std::string& key) {
  if (key == "lr" || key == "weight_decay" || key == "maximize") return true;
  switch (kind) {
    case OptimizerKind::Sgd:
      return key == "momentum" || key == "dampening" || key == "nesterov";
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW:
      return key == "betas" || key == "eps" || key == "amsgrad";
    case OptimizerKind::RMSprop:
      return key == "alpha" || key == "eps" || key == "momentum" || key == "centered";
  }
  return false;
}

std::vector<std::string> keys_of(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::Sgd:
      return {"lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"};
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW:
      return {"lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"};
    case OptimizerKind::RMSprop:
      return {"lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize"};
  }
  return {};
}

py::object hyper_get(const Optimizer& opt, size_t g, const std::string& key) {
  const OptimizerHyper& h = opt.hyper(g);
  if (key == "params") return py::cast(opt.group_params(g));
  NN_CHECK(is_key_of(opt.kind(), key), ValueError, opt.name(), ": parameter groups have no '", key,
           "'");
  if (key == "lr") return py::float_(opt.group_lr(g));
  if (key == "weight_decay") return py::float_(h.weight_decay);
  if (key == "maximize") return py::bool_(h.maximize);
  if (key == "momentum") return py::float_(h.momentum);
  if (key == "dampening") return py::float_(h.dampening);
  if (key == "nesterov") return py::bool_(h.nesterov);
  if (key == "betas") return py::make_tuple(h.beta1, h.beta2);
  if (key == "eps") return py::float_(h.eps);
  if (key == "amsgrad") return py::bool_(h.amsgrad);
  if (key == "alpha") return py::float_(h.alpha);
  return py::bool_(h.centered);  // "centered"
}

// Sets one hyper-parameter of group g and checks the group's values (ValueError, nothing
// changed, when the new value is out of range).
void hyper_set(Optimizer& opt, size_t g, const std::string& key, py::handle value) {
  NN_CHECK(key != "params", ValueError, opt.name(),
           ": a group's 'params' cannot be replaced, use add_param_group");
  NN_CHECK(is_key_of(opt.kind(), key), ValueError, opt.name(), ": unknown option '", key,
           "' for a parameter group");
  if (key == "lr") {
    opt.set_group_lr(g, value.cast<double>());
    return;
  }
  OptimizerHyper h = opt.hyper(g);
  if (key == "weight_decay")
    h.weight_decay = value.cast<double>();
  else if (key == "maximize")
    h.maximize = value.cast<bool>();
  else if (key == "momentum")
    h.momentum = value.cast<double>();
  else if (key == "dampening")
    h.dampening = value.cast<double>();
  else if (key == "nesterov")
    h.nesterov = value.cast<bool>();
  else if (key == "betas") {
    auto betas = value.cast<std::pair<double, double>>();
    h.beta1 = betas.first;
    h.beta2 = betas.second;
  } else if (key == "eps")
    h.eps = value.cast<double>();
  else if (key == "amsgrad")
    h.amsgrad = value.cast<bool>();
  else if (key == "alpha")
    h.alpha = value.cast<double>();
  else if (key == "centered")
    h.centered = value.cast<bool>();
  detail::check_optimizer_hyper(opt.name(), h);
  opt.hyper(g) = h;
}

// A parameter-group dict split into what ParamGroup takes and the other per-group options.
struct GroupSpec {
  ParamGroup group;
  std::vector<std::pair<std::string, py::object>> extras;
};

GroupSpec group_from_dict(const py::dict& d) {
  NN_CHECK(d.contains("params"), ValueError, "optimizer: a parameter group needs 'params'");
  GroupSpec spec;
  for (auto item : d) {
    const auto key = item.first.cast<std::string>();
    py::handle v = item.second;
    if (key == "params")
      spec.group.params = variable_list(v);
    else if (key == "lr")
      spec.group.lr = v.cast<double>();
    else if (key == "weight_decay")
      spec.group.weight_decay = v.cast<double>();
    else if (key == "momentum")
      spec.group.momentum = v.cast<double>();
    else
      spec.extras.emplace_back(key, py::reinterpret_borrow<py::object>(v));
  }
  return spec;
}

struct ParsedParams {
  std::vector<ParamGroup> groups;
  std::vector<std::vector<std::pair<std::string, py::object>>> extras;  // per group
};

ParsedParams parse_params(py::handle params) {
  ParsedParams out;
  NN_CHECK(!py::isinstance<Variable>(params), ValueError,
           "optimizer: params must be an iterable of Tensors or of dicts, got a single Tensor");
  std::vector<Variable> plain;
  bool dicts = false;
  for (py::handle item : py::iter(params)) {
    if (py::isinstance<py::dict>(item)) {
      NN_CHECK(plain.empty(), ValueError, "optimizer: params mixes Tensors and group dicts");
      dicts = true;
      GroupSpec spec = group_from_dict(item.cast<py::dict>());
      out.groups.push_back(std::move(spec.group));
      out.extras.push_back(std::move(spec.extras));
    } else {
      NN_CHECK(!dicts, ValueError, "optimizer: params mixes Tensors and group dicts");
      plain.push_back(item.cast<Variable>());
    }
  }
  if (!dicts) {
    ParamGroup g;
    g.params = std::move(plain);
    out.groups.push_back(std::move(g));
    out.extras.emplace_back();
  }
  return out;
}

// Builds the optimizer from parsed groups, then applies the per-group extras.
template <class Opt, class Options>
std::shared_ptr<Opt> make_optimizer(py::handle params, const Options& options) {
  ParsedParams parsed = parse_params(params);
  auto opt = std::make_shared<Opt>(std::move(parsed.groups), options);
  for (size_t g = 0; g < parsed.extras.size(); ++g)
    for (auto& [key, value] : parsed.extras[g]) hyper_set(*opt, g, key, value);
  return opt;
}

// ---- param_groups views --------------------------------------------------------------------

struct GroupView {
  std::shared_ptr<Optimizer> opt;
  size_t index;

  std::vector<std::string> keys() const {
    std::vector<std::string> k = {"params"};
    for (auto& s : keys_of(opt->kind())) k.push_back(s);
    return k;
  }
  py::dict as_dict() const {
    py::dict d;
    for (const auto& k : keys()) d[py::str(k)] = hyper_get(*opt, index, k);
    return d;
  }
};

py::dict state_dict_of(const Optimizer& opt) {
  OptimizerStateDict sd = opt.state_dict();
  py::object tensors = py::module_::import("collections").attr("OrderedDict")();
  for (auto& [name, t] : sd.tensors) tensors[py::str(name)] = variable_of(t.clone());
  py::dict out;
  out["tensors"] = tensors;
  out["metadata"] = py::cast(sd.metadata);
  return out;
}

OptimizerStateDict state_dict_from(py::handle state) {
  py::dict d = py::dict(py::reinterpret_borrow<py::object>(state));
  NN_CHECK(d.contains("tensors") && d.contains("metadata"), ValueError,
           "optimizer.load_state_dict: expected a dict with 'tensors' and 'metadata' (as "
           "state_dict() returns)");
  OptimizerStateDict sd;
  for (auto item : py::dict(d["tensors"]))
    sd.tensors.emplace_back(item.first.cast<std::string>(),
                            item.second.cast<const Variable&>().data());
  sd.metadata = d["metadata"].cast<std::map<std::string, std::string>>();
  return sd;
}

std::string optimizer_repr(const Optimizer& opt) {
  std::string s = std::string(opt.name()) + " (";
  for (size_t g = 0; g < opt.num_groups(); ++g) {
    s += "\nParameter Group " + std::to_string(g);
    for (const auto& k : keys_of(opt.kind()))
      s += "\n    " + k + ": " + py::repr(hyper_get(opt, g, k)).cast<std::string>();
  }
  return s + "\n)";
}

void bind_optimizers(py::module_& optim) {
  py::class_<GroupView>(optim, "ParamGroup", "A live view of one parameter group (dict-like)")
      .def("__getitem__",
           [](const GroupView& v, const std::string& k) {
             if (k != "params" && !is_key_of(v.opt->kind(), k)) throw py::key_error(k);
             return hyper_get(*v.opt, v.index, k);
           })
      .def("__setitem__", [](GroupView& v, const std::string& k,
                             py::handle value) { hyper_set(*v.opt, v.index, k, value); })
      .def("__contains__",
           [](const GroupView& v, const std::string& k) {
             return k == "params" || is_key_of(v.opt->kind(), k);
           })
      .def(
          "get",
          [](const GroupView& v, const std::string& k, py::object dflt) {
            if (k != "params" && !is_key_of(v.opt->kind(), k)) return dflt;
            return hyper_get(*v.opt, v.index, k);
          },
          py::arg("key"), py::arg("default") = py::none())
      .def("keys", &GroupView::keys)
      .def("values", [](const GroupView& v) { return v.as_dict().attr("values")(); })
      .def("items", [](const GroupView& v) { return v.as_dict().attr("items")(); })
      .def("__iter__", [](const GroupView& v) { return py::iter(py::cast(v.keys())); })
      .def("__len__", [](const GroupView& v) { return v.keys().size(); })
      .def("__repr__",
           [](const GroupView& v) { return py::repr(v.as_dict()).cast<std::string>(); });

  py::class_<Optimizer, std::shared_ptr<Optimizer>>(optim, "Optimizer",
                                                    "Base of SGD, Adam, AdamW and RMSprop")
      .def(
          "step",
          [](Optimizer& opt, py::object closure, std::optional<Variable> grad_scale) {
            py::object loss = py::none();
            if (!closure.is_none()) {
              const bool was = grad_enabled();
              set_grad_enabled(true);
              try {
                loss = closure();
              } catch (...) {
                set_grad_enabled(was);
                throw;
              }
              set_grad_enabled(was);
            }
            Tensor scale = grad_scale ? grad_scale->data() : Tensor();
            {
              py::gil_scoped_release nogil;
              opt.step(scale);
            }
            return loss;
          },
          py::arg("closure") = py::none(), py::kw_only(), py::arg("grad_scale") = py::none(),
          "One update of every parameter that has a gradient. closure (optional) re-evaluates "
          "the loss first and its value is returned; grad_scale (a 0-d Tensor, e.g. "
          "clip_coefficient()) multiplies every gradient inside the fused update.")
      .def("zero_grad", &Optimizer::zero_grad, py::arg("set_to_none") = true)
      .def_property_readonly("param_groups",
                             [](const std::shared_ptr<Optimizer>& opt) {
                               std::vector<GroupView> views;
                               for (size_t g = 0; g < opt->num_groups(); ++g)
                                 views.push_back(GroupView{opt, g});
                               return views;
                             })
      .def(
          "add_param_group",
          [](Optimizer& opt, const py::dict& group) {
            GroupSpec spec = group_from_dict(group);
            opt.add_param_group(std::move(spec.group));
            for (auto& [key, value] : spec.extras) hyper_set(opt, opt.num_groups() - 1, key, value);
          },
          py::arg("param_group"))
      .def("state_dict", &state_dict_of)
      .def(
          "load_state_dict",
          [](Optimizer& opt, py::handle state) { opt.load_state_dict(state_dict_from(state)); },
          py::arg("state_dict"))
      .def_property_readonly("step_count", &Optimizer::step_count)
      .def("__repr__", &optimizer_repr);

  py::class_<SGD, Optimizer, std::shared_ptr<SGD>>(optim, "SGD")
      .def(py::init([](py::handle params, double lr, double momentum, double dampening,
                       double weight_decay, bool nesterov, bool maximize) {
             SGDOptions o{lr, momentum, dampening, weight_decay, nesterov, maximize};
             return make_optimizer<SGD>(params, o);
           }),
           py::arg("params"), py::arg("lr") = 1e-3, py::arg("momentum") = 0.0,
           py::arg("dampening") = 0.0, py::arg("weight_decay") = 0.0, py::arg("nesterov") = false,
           py::kw_only(), py::arg("maximize") = false);

  py::class_<Adam, Optimizer, std::shared_ptr<Adam>>(optim, "Adam")
      .def(py::init([](py::handle params, double lr, std::pair<double, double> betas, double eps,
                       double weight_decay, bool amsgrad, bool maximize) {
             AdamOptions o{lr, betas, eps, weight_decay, amsgrad, maximize};
             return make_optimizer<Adam>(params, o);
           }),
           py::arg("params"), py::arg("lr") = 1e-3, py::arg("betas") = std::make_pair(0.9, 0.999),
           py::arg("eps") = 1e-8, py::arg("weight_decay") = 0.0, py::arg("amsgrad") = false,
           py::kw_only(), py::arg("maximize") = false);

  py::class_<AdamW, Optimizer, std::shared_ptr<AdamW>>(optim, "AdamW")
      .def(py::init([](py::handle params, double lr, std::pair<double, double> betas, double eps,
                       double weight_decay, bool amsgrad, bool maximize) {
             AdamWOptions o{lr, betas, eps, weight_decay, amsgrad, maximize};
             return make_optimizer<AdamW>(params, o);
           }),
           py::arg("params"), py::arg("lr") = 1e-3, py::arg("betas") = std::make_pair(0.9, 0.999),
           py::arg("eps") = 1e-8, py::arg("weight_decay") = 1e-2, py::arg("amsgrad") = false,
           py::kw_only(), py::arg("maximize") = false);

  py::class_<RMSprop, Optimizer, std::shared_ptr<RMSprop>>(optim, "RMSprop")
      .def(py::init([](py::handle params, double lr, double alpha, double eps, double weight_decay,
                       double momentum, bool centered, bool maximize) {
             RMSpropOptions o{lr, alpha, eps, weight_decay, momentum, centered, maximize};
             return make_optimizer<RMSprop>(params, o);
           }),
           py::arg("params"), py::arg("lr") = 1e-2, py::arg("alpha") = 0.99, py::arg("eps") = 1e-8,
           py::arg("weight_decay") = 0.0, py::arg("momentum") = 0.0, py::arg("centered") = false,
           py::kw_only(), py::arg("maximize") = false);
}

// ---- schedulers ----------------------------------------------------------------------------

// torch.optim.lr_scheduler.CosineAnnealingLR(T_max, eta_min): the cosine without warm-up. For
// t > T_max it stays at eta_min (PyTorch's recursive form would climb back up).
class CosineAnnealingLR : public CosineWarmupLR {
 public:
  CosineAnnealingLR(Optimizer& opt, int64_t t_max, double eta_min)
      : CosineWarmupLR(opt, 0, t_max, eta_min) {}
};

double metric_value(py::handle metric) {
  if (py::isinstance<Variable>(metric)) return metric.cast<const Variable&>().item();
  return metric.cast<double>();
}

void bind_schedulers(py::module_& optim) {
  py::module_ sched = optim.def_submodule("lr_scheduler", "Learning-rate schedules");
  py::class_<Scheduler>(sched, "Scheduler", "Base of every learning-rate schedule")
      .def("get_last_lr", &Scheduler::last_lr)
      .def_property_readonly("last_epoch", &Scheduler::last_epoch)
      .def_property_readonly("base_lrs", &Scheduler::base_lrs)
      .def_property_readonly("optimizer", &Scheduler::optimizer, py::return_value_policy::reference)
      .def("state_dict", &Scheduler::state_dict)
      .def("load_state_dict", &Scheduler::load_state_dict, py::arg("state_dict"))
      .def("__repr__", [](const Scheduler& s) {
        return std::string(s.name()) + "(last_epoch=" + std::to_string(s.last_epoch()) + ")";
      });
  py::class_<LRScheduler, Scheduler>(sched, "LRScheduler",
                                     "A schedule given in closed form by the step count")
      .def("step", &LRScheduler::step, "Advances one epoch (or step) and sets every group's lr");

  py::class_<StepLR, LRScheduler>(sched, "StepLR")
      .def(py::init<Optimizer&, int64_t, double>(), py::arg("optimizer"), py::arg("step_size"),
           py::arg("gamma") = 0.1, py::keep_alive<1, 2>());
  py::class_<ExponentialLR, LRScheduler>(sched, "ExponentialLR")
      .def(py::init<Optimizer&, double>(), py::arg("optimizer"), py::arg("gamma"),
           py::keep_alive<1, 2>());
  py::class_<CosineWarmupLR, LRScheduler>(sched, "CosineWarmupLR",
                                          "Linear warm-up to the base lr, then a half cosine "
                                          "down to min_lr at total_steps")
      .def(py::init<Optimizer&, int64_t, int64_t, double, double>(), py::arg("optimizer"),
           py::arg("warmup_steps"), py::arg("total_steps"), py::arg("min_lr") = 0.0,
           py::arg("start_factor") = 0.0, py::keep_alive<1, 2>());
  py::class_<CosineAnnealingLR, CosineWarmupLR>(sched, "CosineAnnealingLR")
      .def(py::init<Optimizer&, int64_t, double>(), py::arg("optimizer"), py::arg("T_max"),
           py::arg("eta_min") = 0.0, py::keep_alive<1, 2>());

  py::class_<ReduceLROnPlateau, Scheduler>(sched, "ReduceLROnPlateau")
      .def(py::init([](Optimizer& opt, const std::string& mode, double factor, int64_t patience,
                       double threshold, const std::string& threshold_mode, int64_t cooldown,
                       double min_lr, double eps) {
             PlateauOptions o;
             o.mode = parse_metric_mode(mode);
             o.factor = factor;
             o.patience = patience;
             o.threshold = threshold;
             NN_CHECK(threshold_mode == "rel" || threshold_mode == "abs", ValueError,
                      "ReduceLROnPlateau: threshold_mode '", threshold_mode,
                      "' is unknown, expected rel or abs");
             o.threshold_mode = threshold_mode == "rel" ? ThresholdMode::Rel : ThresholdMode::Abs;
             o.cooldown = cooldown;
             o.min_lr = min_lr;
             o.eps = eps;
             return std::make_unique<ReduceLROnPlateau>(opt, o);
           }),
           py::arg("optimizer"), py::arg("mode") = "min", py::arg("factor") = 0.1,
           py::arg("patience") = 10, py::arg("threshold") = 1e-4, py::arg("threshold_mode") = "rel",
           py::arg("cooldown") = 0, py::arg("min_lr") = 0.0, py::arg("eps") = 1e-8,
           py::keep_alive<1, 2>())
      .def(
          "step", [](ReduceLROnPlateau& s, py::handle metrics) { s.step(metric_value(metrics)); },
          py::arg("metrics"))
      .def_property_readonly("best", &ReduceLROnPlateau::best)
      .def_property_readonly("num_bad_epochs", &ReduceLROnPlateau::num_bad_epochs)
      .def_property_readonly("cooldown_counter", &ReduceLROnPlateau::cooldown_counter)
      .def_property_readonly("in_cooldown", &ReduceLROnPlateau::in_cooldown);

  py::module_::import("sys").attr("modules")["nn_cuda.optim.lr_scheduler"] = sched;
}

// ---- early stopping, clipping, penalties ---------------------------------------------------

void bind_early_stopping(py::module_& optim) {
  py::class_<EarlyStopping>(optim, "EarlyStopping", R"(
EarlyStopping(patience=10, min_delta=0.0, mode="min", restore_best=True).
step(metric, model) records one epoch and returns True when training should stop; with
restore_best the best epoch's weights are then already back in the model. Pass the same model
at every call (or never: model=None watches the metric alone).)")
      .def(py::init(
               [](int64_t patience, double min_delta, const std::string& mode, bool restore_best) {
                 return EarlyStopping(patience, min_delta, parse_metric_mode(mode), restore_best);
               }),
           py::arg("patience") = 10, py::arg("min_delta") = 0.0, py::arg("mode") = "min",
           py::arg("restore_best") = true)
      .def(
          "step",
          [](EarlyStopping& e, py::handle metric, std::shared_ptr<Module> model) {
            const double value = metric_value(metric);
            if (model) return e.step(value, *model);
            Module none;
            return e.step(value, none);
          },
          py::arg("metric"), py::arg("model") = py::none())
      .def(
          "restore_best", [](const EarlyStopping& e, Module& model) { e.restore_best(model); },
          py::arg("model"))
      .def_property_readonly("best", &EarlyStopping::best)
      .def_property_readonly("best_epoch", &EarlyStopping::best_epoch)
      .def_property_readonly("counter", &EarlyStopping::counter)
      .def_property_readonly("epoch", &EarlyStopping::epoch)
      .def_property_readonly("should_stop", &EarlyStopping::should_stop)
      .def_property_readonly("best_state", [](const EarlyStopping& e) {
        py::object out = py::module_::import("collections").attr("OrderedDict")();
        for (auto& [n, t] : e.best_state()) out[py::str(n)] = variable_of(t);
        return out;
      });
}

void bind_clip_and_penalties(py::module_& optim) {
  optim.def(
      "clip_grad_norm_",
      [](py::handle params, double max_norm, double norm_type) {
        return variable_of(clip_grad_norm_(variable_list(params), max_norm, norm_type));
      },
      py::arg("parameters"), py::arg("max_norm"), py::arg("norm_type") = 2.0);
  optim.def(
      "clip_grad_value_",
      [](py::handle params, double clip_value) {
        clip_grad_value_(variable_list(params), clip_value);
      },
      py::arg("parameters"), py::arg("clip_value"));
  optim.def(
      "total_grad_norm",
      [](py::handle params, double norm_type) {
        return variable_of(total_grad_norm(variable_list(params), norm_type));
      },
      py::arg("parameters"), py::arg("norm_type") = 2.0,
      "The norm of all gradients together (a 0-d Tensor on their device, no host sync)");
  optim.def(
      "clip_coefficient",
      [](const Variable& total_norm, double max_norm) {
        return variable_of(clip_coefficient(total_norm.data(), max_norm));
      },
      py::arg("total_norm"), py::arg("max_norm"),
      "min(1, max_norm / (total_norm + 1e-6)): pass it to step(grad_scale=...) to clip "
      "inside the fused update");
  optim.def(
      "l1_penalty",
      [](py::handle params, double weight) { return l1_penalty(variable_list(params), weight); },
      py::arg("parameters"), py::arg("weight"),
      "weight * sum |p| over the parameters (a differentiable 0-d Tensor)");
  optim.def(
      "l2_penalty",
      [](py::handle params, double weight) { return l2_penalty(variable_list(params), weight); },
      py::arg("parameters"), py::arg("weight"),
      "weight / 2 * sum p^2 over the parameters: moves them as weight_decay=weight does");
}

}  // namespace

void bind_optim(py::module_& m) {
  py::module_ optim = m.def_submodule("optim", "Optimizers, schedules, clipping, early stopping");
  bind_optimizers(optim);
  bind_schedulers(optim);
  bind_early_stopping(optim);
  bind_clip_and_penalties(optim);
}

}  // namespace nn::python
