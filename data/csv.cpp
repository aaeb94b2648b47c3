// CSV parsing: the file is read whole (bounded by max_bytes), split into lines and fields in
// place with string_views, and parsed with std::from_chars, which is locale-independent.
#include "data/csv.h"

#include <charconv>
#include <cmath>
#include <string_view>

#include "core/error.h"
#include "data/file_reader.h"
#include "kernels/ops.h"

namespace nn::data {
namespace {

std::string_view trim(std::string_view s) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view unquote(std::string_view s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  return s;
}

std::vector<std::string_view> split_fields(std::string_view line, char delimiter) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  for (;;) {
    const size_t end = line.find(delimiter, start);
    fields.push_back(unquote(trim(line.substr(start, end - start))));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return fields;
}

bool parse_double(std::string_view s, double& out) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);  // from_chars takes no leading '+'
  if (s.empty()) return false;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// Calls f(line_number, line) for each non-blank line; line numbers count from 1.
template <class F>
void for_each_line(std::string_view text, F&& f) {
  int64_t number = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    ++number;
    const std::string_view line = text.substr(start, end - start);
    if (!trim(line).empty()) f(number, line);
    start = end + 1;
  }
}

}  // namespace

CsvData read_csv(const std::string& path, const CsvOptions& options) {
  const char d = options.delimiter;
  NN_CHECK(d != '\n' && d != '\r' && d != '"' && d != '\0', ValueError, "read_csv: delimiter code ",
           int(d), " cannot separate fields");
  NN_CHECK(options.dtype == Dtype::Float32 || options.dtype == Dtype::Float64, DtypeError,
           "read_csv: values of dtype ", dtype_name(options.dtype),
           " are not supported, expected float32 or float64");
  const std::string text = read_file(path, options.max_bytes);

  CsvData out;
  std::vector<double> values;
  std::vector<int64_t> labels;
  int64_t columns = -1;    // fields per line, fixed by the first line
  int64_t first_line = 0;  // the line that fixed it
  int64_t label_col = -1;  // resolved label column
  int64_t rows = 0;
  bool header_pending = options.has_header;

  auto fix_columns = [&](int64_t count, int64_t line_no) {
    columns = count;
    first_line = line_no;
    if (!options.label_column) return;
    const int64_t c = *options.label_column;
    NN_CHECK(c >= -count && c < count, ValueError, "read_csv: label column ", c, " is outside the ",
             count, " columns of '", path, "' (line ", line_no, ")");
    label_col = c < 0 ? c + count : c;
  };

  for_each_line(text, [&](int64_t line_no, std::string_view line) {
    const std::vector<std::string_view> fields = split_fields(line, d);
    const auto count = static_cast<int64_t>(fields.size());
    if (columns < 0) {
      fix_columns(count, line_no);
    } else {
      NN_CHECK(count == columns, IoError, "read_csv: '", path, "' line ", line_no, " has ", count,
               " fields, expected ", columns, " as on line ", first_line);
    }
    if (header_pending) {
      header_pending = false;
      for (int64_t c = 0; c < count; ++c) {
        if (c == label_col)
          out.label_name = std::string(fields[size_t(c)]);
        else
          out.header.emplace_back(fields[size_t(c)]);
      }
      return;
    }
    for (int64_t c = 0; c < count; ++c) {
      const std::string_view field = fields[size_t(c)];
      double v = 0.0;
      NN_CHECK(parse_double(field, v), IoError, "read_csv: '", path, "' line ", line_no, " column ",
               c + 1, ": '", field, "' is not a number");
      if (c == label_col) {
        NN_CHECK(std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9.0e18, IoError,
                 "read_csv: '", path, "' line ", line_no, " column ", c + 1, ": label '", field,
                 "' is not an integer");
        labels.push_back(static_cast<int64_t>(v));
      } else {
        values.push_back(v);
      }
    }
    ++rows;
  });
  NN_CHECK(columns >= 0, IoError, "read_csv: '", path, "' is empty, expected at least one line");

  const int64_t value_cols = columns - (label_col >= 0 ? 1 : 0);
  Tensor v64 = from_vector(values, {rows, value_cols}, {Dtype::Float64});
  out.values = options.dtype == Dtype::Float64 ? v64 : v64.to(options.dtype);
  if (label_col >= 0) out.labels = from_vector(labels, {rows}, {Dtype::Int64});
  return out;
}

}  // namespace nn::data
