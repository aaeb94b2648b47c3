// data/: IDX and CSV readers (good files, and bad files written here that must give IoError,
// never a crash), the real Fashion-MNIST and scikit-learn digits files, datasets, the
// DataLoader (batching, seeded shuffling, prefetch, errors) and the augmentations.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <set>

#include "core/event.h"
#include "data/augment.h"
#include "data/csv.h"
#include "data/dataset.h"
#include "data/file_reader.h"
#include "data/idx.h"
#include "data/loader.h"
#include "data/mnist.h"
#include "kernels/ops.h"
#include "tests/data_paths.h"
#include "tests/test_util.h"

namespace nn {
namespace {

using ::nn::test::message_of;

using data::IdxArray;
using data::IdxType;
using ::testing::HasSubstr;

std::string raw_bytes(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

std::string slurp(const std::string& path) {  // the bytes on disk, not inflated
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

template <class T>
IdxArray array_of(IdxType type, Shape shape, const std::vector<T>& values) {
  IdxArray a;
  a.type = type;
  a.shape = std::move(shape);
  a.bytes.resize(values.size() * sizeof(T));
  std::memcpy(a.bytes.data(), values.data(), a.bytes.size());
  return a;
}

// 12 values of each IDX type spanning its range, as the array and as doubles.
std::pair<IdxArray, std::vector<double>> sample_array(IdxType type) {
  const Shape shape{2, 3, 2};
  std::vector<double> v;
  for (int i = 0; i < 12; ++i) v.push_back(type == IdxType::UInt8 ? i * 20 : i * 7 - 20);
  auto make = [&]<class T>(std::vector<double> vals) {
    std::vector<T> typed(vals.begin(), vals.end());
    return std::make_pair(array_of(type, shape, typed),
                          std::vector<double>(typed.begin(), typed.end()));
  };
  switch (type) {
    case IdxType::UInt8:
      v[0] = 255, v[1] = 0, v[2] = 128, v[3] = 3;
      return make.operator()<uint8_t>(v);
    case IdxType::Int8:
      v[0] = -128, v[1] = 127;
      return make.operator()<int8_t>(v);
    case IdxType::Int16:
      v[0] = -32768, v[1] = 32767, v[2] = 258;
      return make.operator()<int16_t>(v);
    case IdxType::Int32:
      v[0] = std::numeric_limits<int32_t>::min(), v[1] = std::numeric_limits<int32_t>::max();
      v[2] = 16909060;  // 0x01020304: byte order shows
      return make.operator()<int32_t>(v);
    case IdxType::Float32:
      v[0] = 1.5, v[1] = -2.25, v[2] = 3.0e38;
      return make.operator()<float>(v);
    case IdxType::Float64:
      v[0] = 1e300, v[1] = -1e-300, v[2] = 0.1;
      return make.operator()<double>(v);
  }
  return {};
}

constexpr IdxType kAllIdxTypes[] = {IdxType::UInt8, IdxType::Int8,    IdxType::Int16,
                                    IdxType::Int32, IdxType::Float32, IdxType::Float64};

// ---- IDX ------------------------------------------------------------------------------------

TEST(Idx, RoundTripEveryTypePlainAndGzipped) {
  test::TempDir dir;
  for (IdxType type : kAllIdxTypes) {
    for (bool gz : {false, true}) {
      SCOPED_TRACE(std::string(data::idx_type_name(type)) + (gz ? " gzipped" : " plain"));
      if (gz && !data::has_zlib()) continue;  // BadGzipFilesAreIoErrors checks the message
      const auto [array, values] = sample_array(type);
      const std::string path = dir.file(std::string("a") + (gz ? ".gz" : ""));
      data::write_idx(path, array, gz);
      EXPECT_EQ(slurp(path).substr(0, 2) == "\x1f\x8b", gz);
      const IdxArray back = data::read_idx(path);
      EXPECT_EQ(back.type, type);
      EXPECT_EQ(back.shape, array.shape);
      EXPECT_EQ(back.bytes, array.bytes);
      EXPECT_EQ(back.source, path);
      const Tensor t = back.to_tensor(Dtype::Float64);
      EXPECT_EQ(t.shape(), array.shape);
      EXPECT_EQ(t.to_vector<double>(), values);
    }
  }
}

TEST(Idx, ReadsBigEndianBytesWrittenByHand) {
  test::TempDir dir;
  const std::string path = dir.file("h.idx");
  // int16 [1, 2] = {0x0102, 0xfffe}, then float32 [2] = {1.0, -2.0}.
  data::write_file(path, raw_bytes({0, 0, 0x0B, 2, 0, 0, 0, 1, 0, 0, 0, 2, 1, 2, 0xff, 0xfe}));
  IdxArray a = data::read_idx(path);
  EXPECT_EQ(a.shape, (Shape{1, 2}));
  EXPECT_EQ(a.to_tensor(Dtype::Int64).to_vector<int64_t>(), (std::vector<int64_t>{258, -2}));
  data::write_file(path, raw_bytes({0, 0, 0x0D, 1, 0, 0, 0, 2, 0x3f, 0x80, 0, 0, 0xc0, 0, 0, 0}));
  a = data::read_idx(path);
  EXPECT_EQ(a.to_tensor(Dtype::Float32).to_vector<float>(), (std::vector<float>{1.0f, -2.0f}));
  // A 0-d array holds one value; a zero-sized dimension none.
  data::write_file(path, raw_bytes({0, 0, 0x08, 0, 42}));
  EXPECT_EQ(data::read_idx(path).to_tensor(Dtype::Int64).item(), 42.0);
  data::write_file(path, raw_bytes({0, 0, 0x08, 2, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff}));
  EXPECT_EQ(data::read_idx(path).numel(), 0);
}

TEST(Idx, ImagesAndLabels) {
  const IdxArray images = array_of<uint8_t>(IdxType::UInt8, {2, 1, 2}, {0, 255, 51, 102});
  const Tensor x = data::idx_images(images);
  EXPECT_EQ(x.shape(), (Shape{2, 1, 1, 2}));
  EXPECT_EQ(x.dtype(), Dtype::Float32);
  EXPECT_THAT(x.to_vector<float>(),
              ::testing::Pointwise(::testing::FloatEq(), std::vector<float>{0, 1, 0.2f, 0.4f}));
  EXPECT_EQ(data::idx_images(images, false).shape(), (Shape{2, 1, 2}));
  EXPECT_THROW(data::idx_images(array_of<uint8_t>(IdxType::UInt8, {4}, {1, 2, 3, 4})), IoError);
  const IdxArray labels = array_of<uint8_t>(IdxType::UInt8, {3}, {0, 9, 4});
  const Tensor y = data::idx_labels(labels, 10);
  EXPECT_EQ(y.dtype(), Dtype::Int64);
  EXPECT_EQ(y.to_vector<int64_t>(), (std::vector<int64_t>{0, 9, 4}));
  EXPECT_THAT(message_of<IoError>([&] { data::idx_labels(labels, 5); }), HasSubstr("label 9"));
  EXPECT_THROW(data::idx_labels(array_of<float>(IdxType::Float32, {1}, {1.0f})), IoError);
}

TEST(Idx, BadPlainFilesAreIoErrors) {
  test::TempDir dir;
  const std::string path = dir.file("bad.idx");
  auto expect_io = [&](const std::string& bytes, const std::string& fragment) {
    data::write_file(path, bytes);
    const std::string msg = message_of<IoError>([&] { data::read_idx(path); });
    EXPECT_THAT(msg, HasSubstr(path));
    EXPECT_THAT(msg, HasSubstr(fragment)) << msg;
  };
  expect_io("", "truncated");                                   // empty
  expect_io(raw_bytes({0, 0, 8}), "truncated");                 // short header
  expect_io(raw_bytes({1, 2, 8, 1, 0, 0, 0, 1, 0}), "magic");   // wrong magic
  expect_io(raw_bytes({0, 0, 7, 1, 0, 0, 0, 1, 0}), "magic");   // unknown type code
  expect_io(raw_bytes({0, 0, 8, 3, 0, 0, 0, 1}), "truncated");  // fewer dims than ndim
  expect_io(raw_bytes({0, 0, 8, 1, 0, 0, 0, 10, 1, 2, 3, 4, 5}), "needs 18 bytes, the file has 13");
  expect_io(raw_bytes({0, 0, 8, 1, 0, 0, 0, 2, 1, 2, 3}), "1 trailing bytes");
  expect_io(raw_bytes({0, 0, 8, 1, 0x80, 0, 0, 0}), "non-negative");  // negative size
  // Dimensions whose product overflows 64 bits, and ones far beyond the file's length.
  expect_io(raw_bytes({0,    0,    0x0E, 4,    0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff,
                       0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff}),
            "more than 2^64");
  expect_io(raw_bytes({0, 0, 8, 3, 0, 0, 0xea, 0x60, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2}),
            "[60000, 28, 28]");
  EXPECT_THAT(message_of<IoError>([&] { data::read_idx(dir.file("missing.idx")); }),
              HasSubstr("no such file"));
  EXPECT_THROW(data::read_idx(dir.path().string()), IoError);  // a directory
  // The caller's limit applies before allocating.
  data::write_idx(path, array_of<uint8_t>(IdxType::UInt8, {8}, {1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_THAT(message_of<IoError>([&] { data::read_idx(path, 4); }),
              HasSubstr("8 value bytes, more than the reader's limit of 4"));
}

TEST(Idx, BadGzipFilesAreIoErrors) {
  test::TempDir dir;
  const std::string path = dir.file("bad.gz");
  if (!data::has_zlib()) {
    data::write_file(path, raw_bytes({0x1f, 0x8b, 8, 0}));
    EXPECT_THAT(message_of<IoError>([&] { data::read_idx(path); }), HasSubstr("zlib"));
    return;
  }
  std::mt19937 rng(7);
  std::vector<uint8_t> values(4000);
  for (auto& v : values) v = static_cast<uint8_t>(rng() % 7);  // compressible, not trivially
  data::write_idx(path, array_of(IdxType::UInt8, {4000}, values), true);
  const std::string good = slurp(path);
  ASSERT_EQ(data::read_idx(path).bytes, values);

  auto expect_io = [&](const std::string& bytes, const char* what) {
    SCOPED_TRACE(what);
    data::write_file(path, bytes);
    EXPECT_THAT(message_of<IoError>([&] { data::read_idx(path); }), HasSubstr(path));
  };
  expect_io(good.substr(0, good.size() / 2), "short stream");
  expect_io(good.substr(0, good.size() - 4), "missing length trailer");
  std::string flipped = good;
  for (size_t i = good.size() / 2; i < good.size() / 2 + 16; ++i) flipped[i] ^= 0x5a;
  expect_io(flipped, "corrupt deflate data");
  expect_io(raw_bytes({0x1f, 0x8b, 1, 2, 3, 4, 5, 6}), "gzip magic then junk");

  // A stream longer than its header says, and a tiny file claiming 60000 x 28 x 28 values.
  std::string idx = raw_bytes({0, 0, 8, 1, 0, 0, 0, 2, 1, 2, 3});
  data::write_file(path, idx, true);
  EXPECT_THAT(message_of<IoError>([&] { data::read_idx(path); }), HasSubstr("trailing"));
  idx = raw_bytes({0, 0, 8, 3, 0, 0, 0xea, 0x60, 0, 0, 0, 28, 0, 0, 0, 28});
  data::write_file(path, idx, true);
  EXPECT_THAT(message_of<IoError>([&] { data::read_idx(path); }), HasSubstr("inflate"));
}

// Random truncations and byte flips of good files: each read succeeds or throws nn::Error.
TEST(Idx, MangledFilesNeverCrash) {
  test::TempDir dir;
  const std::string path = dir.file("m");
  std::mt19937 rng(11);
  std::vector<std::string> originals;
  for (bool gz : {false, true}) {
    if (gz && !data::has_zlib()) continue;
    data::write_idx(path, sample_array(IdxType::Int32).first, gz);
    originals.push_back(slurp(path));
  }
  int errors = 0;
  for (int trial = 0; trial < 400; ++trial) {
    std::string bytes = originals[size_t(trial / 2) % originals.size()];
    if (trial % 2 == 0) {
      bytes.resize(rng() % bytes.size());
    } else {
      for (int k = 0; k < 1 + trial % 4; ++k) bytes[rng() % bytes.size()] ^= char(1 + rng() % 255);
    }
    data::write_file(path, bytes);
    try {
      data::read_idx(path);
    } catch (const Error&) {
      ++errors;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "trial " << trial << " threw a non-nn::Error: " << e.what();
    }
  }
  // Every truncation and nearly every flip in a gzip stream (CRC) is caught; a flipped value
  // byte in a plain file is a valid file.
  EXPECT_GT(errors, 250);
}

// ---- MNIST layout and the real Fashion-MNIST ------------------------------------------------

TEST(Mnist, SmallDirectoryAndItsErrors) {
  test::TempDir dir;
  const bool gz = data::has_zlib();
  const std::string images = dir.file(std::string("train-images-idx3-ubyte") + (gz ? ".gz" : ""));
  const std::string labels = dir.file("train-labels-idx1-ubyte");
  data::write_idx(images, array_of<uint8_t>(IdxType::UInt8, {3, 1, 2}, {0, 255, 0, 0, 255, 255}),
                  gz);
  data::write_idx(labels, array_of<uint8_t>(IdxType::UInt8, {3}, {7, 0, 9}));
  const data::LabelledImages d = data::load_mnist(dir.path().string(), data::Split::Train);
  EXPECT_EQ(d.images.shape(), (Shape{3, 1, 1, 2}));
  EXPECT_EQ(d.labels.to_vector<int64_t>(), (std::vector<int64_t>{7, 0, 9}));

  data::write_idx(labels, array_of<uint8_t>(IdxType::UInt8, {2}, {7, 0}));
  EXPECT_THAT(
      message_of<IoError>([&] { data::load_mnist(dir.path().string(), data::Split::Train); }),
      HasSubstr("3 images but"));
  data::write_idx(labels, array_of<uint8_t>(IdxType::UInt8, {3}, {7, 10, 1}));
  EXPECT_THROW(data::load_mnist(dir.path().string(), data::Split::Train), IoError);
  const std::string msg =
      message_of<IoError>([&] { data::load_mnist(dir.path().string(), data::Split::Test); });
  EXPECT_THAT(msg, HasSubstr("t10k-images-idx3-ubyte"));
  EXPECT_THAT(msg, HasSubstr("install Debian's dataset-fashion-mnist or pass --data DIR"));
}

TEST(Mnist, MissingFashionMnistNamesTheDirectoryAndThePackage) {
  test::TempDir dir;
  const char* old = std::getenv("NN_FASHION_MNIST_DIR");
  const std::string saved = old ? old : "";
  setenv("NN_FASHION_MNIST_DIR", dir.path().c_str(), 1);
  const std::string msg = message_of<IoError>([] { data::find_fashion_mnist_dir(); });
  const std::string msg2 =
      message_of<IoError>([] { data::load_fashion_mnist("", data::Split::Train); });
  if (old)
    setenv("NN_FASHION_MNIST_DIR", saved.c_str(), 1);
  else
    unsetenv("NN_FASHION_MNIST_DIR");
  EXPECT_THAT(msg, HasSubstr(dir.path().string()));
  EXPECT_THAT(msg, HasSubstr("install Debian's dataset-fashion-mnist or pass --data DIR"));
  EXPECT_EQ(msg, msg2);
}

TEST(FashionMnist, RealFilesHaveTheDocumentedShapesAndBalancedLabels) {
  const std::string dir = test::fashion_mnist_dir();
  if (dir.empty()) FAIL() << test::kFashionMnistMissing;
  for (auto [split, n] :
       {std::pair{data::Split::Train, 60000}, std::pair{data::Split::Test, 10000}}) {
    SCOPED_TRACE(data::split_name(split));
    const data::LabelledImages d = data::load_fashion_mnist(dir, split);
    EXPECT_EQ(d.images.shape(), (Shape{n, 1, 28, 28}));
    EXPECT_EQ(d.labels.shape(), (Shape{n}));
    EXPECT_EQ(amin(d.images).item(), 0.0);
    EXPECT_EQ(amax(d.images).item(), 1.0);
    std::vector<int64_t> histogram(10, 0);
    for (int64_t y : d.labels.to_vector<int64_t>()) ++histogram.at(size_t(y));
    EXPECT_EQ(histogram, std::vector<int64_t>(10, n / 10));  // Fashion-MNIST is balanced
  }
}

// ---- CSV ------------------------------------------------------------------------------------

TEST(Csv, ReadsValuesHeaderAndLabels) {
  test::TempDir dir;
  const std::string path = dir.file("t.csv");
  data::write_file(path, "a, \"b\" ,label,c\r\n1, 2.5,3,-4\r\n\r\n+5,6e1,0,7\n");
  data::CsvOptions opt;
  opt.has_header = true;
  opt.label_column = 2;
  const data::CsvData d = data::read_csv(path, opt);
  EXPECT_EQ(d.values.shape(), (Shape{2, 3}));
  EXPECT_EQ(d.values.dtype(), Dtype::Float64);
  EXPECT_EQ(d.values.to_vector<double>(), (std::vector<double>{1, 2.5, -4, 5, 60, 7}));
  EXPECT_EQ(d.labels.to_vector<int64_t>(), (std::vector<int64_t>{3, 0}));
  EXPECT_EQ(d.header, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(d.label_name, "label");

  data::write_file(path, "1;2\n3;4\n");
  opt = {};
  opt.delimiter = ';';
  opt.label_column = -1;
  opt.dtype = Dtype::Float32;
  const data::CsvData e = data::read_csv(path, opt);
  EXPECT_EQ(e.values.dtype(), Dtype::Float32);
  EXPECT_EQ(e.values.to_vector<float>(), (std::vector<float>{1, 3}));
  EXPECT_EQ(e.labels.to_vector<int64_t>(), (std::vector<int64_t>{2, 4}));
  EXPECT_TRUE(e.header.empty());
  if (data::has_zlib()) {
    data::write_file(path + ".gz", "1,2\n3,4\n", true);
    EXPECT_EQ(data::read_csv(path + ".gz").values.to_vector<double>(),
              (std::vector<double>{1, 2, 3, 4}));
  }
}

TEST(Csv, BadFilesNameLineColumnAndText) {
  test::TempDir dir;
  const std::string path = dir.file("bad.csv");
  auto msg = [&](const std::string& text, data::CsvOptions opt = {}) {
    data::write_file(path, text);
    return message_of<IoError>([&] { data::read_csv(path, opt); });
  };
  EXPECT_THAT(msg("1,2\n3,4\n5\n"), HasSubstr("line 3 has 1 fields, expected 2"));
  const std::string nonnum = msg("1,2\n3,x7\n");
  EXPECT_THAT(nonnum, HasSubstr("line 2 column 2"));
  EXPECT_THAT(nonnum, HasSubstr("'x7'"));
  EXPECT_THAT(msg("1,,2\n"), HasSubstr("column 2"));
  EXPECT_THAT(msg(""), HasSubstr("empty"));
  EXPECT_THAT(msg("\n  \n"), HasSubstr("empty"));
  data::CsvOptions labelled;
  labelled.label_column = 0;
  EXPECT_THAT(msg("1.5,2\n", labelled), HasSubstr("not an integer"));
  labelled.label_column = 5;
  data::write_file(path, "1,2\n");
  EXPECT_THROW(data::read_csv(path, labelled), ValueError);
  EXPECT_THROW(data::read_csv(dir.file("none.csv")), IoError);
}

TEST(Csv, ScikitLearnDigits) {
  const std::string path = test::sklearn_digits_csv();
  if (path.empty()) GTEST_SKIP() << "python3-sklearn is not installed (no digits.csv.gz)";
  if (!data::has_zlib()) GTEST_SKIP() << "digits.csv.gz needs zlib";
  data::CsvOptions opt;
  opt.label_column = -1;
  const data::CsvData d = data::read_csv(path, opt);
  EXPECT_EQ(d.values.shape(), (Shape{1797, 64}));
  EXPECT_EQ(amin(d.values).item(), 0.0);
  EXPECT_EQ(amax(d.values).item(), 16.0);
  std::vector<int64_t> histogram(10, 0);
  for (int64_t y : d.labels.to_vector<int64_t>()) ++histogram.at(size_t(y));
  for (int64_t count : histogram) EXPECT_GT(count, 170);
}

// ---- datasets -------------------------------------------------------------------------------

// n examples: input [1, 4, 4] with values 16 * i + pixel, target i.
std::shared_ptr<data::TensorDataset> indexed_dataset(int64_t n) {
  std::vector<float> x(size_t(n) * 16);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i);
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[size_t(i)] = i;
  return std::make_shared<data::TensorDataset>(from_vector(x, {n, 1, 4, 4}), from_vector(y, {n}));
}

TEST(Dataset, TensorDatasetSubsetAndRandomSplit) {
  auto ds = indexed_dataset(10);
  EXPECT_EQ(ds->size(), 10);
  const data::Example ex = ds->get(3);
  EXPECT_EQ(ex.input.shape(), (Shape{1, 4, 4}));
  EXPECT_EQ(ex.input.to_vector<float>()[0], 48.0f);
  EXPECT_EQ(ex.target.item(), 3.0);
  EXPECT_THROW(ds->get(10), IndexError);
  EXPECT_THROW(data::TensorDataset(zeros({3, 2}), zeros({4})), ShapeError);

  const auto parts = data::random_split(ds, {7, 3}, 5);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0]->size(), 7);
  std::set<int64_t> seen;
  for (const auto& p : parts)
    for (int64_t i = 0; i < p->size(); ++i) seen.insert(int64_t(p->get(i).target.item()));
  EXPECT_EQ(seen.size(), 10u);  // disjoint and complete
  EXPECT_EQ(data::random_split(ds, {7, 3}, 5)[1]->indices(), parts[1]->indices());
  EXPECT_NE(data::random_split(ds, {7, 3}, 6)[0]->indices(), parts[0]->indices());
  EXPECT_THROW(data::random_split(ds, {7, 2}, 5), ValueError);
  EXPECT_THROW(data::Subset(ds, {0, 10}), IndexError);
}

// Examples computed on the fly (the default gather): input [2] = {i, -i}, target 0-d i*i.
class SquaresDataset : public data::Dataset {
 public:
  explicit SquaresDataset(int64_t n, int64_t bad = -1) : n_(n), bad_(bad) {}
  int64_t size() const override { return n_; }
  data::Example get(int64_t i) const override {
    NN_CHECK(i != bad_, IoError, "SquaresDataset: example ", i, " is unreadable");
    return {from_vector(std::vector<float>{float(i), float(-i)}, {2}),
            from_vector(std::vector<int64_t>{i * i}, {})};
  }

 private:
  int64_t n_, bad_;
};

// ---- DataLoader -----------------------------------------------------------------------------

struct Seen {
  std::vector<std::vector<float>> inputs;
  std::vector<std::vector<int64_t>> targets;
};

Seen run_epoch(data::DataLoader& loader) {
  Seen s;
  for (const data::Batch& b : loader) {
    s.inputs.push_back(b.inputs.to_vector<float>());
    s.targets.push_back(b.targets.to_vector<int64_t>());
    EXPECT_EQ(b.indices, s.targets.back());
  }
  return s;
}

TEST(DataLoader, BatchCountsWithAndWithoutDropLast) {
  auto ds = indexed_dataset(10);
  data::DataLoader keep(ds, {.batch_size = 3});
  EXPECT_EQ(keep.size(), 4);
  const Seen s = run_epoch(keep);
  ASSERT_EQ(s.targets.size(), 4u);
  EXPECT_EQ(s.targets[3], (std::vector<int64_t>{9}));
  EXPECT_EQ(s.targets[0], (std::vector<int64_t>{0, 1, 2}));  // no shuffle: in order
  data::DataLoader drop(ds, {.batch_size = 3, .drop_last = true});
  EXPECT_EQ(drop.size(), 3);
  EXPECT_EQ(run_epoch(drop).targets.size(), 3u);
  data::DataLoader empty_loader(indexed_dataset(2), {.batch_size = 3, .drop_last = true});
  EXPECT_EQ(empty_loader.size(), 0);
  EXPECT_TRUE(empty_loader.begin() == empty_loader.end());
  EXPECT_THROW(data::DataLoader(ds, {.batch_size = 0}), ValueError);
}

TEST(DataLoader, SeededShuffleCoversEveryExampleOncePerEpoch) {
  auto ds = indexed_dataset(23);
  for (bool prefetch : {false, true}) {
    SCOPED_TRACE(prefetch ? "prefetch" : "no prefetch");
    data::LoaderOptions opt{.batch_size = 4, .shuffle = true, .seed = 99, .prefetch = prefetch};
    data::DataLoader a(ds, opt), b(ds, opt);
    std::vector<std::vector<int64_t>> orders;
    for (int e = 0; e < 3; ++e) {
      std::vector<int64_t> order;
      for (const auto& t : run_epoch(a).targets) order.insert(order.end(), t.begin(), t.end());
      EXPECT_EQ(std::set<int64_t>(order.begin(), order.end()).size(), 23u);
      EXPECT_EQ(order.size(), 23u);
      EXPECT_EQ(order, a.order(e));
      orders.push_back(order);
    }
    EXPECT_NE(orders[0], orders[1]);
    EXPECT_NE(orders[1], orders[2]);
    // Another loader with the same seed: the same order per epoch, whichever way it gets there.
    for (int64_t e : {0, 2, 1}) {
      b.set_epoch(e);
      std::vector<int64_t> again;
      for (const auto& t : run_epoch(b).targets) again.insert(again.end(), t.begin(), t.end());
      EXPECT_EQ(again, orders[size_t(e)]);
    }
    data::DataLoader other(ds, {.batch_size = 4, .shuffle = true, .seed = 100});
    EXPECT_NE(other.order(0), orders[0]);
  }
}

TEST(DataLoader, PrefetchGivesTheSameBatchesAsNoPrefetch) {
  auto ds = indexed_dataset(37);
  auto augment = data::compose(
      {data::random_crop(1), data::random_horizontal_flip(), data::gaussian_noise(0.1)});
  std::vector<Seen> runs;
  for (bool prefetch : {false, true}) {
    data::DataLoader loader(
        ds,
        {.batch_size = 5, .shuffle = true, .seed = 3, .transform = augment, .prefetch = prefetch});
    runs.push_back(run_epoch(loader));
    Seen second = run_epoch(loader);
    runs.back().inputs.insert(runs.back().inputs.end(), second.inputs.begin(), second.inputs.end());
  }
  EXPECT_EQ(runs[0].targets, runs[1].targets);
  EXPECT_EQ(runs[0].inputs, runs[1].inputs);
  EXPECT_EQ(runs[0].inputs.size(), 16u);
  EXPECT_NE(runs[0].inputs[0], runs[0].inputs[8]);  // a new epoch draws new augmentations
}

TEST(DataLoader, ErrorsInTransformOrDatasetSurfaceOnTheCaller) {
  auto ds = indexed_dataset(12);
  // Batch 2 (examples 6..8 without shuffle) starts with the value 6 * 16.
  data::Transform fail_at_2 = [](Tensor& x, uint64_t) {
    if (x.data<float>()[0] == 96.0f) NN_THROW(ValueError, "transform: cannot augment batch 2");
  };
  for (bool prefetch : {false, true}) {
    SCOPED_TRACE(prefetch ? "prefetch" : "no prefetch");
    data::DataLoader loader(ds, {.batch_size = 3, .transform = fail_at_2, .prefetch = prefetch});
    for (int round = 0; round < 2; ++round) {  // the loader is usable again after an error
      int delivered = 0;
      const std::string msg = message_of<ValueError>([&] {
        for (const data::Batch& b : loader) delivered += int(b.size() > 0);
      });
      EXPECT_THAT(msg, HasSubstr("cannot augment batch 2"));
      EXPECT_EQ(delivered, 2);
    }
    data::DataLoader first_fails(std::make_shared<SquaresDataset>(6, 1),
                                 {.batch_size = 2, .prefetch = prefetch});
    EXPECT_THAT(message_of<IoError>([&] { first_fails.begin(); }), HasSubstr("example 1"));
  }
}

TEST(DataLoader, DefaultGatherStacksExamples) {
  data::DataLoader loader(std::make_shared<SquaresDataset>(5), {.batch_size = 2, .prefetch = true});
  auto it = loader.begin();
  EXPECT_EQ(it->inputs.shape(), (Shape{2, 2}));
  EXPECT_EQ(it->inputs.to_vector<float>(), (std::vector<float>{0, 0, 1, -1}));
  EXPECT_EQ(it->targets.shape(), (Shape{2}));
  ++it;
  EXPECT_EQ(it->targets.to_vector<int64_t>(), (std::vector<int64_t>{4, 9}));
  ++it;
  EXPECT_EQ(it->targets.to_vector<int64_t>(), (std::vector<int64_t>{16}));
  ++it;
  EXPECT_TRUE(it == loader.end());
  EXPECT_THROW(++it, ValueError);
}

TEST(DataLoader, StoppingMidEpochJoinsTheWorker) {
  auto ds = indexed_dataset(50);
  for (int trial = 0; trial < 20; ++trial) {
    data::DataLoader loader(ds, {.batch_size = 2, .shuffle = true, .prefetch = true});
    auto stale = loader.begin();
    EXPECT_EQ(stale->size(), 2);
    auto fresh = loader.begin();  // restarts: the first epoch's iterator is now invalid
    EXPECT_THROW(*stale, ValueError);
    EXPECT_EQ(loader.epoch(), 2);
    if (trial % 2) ++fresh;
  }  // destroyed mid-epoch: must not hang or crash
}

TEST(DataLoader, CudaDeviceWithoutGpuIsDeviceError) {
  if (cuda::available()) GTEST_SKIP() << "a GPU is present (tests/test_data_gpu.cpp covers it)";
  EXPECT_THROW(data::DataLoader(indexed_dataset(4), {.device = Device::cuda()}), DeviceError);
  EXPECT_THROW(cuda::Event::create(Device::cuda()), DeviceError);
}

TEST(Event, UndefinedEventIsValueError) {
  cuda::Event e;
  EXPECT_FALSE(e.defined());
  EXPECT_THROW(e.record(), ValueError);
  EXPECT_THROW(e.wait(), ValueError);
  EXPECT_THROW(e.synchronize(), ValueError);
  EXPECT_THROW(e.query(), ValueError);
  EXPECT_THROW(cuda::Event::create(Device::cpu()), DeviceError);
}

// ---- augmentation ---------------------------------------------------------------------------

Tensor ramp(const Shape& shape) {  // 1, 2, 3, ... (never 0, so padding zeros stand out)
  std::vector<float> v(size_t(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i + 1);
  return from_vector(v, shape);
}

TEST(Augment, FlipTwiceAndCropWithoutPaddingAreIdentities) {
  const Tensor x = ramp({3, 2, 4, 5});
  Tensor y = x.clone();
  data::horizontal_flip_(y);
  EXPECT_EQ(y.to_vector<float>()[0], 5.0f);  // the first row reversed
  EXPECT_EQ(y.to_vector<float>()[4], 1.0f);
  data::horizontal_flip_(y);
  EXPECT_EQ(y.to_vector<float>(), x.to_vector<float>());
  data::random_crop_(y, 0, 123);
  EXPECT_EQ(y.to_vector<float>(), x.to_vector<float>());
  data::random_horizontal_flip_(y, 0.0, 5);
  EXPECT_EQ(y.to_vector<float>(), x.to_vector<float>());
  data::random_horizontal_flip_(y, 1.0, 5);
  Tensor z = x.clone();
  data::horizontal_flip_(z);
  EXPECT_EQ(y.to_vector<float>(), z.to_vector<float>());
}

TEST(Augment, RandomCropIsAZeroPaddedShiftPerSample) {
  const int64_t n = 64, c = 2, h = 5, w = 6, pad = 2;
  const Tensor x = ramp({n, c, h, w});
  Tensor y = x.clone();
  data::random_crop_(y, pad, 42);
  EXPECT_EQ(y.shape(), x.shape());
  const std::vector<float> out = y.to_vector<float>();
  std::set<std::pair<int64_t, int64_t>> offsets;
  for (int64_t s = 0; s < n; ++s) {
    // Sample s holds 1 + s*c*h*w + ..., so any non-zero value reveals the shift.
    int64_t oy = 0, ox = 0;
    bool found = false;
    for (int64_t i = 0; i < c * h * w && !found; ++i) {
      const float v = out[size_t(s * c * h * w + i)];
      if (v == 0.0f) continue;
      const int64_t src = int64_t(v) - 1 - s * c * h * w;
      oy = (src % (h * w)) / w - (i % (h * w)) / w;
      ox = src % w - i % w;
      found = true;
    }
    ASSERT_TRUE(found) << "sample " << s << " is all zeros";
    EXPECT_LE(std::abs(oy), pad);
    EXPECT_LE(std::abs(ox), pad);
    offsets.insert({oy, ox});
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t yy = 0; yy < h; ++yy)
        for (int64_t xx = 0; xx < w; ++xx) {
          const int64_t sy = yy + oy, sx = xx + ox;
          const bool inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
          const float want = inside ? float(1 + s * c * h * w + ch * h * w + sy * w + sx) : 0.0f;
          ASSERT_EQ(out[size_t(((s * c + ch) * h + yy) * w + xx)], want);
        }
  }
  EXPECT_GT(offsets.size(), 10u);  // the offset varies per sample
}

TEST(Augment, SeedsMakeAugmentationDeterministic) {
  const Tensor x = ramp({8, 1, 6, 6});
  auto t = data::compose(
      {data::random_crop(2), data::random_horizontal_flip(0.5), data::gaussian_noise(0.5)});
  Tensor a = x.clone(), b = x.clone(), c = x.clone();
  t(a, 7);
  t(b, 7);
  t(c, 8);
  EXPECT_EQ(a.shape(), x.shape());
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
  EXPECT_NE(a.to_vector<float>(), c.to_vector<float>());
  Tensor d = ramp({8, 6, 6});  // [N, H, W] works too
  t(d, 7);
  EXPECT_EQ(d.shape(), (Shape{8, 6, 6}));
}

TEST(Augment, NoiseAndNormalisationValues) {
  Tensor z = zeros({4, 1, 100, 100});
  data::gaussian_noise_(z, 0.5, 1);
  EXPECT_NEAR(mean(z).item(), 0.0, 0.01);
  EXPECT_NEAR(std::sqrt(var(z).item()), 0.5, 0.01);

  Tensor x = from_vector(std::vector<float>{1, 3, 10, 30, 5, 7, 20, 40}, {2, 2, 1, 2});
  data::normalize_(x, {2.0, 20.0}, {1.0, 10.0});
  EXPECT_EQ(x.to_vector<float>(), (std::vector<float>{-1, 1, -1, 1, 3, 5, 0, 2}));
  Tensor g = from_vector(std::vector<float>{0.5f, 1.0f}, {1, 1, 2});
  data::normalize({0.5}, {0.25})(g, 0);
  EXPECT_EQ(g.to_vector<float>(), (std::vector<float>{0.0f, 2.0f}));
}

TEST(Augment, BadArguments) {
  Tensor d = zeros({2, 3, 4}, {Dtype::Float64});
  EXPECT_THROW(data::horizontal_flip_(d), DtypeError);
  Tensor flat = zeros({2, 3});
  EXPECT_THROW(data::random_crop_(flat, 1, 0), ShapeError);
  Tensor x = zeros({2, 3, 4, 4});
  EXPECT_THROW(data::normalize_(x, {0.0, 0.0}, {1.0}), ValueError);
  EXPECT_THROW(data::normalize_(x, {0.0}, {0.0}), ValueError);
  EXPECT_THROW(data::random_horizontal_flip(1.5), ValueError);
  EXPECT_THROW(data::random_crop(-1), ValueError);
  EXPECT_THROW(data::gaussian_noise(-0.1), ValueError);
  Tensor strided = zeros({2, 4, 4}).transpose(1, 2);
  EXPECT_THROW(data::horizontal_flip_(strided), ValueError);
}

}  // namespace
}  // namespace nn
