#include "optim/state_text.h"

#include <charconv>
#include <system_error>

#include "core/error.h"

namespace nn::detail {

std::string format_double(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  NN_CHECK(ec == std::errc(), ValueError, "format_double: cannot format ", v);
  return std::string(buf, end);
}

std::string format_int(int64_t v) { return std::to_string(v); }

const std::string& state_value(const std::map<std::string, std::string>& m, const std::string& key,
                               const char* who) {
  auto it = m.find(key);
  NN_CHECK(it != m.end(), ValueError, who, ": the state has no '", key, "'");
  return it->second;
}

double parse_double(const std::string& text, const std::string& key, const char* who) {
  double v = 0.0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  NN_CHECK(ec == std::errc() && ptr == end && !text.empty(), ValueError, who, ": '", key, "' is '",
           text, "', expected a number");
  return v;
}

int64_t parse_int(const std::string& text, const std::string& key, const char* who) {
  int64_t v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  NN_CHECK(ec == std::errc() && ptr == end && !text.empty(), ValueError, who, ": '", key, "' is '",
           text, "', expected an integer");
  return v;
}

bool parse_bool(const std::string& text, const std::string& key, const char* who) {
  if (text == "true") return true;
  if (text == "false") return false;
  NN_THROW(ValueError, who, ": '", key, "' is '", text, "', expected true or false");
}

}  // namespace nn::detail
