// A small stand-in for Google Benchmark, used by the kernel benchmarks when the real library is
// not found (a GPU runner with no package registry: the lent H100 image has no libbenchmark-dev,
// and a prebuilt copy staged from another distribution may not load there). It is source
// compatible with the subset bench_common.h and bench_*.cpp use, so those files compile against
// either. It lives in namespace `benchmark` on purpose: that is what makes it a drop-in.
//
// Flags: --benchmark_filter=REGEX, --benchmark_min_time=SECONDS[s], --benchmark_out=FILE,
// --benchmark_out_format=json, --benchmark_context=k=v[,k=v], --benchmark_list_tests.
// The JSON file has Google Benchmark's layout ("context", "benchmarks" with name, run_name,
// iterations, real_time, cpu_time, time_unit, label, counters, error_occurred/error_message),
// so bench/report.py reads both. Only manual timing (UseManualTime) is supported: the CUDA
// benchmarks time themselves.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

namespace benchmark {

enum TimeUnit { kNanosecond, kMicrosecond, kMillisecond, kSecond };

struct Counter {
  enum Flags { kDefaults = 0, kIsRate = 1 };
  enum OneK { kIs1000 = 1000, kIs1024 = 1024 };
  Counter(double v = 0.0, Flags f = kDefaults, OneK k = kIs1000) : value(v), flags(f), one_k(k) {}
  double value;
  Flags flags;
  OneK one_k;
};

class State {
 public:
  State(std::vector<int64_t> args, int64_t iterations)
      : args_(std::move(args)), iterations_(iterations) {}

  // `for (auto _ : state)` runs the body iterations() times unless the benchmark was skipped.
  // The loop variable's type is marked unused, as Google Benchmark's is: `_` is never read.
  struct __attribute__((unused)) Value {};
  struct Iterator {
    int64_t left;
    bool operator!=(const Iterator&) const { return left > 0; }
    void operator++() { --left; }
    Value operator*() const { return {}; }
  };
  Iterator begin() { return {skipped_ ? 0 : iterations_}; }
  Iterator end() { return {0}; }

  int64_t range(std::size_t i = 0) const { return i < args_.size() ? args_[i] : 0; }
  int64_t iterations() const { return iterations_; }
  void SetIterationTime(double seconds) { manual_seconds_ += seconds; }
  void SkipWithError(const char* message) {
    skipped_ = true;
    error_ = message;
  }
  void SetLabel(const std::string& label) { label_ = label; }

  std::map<std::string, Counter> counters;

  double manual_seconds() const { return manual_seconds_; }
  bool skipped() const { return skipped_; }
  const std::string& error() const { return error_; }
  const std::string& label() const { return label_; }

 private:
  std::vector<int64_t> args_;
  int64_t iterations_;
  double manual_seconds_ = 0.0;
  bool skipped_ = false;
  std::string error_;
  std::string label_;
};

template <class T>
inline void DoNotOptimize(T&& value) {
  asm volatile("" : : "g"(&value) : "memory");
}

class Benchmark {
 public:
  Benchmark(std::string name, std::function<void(State&)> fn)
      : name_(std::move(name)), fn_(std::move(fn)) {}
  Benchmark* RangeMultiplier(int m) {
    multiplier_ = std::max(2, m);
    return this;
  }
  Benchmark* Range(int64_t lo, int64_t hi) {
    for (int64_t v = lo; v < hi; v *= multiplier_) args_.push_back({v});
    args_.push_back({hi});
    return this;
  }
  Benchmark* Args(std::initializer_list<int64_t> a) {
    args_.emplace_back(a);
    return this;
  }
  Benchmark* UseManualTime() { return this; }
  Benchmark* Unit(TimeUnit u) {
    unit_ = u;
    return this;
  }

  const std::string& name() const { return name_; }
  const std::vector<std::vector<int64_t>>& arg_sets() const { return args_; }
  TimeUnit unit() const { return unit_; }
  void run(State& state) const { fn_(state); }

