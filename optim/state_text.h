// Internal to optim/ (not installed): numbers <-> metadata strings for state dicts and
// checkpoints. Doubles are written in their shortest round-trip form, so a resumed run reads
// back exactly the learning rates and moments it saved (inf and nan included).
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace nn::detail {

std::string format_double(double v);
std::string format_int(int64_t v);
inline std::string format_bool(bool v) { return v ? "true" : "false"; }

// The value of `key` in `m`; ValueError "<who>: state has no '<key>'" when absent.
const std::string& state_value(const std::map<std::string, std::string>& m, const std::string& key,
                               const char* who);
// Parsers of the whole text; ValueError "<who>: '<key>' is '<text>', expected ..." otherwise.
double parse_double(const std::string& text, const std::string& key, const char* who);
int64_t parse_int(const std::string& text, const std::string& key, const char* who);
bool parse_bool(const std::string& text, const std::string& key, const char* who);

inline double state_double(const std::map<std::string, std::string>& m, const std::string& key,
                           const char* who) {
  return parse_double(state_value(m, key, who), key, who);
}
inline int64_t state_int(const std::map<std::string, std::string>& m, const std::string& key,
                         const char* who) {
  return parse_int(state_value(m, key, who), key, who);
}
inline bool state_bool(const std::map<std::string, std::string>& m, const std::string& key,
                       const char* who) {
  return parse_bool(state_value(m, key, who), key, who);
}

}  // namespace nn::detail
