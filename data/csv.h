// Numeric CSV files (gzipped or not): one sample per line, fields separated by a delimiter,
// optionally a header line of column names and one integer label column.
//
// Blank lines are skipped; a field may carry surrounding spaces and '\r' line ends are
// accepted. Errors are IoError naming the path: an empty file, a ragged row (line number and
// field counts), a field that is not a number (line, column and the text), a label that is not
// an integer. A label column outside the file's columns is a ValueError.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace nn::data {

struct CsvOptions {
  char delimiter = ',';
  bool has_header = false;
  // The column (0-based; negative counts from the end, -1 is the last) returned as int64
  // labels and removed from the values; none when unset.
  std::optional<int64_t> label_column;
  Dtype dtype = Dtype::Float64;            // of the values: float32 or float64
  uint64_t max_bytes = uint64_t(1) << 32;  // refuse larger files (after inflating)
};

struct CsvData {
  Tensor values;                    // [rows, columns without the label], options.dtype
  Tensor labels;                    // int64 [rows]; undefined without a label column
  std::vector<std::string> header;  // column names of `values` (empty without a header)
  std::string label_name;           // the label column's name (header and label column only)
};

CsvData read_csv(const std::string& path, const CsvOptions& options = {});

}  // namespace nn::data
