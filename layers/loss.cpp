#include "layers/loss.h"

#include <sstream>

#include "core/error.h"

namespace nn {
namespace {

const char* reduction_str(Reduction r) {
  switch (r) {
    case Reduction::None:
      return "none";
    case Reduction::Mean:
      return "mean";
    case Reduction::Sum:
      return "sum";
  }
  return "?";
}

void check_same_shape(const Variable& input, const Variable& target, const char* loss) {
  NN_CHECK(input.defined() && target.defined(), ValueError, loss,
           ": input and target must be defined");
  NN_CHECK(input.shape() == target.shape(), ShapeError, loss, ": input has shape ",
           shape_str(input.shape()), " but target has shape ", shape_str(target.shape()),
           "; they must be equal");
}

Variable reduce(const Variable& loss, Reduction reduction) {
  switch (reduction) {
    case Reduction::None:
      return loss;
    case Reduction::Sum:
      return sum(loss);
    case Reduction::Mean:
      return mean(loss);
  }
  NN_THROW(ValueError, "loss: unknown reduction code ", int(reduction));
}

}  // namespace

Variable mse_loss(const Variable& input, const Variable& target, Reduction reduction) {
  check_same_shape(input, target, "mse_loss");
  const Variable diff = input - target;
  return reduce(diff * diff, reduction);
}

Variable l1_loss(const Variable& input, const Variable& target, Reduction reduction) {
  check_same_shape(input, target, "l1_loss");
  return reduce(abs(input - target), reduction);
}

Variable binary_cross_entropy_with_logits(const Variable& input, const Variable& target,
                                          Reduction reduction, const Tensor& pos_weight) {
  constexpr const char* kName = "binary_cross_entropy_with_logits";
  check_same_shape(input, target, kName);
  // softplus(-x) = max(x, 0) - x + log(1 + exp(-|x|)) never exponentiates a positive number.
  // Both kinks are written with relu (relu'(0) = 0) and -|x| as x - 2 relu(x), so every term
  // takes its x < 0 derivative at x == 0 and the sum gets the true (smooth) derivative there;
  // abs'(0) = 0 would drop a term and give a wrong gradient for zero logits.
  const Variable& x = input;
  const Variable& y = target;
  const Variable r = relu(x);
  const Variable tail = softplus(x - 2.0 * r);  // log(1 + exp(-|x|)), argument <= 0
  Variable loss = r - x * y + tail;             // (1 - y) x + softplus(-x)
  if (pos_weight.defined()) {
    const Shape& xs = input.shape();
    const Shape& ps = pos_weight.shape();
    bool fits = ps.size() <= xs.size();
    for (size_t i = 0; fits && i < ps.size(); ++i) {
      const int64_t p = ps[ps.size() - 1 - i], d = xs[xs.size() - 1 - i];
      fits = p == d || p == 1;
    }
    NN_CHECK(fits, ShapeError, kName, ": pos_weight of shape ", shape_str(ps),
             " does not broadcast to the input's shape ", shape_str(xs));
    NN_CHECK(pos_weight.dtype() == input.dtype(), DtypeError, kName, ": pos_weight is ",
             dtype_name(pos_weight.dtype()), ", the input ", dtype_name(input.dtype()));
    NN_CHECK(pos_weight.device() == input.device(), DeviceError, kName, ": pos_weight is on ",
             pos_weight.device().str(), ", the input on ", input.device().str());
    // PyTorch: (1 - y) x + (1 + (p - 1) y) softplus(-x); the extra term is (p - 1) y softplus(-x).
    const Variable extra = Variable(pos_weight - 1.0) * y;
    loss = loss + extra * (r - x + tail);
  }
  return reduce(loss, reduction);
}

std::string MSELoss::extra_repr() const {
  return std::string("reduction=") + reduction_str(reduction_);
}

std::string L1Loss::extra_repr() const {
  return std::string("reduction=") + reduction_str(reduction_);
}

CrossEntropyLoss::CrossEntropyLoss(Tensor weight, double label_smoothing, int64_t ignore_index,
                                   Reduction reduction)
    : label_smoothing_(label_smoothing), ignore_index_(ignore_index), reduction_(reduction) {
  NN_CHECK(label_smoothing >= 0.0 && label_smoothing < 1.0, ValueError,
           "CrossEntropyLoss: label_smoothing must be in [0, 1), got ", label_smoothing);
  if (weight.defined()) {
    NN_CHECK(weight.dim() == 1, ShapeError,
             "CrossEntropyLoss: weight must be 1-D (one per class), got shape ",
             shape_str(weight.shape()));
    weight_ = &register_buffer("weight", std::move(weight));
  }
}

Variable CrossEntropyLoss::forward(const Variable& input, const Tensor& target) {
  CrossEntropyOptions options;
  if (weight_ != nullptr) options.weight = *weight_;
  options.label_smoothing = label_smoothing_;
  options.ignore_index = ignore_index_;
  return cross_entropy(input, target, options, reduction_);
}

std::string CrossEntropyLoss::extra_repr() const {
  std::ostringstream os;
  if (weight_ != nullptr) os << "weight=" << shape_str(weight_->shape()) << ", ";
  os << "label_smoothing=" << label_smoothing_ << ", ignore_index=" << ignore_index_
     << ", reduction=" << reduction_str(reduction_);
  return os.str();
}

BCEWithLogitsLoss::BCEWithLogitsLoss(Tensor pos_weight, Reduction reduction)
    : reduction_(reduction) {
  if (pos_weight.defined()) pos_weight_ = &register_buffer("pos_weight", std::move(pos_weight));
}

Variable BCEWithLogitsLoss::forward(const Variable& input, const Variable& target) {
  return binary_cross_entropy_with_logits(input, target, reduction_,
                                          pos_weight_ != nullptr ? *pos_weight_ : Tensor());
}

std::string BCEWithLogitsLoss::extra_repr() const {
  std::string out;
  if (pos_weight_ != nullptr) out = "pos_weight=" + shape_str(pos_weight_->shape()) + ", ";
  return out + "reduction=" + reduction_str(reduction_);
}

}  // namespace nn
