// An outside program built against the installed package: the umbrella header, a few ops on the
// best device, results checked by hand-computed values. Exits 0 on success, 1 on failure.
#include <nn/nn.h>

#include <cmath>
#include <cstdio>
#include <vector>

namespace {

bool near(double a, double b, double tol) { return std::fabs(a - b) <= tol * (1.0 + std::fabs(b)); }

int check(bool ok, const char* what) {
  std::printf("%-34s %s\n", what, ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}

}  // namespace

int main() {
  try {
    const nn::Device device = nn::best_device();
    std::printf("nn_consumer: device %s (built with CUDA: %s)\n", device.str().c_str(),
                nn::cuda::built_with_cuda() ? "yes" : "no");
    const nn::TensorOptions options{nn::Dtype::Float32, device};
    int failures = 0;

    // [2, 3] x [3, 2] = [[4, 5], [10, 14]] for a = 0..5 and b = 0..5 laid out row-major.
    nn::Tensor a = nn::arange(0, 6, 1, options).reshape({2, 3});
    nn::Tensor b = nn::arange(0, 6, 1, options).reshape({3, 2});
    std::vector<float> c = nn::matmul(a, b).to(nn::Device::cpu()).to_vector<float>();
    const std::vector<float> c_expected = {10, 13, 28, 40};
    bool ok = c.size() == c_expected.size();
    for (size_t i = 0; ok && i < c.size(); ++i) ok = near(c[i], c_expected[i], 1e-5);
    failures += check(ok, "matmul [2,3]x[3,2]");

    // Softmax rows sum to one.
    nn::Tensor s = nn::softmax(nn::randn({4, 7}, options), -1);
    std::vector<float> row_sums = nn::sum(s, {1}).to(nn::Device::cpu()).to_vector<float>();
    ok = row_sums.size() == 4;
    for (float r : row_sums) ok = ok && near(r, 1.0, 1e-5);
    failures += check(ok, "softmax rows sum to 1");

    // relu(x) - x is zero for x >= 0 and -x otherwise, so relu(x) + relu(-x) == |x|.
    nn::Tensor x = nn::randn({64}, options);
    double diff = nn::max(nn::abs(nn::relu(x) + nn::relu(-x) - nn::abs(x))).item();
    failures += check(diff == 0.0, "relu(x) + relu(-x) == |x|");

    // Errors are nn::Error subclasses with a message.
    bool threw = false;
    try {
      nn::matmul(a, a);  // [2,3] x [2,3]: inner sizes differ
    } catch (const nn::Error& e) {
      threw = e.what()[0] != '\0';
    }
    failures += check(threw, "matmul shape mismatch throws");

    // Training through the installed autograd, layers and optimizers: one Linear fits y = 2x - 1.
    nn::Generator gen(1);
    auto model = std::make_shared<nn::Linear>(1, 1, true, nn::Activation::None, options, &gen);
    nn::SGD opt(model->parameters(), nn::SGDOptions{.lr = 0.1, .momentum = 0.9});
    nn::Tensor xs = nn::randn({32, 1}, options, &gen);
    nn::Tensor ys = nn::add(nn::mul(xs, 2.0), -1.0);
    for (int step = 0; step < 200; ++step) {
      nn::Variable loss = nn::mse_loss((*model)(nn::Variable(xs)), nn::Variable(ys));
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
    failures += check(near(model->weight().item(), 2.0, 1e-3) && near(model->bias().item(), -1.0, 1e-3),
                      "Linear + SGD fits y = 2x - 1");

    std::printf("nn_consumer: %s\n", failures == 0 ? "PASS" : "FAIL");
    return failures == 0 ? 0 : 1;
  } catch (const nn::Error& e) {
    std::printf("nn_consumer: FAIL: %s\n", e.what());
    return 1;
  }
}
