// core/atomic_file.h and core/safetensors.h: atomic replacement, safetensors round trips, the
// exact bytes written, and corrupted files (each an IoError naming the file and the tensor).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <stdexcept>

#include "core/io.h"
#include "kernels/ops.h"
#include "tests/test_util.h"

namespace nn {
namespace {

using ::nn::test::message_of;

namespace fs = std::filesystem;
using io::FileSink;
using io::load_safetensors;
using io::save_safetensors;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((v >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file from a header (padded to 8 bytes as the reference does) and data bytes.
std::string st_file(std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return le64(header.size()) + header + data;
}

// The bytes of a contiguous host copy of t.
std::string tensor_bytes(const Tensor& t) {
  Tensor h = t.contiguous().to(Device::cpu());
  if (h.numel() == 0) return {};
  return std::string(static_cast<const char*>(h.data_ptr()), h.nbytes());
}

class IoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("nn_test_io_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::set<std::string> listing() const {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.insert(e.path().filename().string());
    return names;
  }

  fs::path dir_;
};

// ---- atomic writes --------------------------------------------------------------------------

TEST_F(IoTest, AtomicWriteCreatesAndReplaces) {
  const std::string p = path("out.bin");
  io::write_file_atomic(p, std::string_view("first"));
  EXPECT_EQ(read_bytes(p), "first");
  uint64_t written = 0;
  io::write_file_atomic(p, [&](FileSink& sink) {
    sink.write("second, ");
    sink.write("longer", 6);
    written = sink.bytes_written();
    EXPECT_EQ(sink.path(), p);
  });
  EXPECT_EQ(written, 14u);
  EXPECT_EQ(read_bytes(p), "second, longer");
  EXPECT_EQ(listing(), std::set<std::string>{"out.bin"});  // no temporary left behind
}

TEST_F(IoTest, FailedWriterKeepsTheOldFileAndRemovesTheTemporary) {
  const std::string p = path("keep.bin");
  write_bytes(p, "old content");
  // The writer's own exception comes through unchanged, after the clean-up.
  EXPECT_THROW(io::write_file_atomic(p,
                                     [](FileSink& sink) {
                                       sink.write("half of the new con");
                                       throw std::runtime_error("writer failed midway");
                                     }),
               std::runtime_error);
  EXPECT_EQ(read_bytes(p), "old content");
  EXPECT_EQ(listing(), std::set<std::string>{"keep.bin"});
}

TEST_F(IoTest, FailedRenameIsAnIoErrorAndRemovesTheTemporary) {
  // A non-empty directory cannot be replaced by a file: the rename fails after a full write.
  const std::string p = path("a_dir");
  fs::create_directories(p);
  write_bytes(p + "/inside", "x");
  const std::string msg =
      message_of<IoError>([&] { io::write_file_atomic(p, std::string_view("data")); });
  EXPECT_THAT(msg, AllOf(HasSubstr("write_file_atomic"), HasSubstr(p), HasSubstr("renam")));
  EXPECT_EQ(listing(), std::set<std::string>{"a_dir"});
  EXPECT_EQ(read_bytes(p + "/inside"), "x");
}

TEST_F(IoTest, MissingDirectoryIsAnIoErrorNamingThePath) {
  const std::string p = path("no/such/dir/file.bin");
  const std::string msg =
      message_of<IoError>([&] { io::write_file_atomic(p, std::string_view("x")); });
  EXPECT_THAT(msg, AllOf(HasSubstr(p), HasSubstr("No such file or directory")));
  EXPECT_FALSE(fs::exists(p));
}

TEST_F(IoTest, BadPathsAreValueErrors) {
  EXPECT_THROW(io::write_file_atomic("", std::string_view("x")), ValueError);
  EXPECT_THROW(io::write_file_atomic(path("d") + "/", std::string_view("x")), ValueError);
}

// ---- safetensors round trips ----------------------------------------------------------------

TEST_F(IoTest, RoundTripKeepsEveryDtypeShapeValueAndTheOrder) {
  Generator gen(7);
  io::NamedTensors in = {
      {"f32", randn({3, 4}, {}, &gen)},
      {"f64.transposed", randn({2, 3}, {Dtype::Float64}, &gen).t()},
      {"bf16", randn({5}, {Dtype::BFloat16}, &gen)},
      {"f16.strided", randn({4, 6}, {Dtype::Float16}, &gen).slice(1, 0, 6, 2)},
      {"i64", from_vector<int64_t>({-1, std::numeric_limits<int64_t>::max(),
                                    std::numeric_limits<int64_t>::min(), 42},
                                   {2, 2})},
      {"bool", from_vector<float>({0, 2, -1, 0, 1}, {5}).to(Dtype::Bool)},
      {"scalar", from_vector<double>({3.25}, {})},
      {"empty", zeros({0})},
      {"empty.bf16", zeros({2, 0, 3}, {Dtype::BFloat16})},
      {"expanded", from_vector<float>({1, 2, 3}, {3, 1}).expand({3, 4})},
      {"a", from_vector<float>({9}, {1})},  // names keep the given order, not sorted
  };
  const io::Metadata meta = {{"epoch", "12"}, {"format", "pt"}, {"note", "quotes \" and \\ ok"}};
  const std::string p = path("model.safetensors");
  save_safetensors(p, in, meta);

  io::SafetensorsFile out = load_safetensors(p);
  EXPECT_EQ(out.metadata, meta);
  ASSERT_EQ(out.tensors.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    SCOPED_TRACE(in[i].first);
    const Tensor& a = in[i].second;
    const Tensor& b = out.tensors[i].second;
    EXPECT_EQ(out.tensors[i].first, in[i].first);
    EXPECT_EQ(b.dtype(), a.dtype());
    EXPECT_EQ(b.shape(), a.shape());
    EXPECT_TRUE(b.is_contiguous());
    EXPECT_TRUE(b.device().is_cpu());
    EXPECT_EQ(tensor_bytes(b), tensor_bytes(a));  // bit-exact, half types included
  }
  ASSERT_NE(out.find("i64"), nullptr);
  EXPECT_EQ(out.find("i64")->to_vector<int64_t>()[1], std::numeric_limits<int64_t>::max());
  EXPECT_EQ(out.find("missing"), nullptr);
  EXPECT_EQ(io::read_safetensors_metadata(p), meta);
  EXPECT_EQ(listing(), std::set<std::string>{"model.safetensors"});
}

TEST_F(IoTest, NoTensorsAndNoMetadataRoundTrip) {
  const std::string p = path("empty.safetensors");
  save_safetensors(p, {});
  EXPECT_EQ(read_bytes(p), le64(8) + "{}      ");
  io::SafetensorsFile out = load_safetensors(p);
  EXPECT_TRUE(out.tensors.empty());
  EXPECT_TRUE(out.metadata.empty());
}

TEST_F(IoTest, BytesOnDiskMatchAHandBuiltFile) {
  const std::string p = path("tiny.safetensors");
  save_safetensors(p,
                   {{"w", from_vector<float>({1.0f, -2.0f}, {2})},
                    {"n", from_vector<int64_t>({7}, {})},
                    {"h", from_vector<float>({1.0f}, {1, 1}).to(Dtype::BFloat16)}},
                   {{"epoch", "3"}});
  // Compact JSON, metadata first, entries in the order given with dtype, shape, data_offsets,
  // spaces up to a multiple of 8, then the little-endian data back to back.
  const std::string header = R"({"__metadata__":{"epoch":"3"},)"
                             R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("n":{"dtype":"I64","shape":[],"data_offsets":[8,16]},)"
                             R"("h":{"dtype":"BF16","shape":[1,1],"data_offsets":[16,18]}})";
  ASSERT_EQ(header.size(), 194u);
  const std::string expected = le64(200) + header + "      " +
                               std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8) +  // 1, -2
                               std::string("\x07\0\0\0\0\0\0\0", 8) +                // 7
                               std::string("\x80\x3f", 2);                           // bf16 1
  EXPECT_EQ(read_bytes(p), expected);
}

TEST_F(IoTest, LoadsInDataOrderAndWidensIntegers) {
  // As the reference writer does, the header need not list tensors in data order.
  const std::string header =
      R"({"b":{"dtype":"BOOL","shape":[3],"data_offsets":[18,21]},)"
      R"("i32":{"dtype":"I32","shape":[3],"data_offsets":[0,12]},)"
      R"("e2":{"dtype":"F32","shape":[0],"data_offsets":[12,12]},)"
      R"("u8":{"dtype":"U8","shape":[2],"data_offsets":[12,14]},)"
      R"("e1":{"dtype":"F64","shape":[4,0],"data_offsets":[12,12]},)"
      R"("i16":{"dtype":"I16","shape":[2],"data_offsets":[14,18],"extra":"ignored"},)"
      R"("__metadata__":null})";
  std::string data;
  for (int32_t v : {-5, std::numeric_limits<int32_t>::max(), 0})
    data.append(reinterpret_cast<const char*>(&v), 4);
  data += "\xff\x01";
  for (int16_t v : {int16_t(-300), int16_t(2)}) data.append(reinterpret_cast<const char*>(&v), 2);
  data += std::string("\x00\x01\x02", 3);  // 2 is not a valid bool byte: read as true
  const std::string p = path("mixed.safetensors");
  write_bytes(p, st_file(header, data));

  io::SafetensorsFile f = load_safetensors(p);
  std::vector<std::string> names;
  for (const auto& [n, t] : f.tensors) names.push_back(n);
  // Offset order; the empty tensors at offset 12 keep their header order.
  EXPECT_THAT(names, ElementsAre("i32", "e2", "e1", "u8", "i16", "b"));
  EXPECT_TRUE(f.metadata.empty());
  EXPECT_EQ(f.find("i32")->dtype(), Dtype::Int64);
  EXPECT_THAT(f.find("i32")->to_vector<int64_t>(), ElementsAre(-5, 2147483647, 0));
  EXPECT_THAT(f.find("u8")->to_vector<int64_t>(), ElementsAre(255, 1));
  EXPECT_THAT(f.find("i16")->to_vector<int64_t>(), ElementsAre(-300, 2));
  EXPECT_EQ(f.find("e1")->shape(), (Shape{4, 0}));
  EXPECT_EQ(tensor_bytes(*f.find("b")), std::string("\x00\x01\x01", 3));
}

TEST_F(IoTest, SaveRejectsBadNamesAndKeepsTheOldFile) {
  const std::string p = path("keep.safetensors");
  write_bytes(p, "old");
  Tensor x = zeros({2});
  auto expect_value_error = [&](const io::NamedTensors& t, const io::Metadata& m,
                                const std::string& what) {
    SCOPED_TRACE(what);
    EXPECT_THAT(message_of<ValueError>([&] { save_safetensors(p, t, m); }),
                AllOf(HasSubstr("save_safetensors"), HasSubstr(p), HasSubstr(what)));
  };
  expect_value_error({{"a", x}, {"b", x}, {"a", x}}, {}, "'a' is given twice");
  expect_value_error({{"a", x}, {"", x}}, {}, "empty name");
  expect_value_error({{"__metadata__", x}}, {}, "reserves");
  expect_value_error({{"a", Tensor()}}, {}, "'a' is undefined");
  expect_value_error({{"bad\xff", x}}, {}, "UTF-8");
  expect_value_error({{"a", x}}, {{"k", "bad\xc3"}}, "UTF-8");
  EXPECT_EQ(read_bytes(p), "old");
  EXPECT_EQ(listing(), std::set<std::string>{"keep.safetensors"});
}

TEST_F(IoTest, LoadToCudaWithoutAGpuIsADeviceError) {
  if (cuda::available()) GTEST_SKIP() << "a GPU is present (test_io_gpu.cpp loads onto it)";
  const std::string p = path("x.safetensors");
  save_safetensors(p, {{"x", zeros({2})}});
  EXPECT_THROW(load_safetensors(p, Device::cuda()), DeviceError);
}

// ---- corrupted files ------------------------------------------------------------------------

TEST_F(IoTest, EveryTruncationIsAnIoError) {
  const std::string p = path("t.safetensors");
  save_safetensors(
      p, {{"a", from_vector<float>({1, 2, 3}, {3})}, {"b", from_vector<int64_t>({4}, {1})}},
      {{"k", "v"}});
  const std::string whole = read_bytes(p);
  const uint64_t header_len = whole.size() - 8 - 20;
  ASSERT_EQ(whole.substr(0, 8), le64(header_len));
  // Inside the length, the header, the data, and every byte in between. Shrinking in place is
  // much cheaper than rewriting the file each time.
  for (size_t n = whole.size(); n-- > 0;) {
    SCOPED_TRACE(n);
    fs::resize_file(p, n);
    EXPECT_THAT(message_of<IoError>([&] { load_safetensors(p); }),
                AllOf(HasSubstr("load_safetensors"), HasSubstr(p)));
  }
  write_bytes(p, whole + "x");  // one trailing byte
  EXPECT_THAT(message_of<IoError>([&] { load_safetensors(p); }), HasSubstr("cover"));
  write_bytes(p, whole);
  EXPECT_NO_THROW(load_safetensors(p));
}

TEST_F(IoTest, EveryByteCorruptionLoadsOrIsAnIoError) {
  const std::string p = path("c.safetensors");
  save_safetensors(p, {{"a", from_vector<float>({1, 2}, {2})}, {"b", zeros({1}, {Dtype::Float16})}},
                   {{"k", "v"}});
  const std::string whole = read_bytes(p);
  int failures = 0;
  std::fstream file(p, std::ios::in | std::ios::out | std::ios::binary);
  auto patch = [&](size_t i, char c) {
    file.seekp(std::streamoff(i));
    file.put(c);
    file.flush();
  };
  for (size_t i = 0; i < whole.size(); ++i) {
    for (char c : {'\0', '9', '"', '\xff'}) {
      patch(i, c);
      try {
        load_safetensors(p);
      } catch (const IoError&) {
        ++failures;
      }  // anything else escapes and fails the test
    }
    patch(i, whole[i]);
  }
  ASSERT_TRUE(file.good());
  EXPECT_EQ(read_bytes(p), whole);
  EXPECT_GT(failures, int(whole.size()));  // most header bytes matter
}

TEST_F(IoTest, MissingFilesAndDirectoriesAreIoErrors) {
  EXPECT_THAT(message_of<IoError>([&] { load_safetensors(path("absent.safetensors")); }),
              AllOf(HasSubstr("absent.safetensors"), HasSubstr("No such file")));
  EXPECT_THAT(message_of<IoError>([&] { io::read_safetensors_metadata(dir_.string()); }),
              AllOf(HasSubstr("read_safetensors_metadata"), HasSubstr("not a regular file")));
}

TEST_F(IoTest, BadHeaderLengthsAreIoErrors) {
  const std::string p = path("len.safetensors");
  const std::string body = "{}      ";
  for (uint64_t len : {uint64_t(1) << 63, std::numeric_limits<uint64_t>::max(),
                       uint64_t(100'000'001), uint64_t(body.size() + 1)}) {
    SCOPED_TRACE(len);
    write_bytes(p, le64(len) + body);
    EXPECT_THAT(message_of<IoError>([&] { load_safetensors(p); }),
                AllOf(HasSubstr(p), HasSubstr("header length")));
  }
  write_bytes(p, le64(0) + body);  // an empty header is not JSON
  EXPECT_THAT(message_of<IoError>([&] { load_safetensors(p); }), HasSubstr("not valid JSON"));
}

struct BadFile {
  const char* label;
  std::string header;
  size_t data_bytes;
  const char* expect;  // a substring of the message (the tensor's name where there is one)
};

TEST_F(IoTest, MalformedHeadersAreIoErrorsNamingTheTensor) {
  const std::vector<BadFile> cases = {
      {"invalid JSON", R"({"a": {"dtype": "F32",)", 0, "not valid JSON"},
      {"not UTF-8", "{\"a\xff\": 1}", 0, "not valid JSON"},
      {"top level array", R"([1, 2])", 0, "expected a JSON object"},
      {"entry not object", R"({"a": 5})", 0, "tensor 'a'"},
      {"unknown dtype", R"({"a":{"dtype":"X9","shape":[1],"data_offsets":[0,1]}})", 1, "\"X9\""},
      {"unsupported dtype", R"({"u64":{"dtype":"U64","shape":[1],"data_offsets":[0,8]}})", 8,
       "tensor 'u64': dtype \"U64\" is not supported"},
      {"dtype not string", R"({"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", 4,
       "tensor 'a'"},
      {"missing dtype", R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4, "no \"dtype\""},
      {"missing shape", R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4, "no \"shape\""},
      {"missing offsets", R"({"a":{"dtype":"F32","shape":[1]}})", 4, "no \"data_offsets\""},
      {"negative size", R"({"neg":{"dtype":"F32","shape":[-1,2],"data_offsets":[0,4]}})", 4,
       "tensor 'neg': shape value -1 is negative"},
      {"fractional size", R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,4]}})", 4,
       "not an integer"},
      {"string size", R"({"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", 8,
       "not a number"},
      {"shape not array", R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", 8,
       "tensor 'a': shape is 2"},
      {"size past int64",
       R"({"a":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,4]}})", 4,
       "too large"},
      {"size past uint64",
       R"({"a":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,4]}})", 4,
       "tensor 'a'"},
      {"overflowing shape",
       R"({"big":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4,
       "tensor 'big': shape [4294967296,4294967296] has more elements than int64 holds"},
      {"overflowing empty shape",
       R"({"z":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}})", 0,
       "tensor 'z'"},
      {"bytes overflow",
       R"({"o":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}})", 0,
       "tensor 'o'"},
      {"offsets past data", R"({"a":{"dtype":"F32","shape":[25],"data_offsets":[0,100]}})", 8,
       "tensor 'a': data_offsets [0,100] end past the data section of 8 bytes"},
      {"offsets reversed", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8,
       "begin after end"},
      {"offsets one number", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4]}})", 4,
       "expected [begin, end]"},
      {"negative offset", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4,
       "negative"},
      {"offsets vs shape", R"({"m":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8,
       "tensor 'm': data_offsets [0,8] span 8 bytes, but shape [3] of F32 needs 3 x 4"},
      {"overlap",
       R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       12, "tensor 'b' (bytes 4..12) overlaps tensor 'a'"},
      {"same bytes twice",
       R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
       R"("b":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})",
       4, "overlaps"},
      {"hole",
       R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
       12, "bytes 4..8 of the data section before tensor 'b' belong to no tensor"},
      {"trailing data", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8,
       "has 8 bytes but its tensors cover 4"},
      {"duplicate name",
       R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
       R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
       8, "names 'a' twice"},
      {"metadata not strings", R"({"__metadata__":{"epoch":3}})", 0,
       "__metadata__ value of 'epoch' is number"},
      {"metadata not object", R"({"__metadata__":[1]})", 0, "__metadata__"},
      {"nested too deep", R"({"a":{"dtype":"F32","shape":[[1]],"data_offsets":[0,4]}})", 4,
       "nests deeper"},
  };
  const std::string p = path("bad.safetensors");
  for (const BadFile& c : cases) {
    SCOPED_TRACE(c.label);
    write_bytes(p, st_file(c.header, std::string(c.data_bytes, '\x01')));
    EXPECT_THAT(message_of<IoError>([&] { load_safetensors(p); }),
                AllOf(HasSubstr("load_safetensors: '" + p + "'"), HasSubstr(c.expect)));
    EXPECT_THROW(io::read_safetensors_metadata(p), IoError);
  }
}

}  // namespace
}  // namespace nn
