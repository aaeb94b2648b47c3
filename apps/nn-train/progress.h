// A one-line progress bar for a training epoch: batches done, the running loss, samples per
// second and the time left. On a terminal it redraws in place; otherwise (a log file, CI) it
// prints a line every tenth of the epoch, so logs stay short.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include <unistd.h>

namespace nn_train {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total_batches, bool quiet)
      : label_(std::move(label)),
        total_(total_batches),
        quiet_(quiet),
        tty_(isatty(fileno(stderr)) != 0),
        start_(Clock::now()) {}

  // Whether update() would draw for batch `done` (the caller then reads the loss, which is a
  // host sync on a GPU: only when it will be shown).
  bool due(int64_t done) {
    if (quiet_) return false;
    if (done == total_) return true;
    if (tty_) return seconds_since(last_draw_) >= 0.25;
    int64_t tenth = std::max<int64_t>(1, total_ / 10);
    return done % tenth == 0;
  }

  void update(int64_t done, int64_t samples, double loss) {
    last_draw_ = Clock::now();
    double elapsed = seconds_since(start_);
    double rate = elapsed > 0 ? double(samples) / elapsed : 0.0;
    double left = done > 0 ? elapsed * double(total_ - done) / double(done) : 0.0;
    constexpr int kWidth = 24;
    int filled = total_ > 0 ? int(kWidth * done / total_) : kWidth;
    std::string bar(size_t(filled), '=');
    if (filled < kWidth) bar += '>';
    bar.resize(kWidth, ' ');
    std::fprintf(stderr, "%s%s [%s] %lld/%lld  loss %.4f  %.0f samples/s  %s left%s",
                 tty_ ? "\r" : "", label_.c_str(), bar.c_str(), (long long)done,
                 (long long)total_, loss, rate, clock_text(left).c_str(), tty_ ? "\033[K" : "\n");
    if (tty_ && done == total_) std::fputc('\n', stderr);
    std::fflush(stderr);
  }

  double elapsed() const { return seconds_since(start_); }

 private:
  using Clock = std::chrono::steady_clock;
  static double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  }
  static std::string clock_text(double seconds) {
    auto s = int64_t(seconds + 0.5);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
    return buf;
  }

  std::string label_;
  int64_t total_;
  bool quiet_;
  bool tty_;
  Clock::time_point start_;
  Clock::time_point last_draw_{};
};

}  // namespace nn_train