 private:
  std::string name_;
  std::function<void(State&)> fn_;
  int multiplier_ = 8;
  std::vector<std::vector<int64_t>> args_;
  TimeUnit unit_ = kNanosecond;
};

namespace internal {

struct Settings {
  std::string filter = ".";
  double min_time = 0.5;
  std::string out;
  std::string out_format = "json";
  std::vector<std::pair<std::string, std::string>> context;
  bool list_only = false;
  std::vector<std::string> unrecognized;
};

inline Settings& settings() {
  static Settings s;
  return s;
}

inline std::vector<std::unique_ptr<Benchmark>>& registry() {
  static std::vector<std::unique_ptr<Benchmark>> r;
  return r;
}

inline std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

inline const char* unit_name(TimeUnit u) {
  switch (u) {
    case kNanosecond:
      return "ns";
    case kMicrosecond:
      return "us";
    case kMillisecond:
      return "ms";
    case kSecond:
      return "s";
  }
  return "ns";
}

inline double unit_per_second(TimeUnit u) {
  switch (u) {
    case kNanosecond:
      return 1e9;
    case kMicrosecond:
      return 1e6;
    case kMillisecond:
      return 1e3;
    case kSecond:
      return 1.0;
  }
  return 1e9;
}

struct Result {
  std::string name;
  int64_t iterations = 0;
  double time = 0.0;  // per iteration, in `unit`
  TimeUnit unit = kNanosecond;
  std::string label;
  std::string error;
  std::map<std::string, double> counters;
};

// Grows the iteration count until the timed total reaches min_time, as Google Benchmark does.
inline Result run_one(const Benchmark& b, const std::vector<int64_t>& args,
                      const std::string& name) {
  Result r{name, 0, 0.0, b.unit(), {}, {}, {}};
  const double min_time = settings().min_time;
  int64_t iterations = 1;
  for (;;) {
    State state(args, iterations);
    b.run(state);
    if (state.skipped()) {
      r.error = state.error();
      return r;
    }
    const double seconds = state.manual_seconds();
    if (seconds >= min_time || iterations >= 1000000000) {
      r.iterations = iterations;
      r.time = seconds / double(iterations) * unit_per_second(b.unit());
      r.label = state.label();
      for (const auto& [key, c] : state.counters)
        r.counters[key] = (c.flags & Counter::kIsRate) && seconds > 0 ? c.value / seconds : c.value;
      return r;
    }
    const double scale = seconds > 0 ? 1.4 * min_time / seconds : 10.0;
    iterations = std::max(iterations + 1, int64_t(double(iterations) * std::min(scale, 10.0)));
  }
}

inline std::string si(double v) {
  const char* suffix[] = {"", "k", "M", "G", "T", "P"};
  int i = 0;
  while (std::abs(v) >= 1000.0 && i < 5) {
    v /= 1000.0;
    ++i;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g%s", v, suffix[i]);
  return buf;
}

inline void write_json(const std::string& path, const std::vector<Result>& results) {
  std::ofstream f(path);
  char host[256] = "unknown";
  gethostname(host, sizeof host - 1);
  char date[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", std::localtime(&now));
  f << "{\n  \"context\": {\n    \"date\": \"" << date << "\",\n    \"host_name\": \""
    << json_escape(host) << "\",\n    \"library_build_type\": \"builtin-harness\"";
  for (const auto& [k, v] : settings().context)
    f << ",\n    \"" << json_escape(k) << "\": \"" << json_escape(v) << "\"";
  f << "\n  },\n  \"benchmarks\": [";
  for (std::size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    f << (i ? ",\n" : "\n") << "    {\"name\": \"" << json_escape(r.name) << "\", \"run_name\": \""
      << json_escape(r.name) << "\", \"run_type\": \"iteration\", \"iterations\": " << r.iterations
      << ", \"real_time\": " << r.time << ", \"cpu_time\": " << r.time << ", \"time_unit\": \""
      << unit_name(r.unit) << "\"";
    if (!r.error.empty())
      f << ", \"error_occurred\": true, \"error_message\": \"" << json_escape(r.error) << "\"";
    if (!r.label.empty()) f << ", \"label\": \"" << json_escape(r.label) << "\"";
    for (const auto& [k, v] : r.counters) f << ", \"" << json_escape(k) << "\": " << v;
    f << "}";
  }
  f << "\n  ]\n}\n";
}

}  // namespace internal

template <class Fn, class... Extra>
Benchmark* RegisterBenchmark(const char* name, Fn fn, Extra... extra) {
  auto b = std::make_unique<Benchmark>(name, [fn, extra...](State& s) { fn(s, extra...); });
  internal::registry().push_back(std::move(b));
  return internal::registry().back().get();
}

// Takes the flags it knows out of argv; others starting with --benchmark_ are kept as errors.
inline void Initialize(int* argc, char** argv) {
  internal::Settings& s = internal::settings();
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const std::string& flag) -> const char* {
      return a.rfind(flag + "=", 0) == 0 ? argv[i] + flag.size() + 1 : nullptr;
    };
    const char* filter = value("--benchmark_filter");
    const char* min_time = value("--benchmark_min_time");
    const char* out = value("--benchmark_out");
    const char* out_format = value("--benchmark_out_format");
    const char* context = value("--benchmark_context");
    if (filter != nullptr) {
      s.filter = filter;
    } else if (min_time != nullptr) {
      s.min_time = std::atof(min_time);  // "0.5" and "0.5s" both read as seconds
    } else if (out != nullptr) {
      s.out = out;
    } else if (out_format != nullptr) {
      s.out_format = out_format;
      if (s.out_format != "json")
        s.unrecognized.push_back(a + " (the built-in harness writes json only)");
    } else if (context != nullptr) {
      const std::string ctx = context;
      std::size_t start = 0;
      while (start <= ctx.size()) {
        std::size_t end = ctx.find(',', start);
        if (end == std::string::npos) end = ctx.size();
        const std::string kv = ctx.substr(start, end - start);
        const std::size_t eq = kv.find('=');
        if (eq != std::string::npos) s.context.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
        start = end + 1;
      }
    } else if (a == "--benchmark_list_tests" || a == "--benchmark_list_tests=true") {
      s.list_only = true;
    } else if (a.rfind("--benchmark_", 0) == 0) {
      s.unrecognized.push_back(a);
    } else {
      argv[kept++] = argv[i];
    }
  }
  *argc = kept;
}

inline bool ReportUnrecognizedArguments(int argc, char** argv) {
  for (const std::string& a : internal::settings().unrecognized)
    std::fprintf(stderr, "%s: unrecognized or unsupported flag %s\n", argv[0], a.c_str());
  for (int i = 1; i < argc; ++i)
    std::fprintf(stderr, "%s: unrecognized argument %s\n", argv[0], argv[i]);
  return argc > 1 || !internal::settings().unrecognized.empty();
}

inline std::size_t RunSpecifiedBenchmarks() {
  const internal::Settings& s = internal::settings();
  const std::regex filter(s.filter);
  std::vector<internal::Result> results;
  if (!s.list_only)
    std::printf("%-40s %14s %12s  %s\n", "Benchmark (built-in harness)", "Time", "Iterations",
                "Counters");
  for (const auto& b : internal::registry()) {
    std::vector<std::vector<int64_t>> sets = b->arg_sets();
    if (sets.empty()) sets.push_back({});
    for (const auto& args : sets) {
      std::string name = b->name();
      for (int64_t a : args) name += "/" + std::to_string(a);
      if (!std::regex_search(name, filter)) continue;
      if (s.list_only) {
        std::printf("%s\n", name.c_str());
        continue;
      }
      internal::Result r = internal::run_one(*b, args, name);
      if (!r.error.empty()) {
        std::printf("%-40s ERROR OCCURRED: '%s'\n", name.c_str(), r.error.c_str());
      } else {
        std::string counters;
        for (const auto& [k, v] : r.counters) counters += k + "=" + internal::si(v) + " ";
        std::printf("%-40s %11.1f %-2s %12lld  %s%s\n", name.c_str(), r.time,
                    internal::unit_name(r.unit), static_cast<long long>(r.iterations),
                    counters.c_str(), r.label.c_str());
      }
      std::fflush(stdout);
      results.push_back(std::move(r));
    }
  }
  if (!s.out.empty() && !s.list_only) internal::write_json(s.out, results);
  return results.size();
}

inline void Shutdown() {}

}  // namespace benchmark
