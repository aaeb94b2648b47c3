// Tensor basics: factories, views over shared storage with the right shapes and strides,
// contiguous() copying only when needed, dtype conversions (bf16/f16 bit patterns, round to
// nearest even), printing and host access.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "kernels/ops.h"

namespace nn {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(Factories, ZerosOnesFull) {
  Tensor z = zeros({2, 3});
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.dtype(), Dtype::Float32);
  EXPECT_TRUE(z.device().is_cpu());
  EXPECT_EQ(z.to_vector<float>(), std::vector<float>(6, 0.0f));
  EXPECT_EQ(ones({4}, {Dtype::Float64}).to_vector<double>(), std::vector<double>(4, 1.0));
  Tensor f = full({3, 1}, -2.5, {Dtype::Float16});
  EXPECT_EQ(f.dtype(), Dtype::Float16);
  EXPECT_EQ(f.to_vector<float>(), std::vector<float>(3, -2.5f));
  Tensor s = full({}, 7.0);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.item(), 7.0);
  EXPECT_EQ(zeros({0, 3}).numel(), 0);
  EXPECT_TRUE(zeros({0, 3}).to_vector<float>().empty());
}

TEST(Factories, Arange) {
  EXPECT_THAT(arange(0, 5).to_vector<float>(), ElementsAre(0, 1, 2, 3, 4));
  EXPECT_THAT(arange(1, 2, 0.25, {Dtype::Float64}).to_vector<double>(),
              ElementsAre(1, 1.25, 1.5, 1.75));
  EXPECT_THAT(arange(3, 0, -1).to_vector<float>(), ElementsAre(3, 2, 1));
  EXPECT_EQ(arange(0, 0).numel(), 0);
}

TEST(Factories, FromVectorAndLikes) {
  Tensor t = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.strides(), (Shape{3, 1}));
  EXPECT_THAT(t.to_vector<float>(), ElementsAre(1, 2, 3, 4, 5, 6));
  Tensor d = from_vector<double>({0.5, -1.5}, {2}, {Dtype::BFloat16});
  EXPECT_EQ(d.dtype(), Dtype::BFloat16);
  EXPECT_THAT(d.to_vector<double>(), ElementsAre(0.5, -1.5));
  Tensor zl = zeros_like(d), ol = ones_like(t), el = empty_like(t);
  EXPECT_EQ(zl.dtype(), Dtype::BFloat16);
  EXPECT_THAT(zl.to_vector<float>(), ElementsAre(0, 0));
  EXPECT_EQ(ol.shape(), t.shape());
  EXPECT_THAT(ol.to_vector<float>(), ElementsAre(1, 1, 1, 1, 1, 1));
  EXPECT_EQ(el.shape(), t.shape());
  EXPECT_NE(el.data_ptr(), t.data_ptr());
}

TEST(Factories, RandWithSeedIsReproducible) {
  Generator a(17), b(17);
  EXPECT_EQ(rand({3, 4}, {}, &a).to_vector<float>(), rand({3, 4}, {}, &b).to_vector<float>());
  EXPECT_EQ(randn({5}, {Dtype::Float64}, &a).to_vector<double>(),
            randn({5}, {Dtype::Float64}, &b).to_vector<double>());
}

TEST(Views, ShareStorageAndWriteThrough) {
  Tensor t = zeros({3, 4});
  Tensor row = t.select(0, 1);
  EXPECT_EQ(row.storage(), t.storage());
  fill_(row, 5.0);
  Tensor col = t.slice(1, 2, 3).squeeze(1);
  fill_(col, -1.0);
  EXPECT_THAT(t.to_vector<float>(), ElementsAre(0, 0, -1, 0, 5, 5, -1, 5, 0, 0, -1, 0));
  Tensor tt = t.t();
  EXPECT_EQ(tt.storage(), t.storage());
  Tensor v = t.view({12});
  v.data<float>()[0] = 9.0f;
  EXPECT_EQ(t.to_vector<float>()[0], 9.0f);
  EXPECT_EQ(tt.to_vector<float>()[0], 9.0f);
}

TEST(Views, ShapesStridesAndOffsets) {
  Tensor t = empty({2, 3, 4});
  EXPECT_EQ(t.strides(), (Shape{12, 4, 1}));
  EXPECT_TRUE(t.is_contiguous());

  Tensor tr = t.transpose(0, 2);
  EXPECT_EQ(tr.shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(tr.strides(), (Shape{1, 4, 12}));
  EXPECT_FALSE(tr.is_contiguous());
  EXPECT_EQ(t.transpose(-1, 0).shape(), (Shape{4, 3, 2}));

  Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides(), (Shape{1, 12, 4}));

  Tensor s = t.slice(1, 0, 3, 2);
  EXPECT_EQ(s.shape(), (Shape{2, 2, 4}));
  EXPECT_EQ(s.strides(), (Shape{12, 8, 1}));
  Tensor s2 = t.slice(2, 1, 4);
  EXPECT_EQ(s2.offset(), 1);
  EXPECT_EQ(s2.shape(), (Shape{2, 3, 3}));
  EXPECT_EQ(t.slice(1, 1, 100).shape(), (Shape{2, 2, 4}));  // python-style: the end clamps
  EXPECT_EQ(t.slice(2, -2, 4).shape(), (Shape{2, 3, 2}));   // negative start counts from the end

  Tensor sel = t.select(1, 2);
  EXPECT_EQ(sel.shape(), (Shape{2, 4}));
  EXPECT_EQ(sel.strides(), (Shape{12, 1}));
  EXPECT_EQ(sel.offset(), 8);
  EXPECT_EQ(t.select(-1, -1).offset(), 3);

  Tensor n = t.narrow(2, 1, 2);
  EXPECT_EQ(n.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(n.offset(), 1);

  Tensor u = empty({1, 3, 1});
  EXPECT_EQ(u.squeeze().shape(), (Shape{3}));
  EXPECT_EQ(u.squeeze(0).shape(), (Shape{3, 1}));
  EXPECT_EQ(u.squeeze(1).shape(), (Shape{1, 3, 1}));  // size 3: unchanged
  EXPECT_EQ(empty({2, 3}).unsqueeze(1).shape(), (Shape{2, 1, 3}));
  EXPECT_EQ(empty({2, 3}).unsqueeze(-1).shape(), (Shape{2, 3, 1}));

  Tensor e = empty({1, 3}).expand({4, 3});
  EXPECT_EQ(e.shape(), (Shape{4, 3}));
  EXPECT_EQ(e.strides(), (Shape{0, 1}));
  EXPECT_EQ(empty({3}).expand({2, 3}).strides(), (Shape{0, 1}));  // new leading dims broadcast
  EXPECT_EQ(empty({2, 1}).expand({-1, 5}).shape(), (Shape{2, 5}));

  EXPECT_EQ(t.view({6, 4}).shape(), (Shape{6, 4}));
  EXPECT_EQ(t.view({-1, 2}).shape(), (Shape{12, 2}));
  EXPECT_EQ(t.flatten().shape(), (Shape{24}));
  Tensor as = t.as_strided({2, 2}, {5, 1}, 3);
  EXPECT_EQ(as.strides(), (Shape{5, 1}));
  EXPECT_EQ(as.offset(), 3);
  EXPECT_EQ(t.size(-1), 4);
  EXPECT_EQ(t.stride(0), 12);
}

TEST(Views, ValuesInLogicalOrder) {
  Tensor t = arange(0, 12).view({3, 4});
  EXPECT_THAT(t.t().to_vector<float>(), ElementsAre(0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11));
  EXPECT_THAT(t.slice(1, 1, 4, 2).to_vector<float>(), ElementsAre(1, 3, 5, 7, 9, 11));
  EXPECT_THAT(t.select(1, 3).to_vector<float>(), ElementsAre(3, 7, 11));
  EXPECT_THAT(t.slice(0, 2, 3).expand({2, 4}).to_vector<float>(),
              ElementsAre(8, 9, 10, 11, 8, 9, 10, 11));
}

TEST(Views, ReshapeViewsWhenItCanAndCopiesWhenItMust) {
  Tensor t = arange(0, 6).view({2, 3});
  Tensor r = t.reshape({3, 2});
  EXPECT_EQ(r.storage(), t.storage());
  Tensor rt = t.t().reshape({6});
  EXPECT_NE(rt.storage(), t.storage());
  EXPECT_THAT(rt.to_vector<float>(), ElementsAre(0, 3, 1, 4, 2, 5));
}

TEST(Contiguous, CopiesOnlyWhenNeeded) {
  Tensor t = arange(0, 6).view({2, 3});
  Tensor same = t.contiguous();
  EXPECT_EQ(same.data_ptr(), t.data_ptr());
  Tensor c = t.t().contiguous();
  EXPECT_NE(c.data_ptr(), t.data_ptr());
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.strides(), (Shape{2, 1}));
  EXPECT_THAT(c.to_vector<float>(), ElementsAre(0, 3, 1, 4, 2, 5));
  Tensor k = t.clone();
  EXPECT_NE(k.data_ptr(), t.data_ptr());
  fill_(k, 1.0);
  EXPECT_EQ(t.to_vector<float>()[0], 0.0f);  // the clone is independent
}

TEST(Copy, BroadcastsAndConverts) {
  Tensor dst = zeros({2, 3}, {Dtype::Float64});
  dst.copy_(from_vector<float>({1.5f, 2.5f, 3.5f}, {3}));
  EXPECT_THAT(dst.to_vector<double>(), ElementsAre(1.5, 2.5, 3.5, 1.5, 2.5, 3.5));
  // Writing into a strided destination leaves the gaps alone.
  Tensor base = zeros({2, 4});
  Tensor gaps = base.slice(1, 0, 4, 2);
  gaps.copy_(full({2, 2}, 7.0));
  EXPECT_THAT(base.to_vector<float>(), ElementsAre(7, 0, 7, 0, 7, 0, 7, 0));
}

// Bit patterns of known values, and ties rounding to the even neighbour.
TEST(Dtypes, HalfTypesKnownValues) {
  const std::vector<float> values = {1.0f,
                                     -2.5f,
                                     65504.0f,
                                     1.0f + 0x1p-8f,
                                     1.0f + 3 * 0x1p-8f,
                                     1.0f + 0x1p-11f,
                                     1.0f + 3 * 0x1p-11f,
                                     0x1p-24f};
  Tensor src = from_vector<float>(values, {int64_t(values.size())});
  Tensor bf = src.to(Dtype::BFloat16);
  Tensor hf = src.to(Dtype::Float16);
  ASSERT_EQ(bf.dtype(), Dtype::BFloat16);
  ASSERT_EQ(hf.dtype(), Dtype::Float16);
  const bfloat16* b = bf.data<bfloat16>();
  const float16* h = hf.data<float16>();
  EXPECT_EQ(b[0].bits, 0x3f80);
  EXPECT_EQ(b[1].bits, 0xc020);
  EXPECT_EQ(b[3].bits, 0x3f80);  // 1 + 2^-8 is a tie: to even (1.0)
  EXPECT_EQ(b[4].bits, 0x3f82);  // 1 + 3 * 2^-8 is a tie: to even (1 + 2^-6)
  EXPECT_EQ(h[0].bits, 0x3c00);
  EXPECT_EQ(h[1].bits, 0xc100);
  EXPECT_EQ(h[2].bits, 0x7bff);  // the largest finite half
  EXPECT_EQ(h[5].bits, 0x3c00);  // tie to even
  EXPECT_EQ(h[6].bits, 0x3c02);
  EXPECT_EQ(h[7].bits, 0x0001);  // the smallest subnormal
  EXPECT_THAT(hf.to(Dtype::Float32).to_vector<float>(),
              ElementsAre(1.0f, -2.5f, 65504.0f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 1.0f,
                          1.0f + 0x1p-9f, 0x1p-24f));
  EXPECT_TRUE(
      std::isinf(full({1}, 65520.0).to(Dtype::Float16).to_vector<float>()[0]));  // rounds up to inf
}

TEST(Dtypes, RoundTrips) {
  Tensor f = from_vector<float>({0.1f, -3.25f, 1e-3f, 12345.678f}, {4});
  EXPECT_EQ(f.to(Dtype::Float64).to(Dtype::Float32).to_vector<float>(), f.to_vector<float>());
  Tensor i = from_vector<double>({-2.7, 0.0, 3.9}, {3}).to(Dtype::Int64);
  EXPECT_EQ(i.dtype(), Dtype::Int64);
  EXPECT_THAT(i.to_vector<int64_t>(), ElementsAre(-2, 0, 3));  // truncation, as in C++ and PyTorch
  EXPECT_THAT(from_vector<float>({0.0f, 2.0f, -1.0f}, {3}).to(Dtype::Bool).to_vector<bool>(),
              ElementsAre(false, true, true));
}

TEST(Tensor, PrintedForm) {
  Tensor t = ones({2, 3});
  const std::string s = t.str();
  EXPECT_THAT(s, HasSubstr("[2, 3]"));
  EXPECT_THAT(s, HasSubstr("float32"));
  std::ostringstream os;
  os << full({2}, 1.5, {Dtype::Float64});
  EXPECT_THAT(os.str(), HasSubstr("float64"));
  EXPECT_THAT(os.str(), HasSubstr("1.5"));
  EXPECT_EQ(shape_str({2, 3}), "[2, 3]");
  EXPECT_EQ(shape_str({}), "[]");
}

TEST(Tensor, ItemAndHostAccess) {
  EXPECT_EQ(full({1, 1}, -4.25).item(), -4.25);
  Tensor t = from_vector<int64_t>({3, -1}, {2});
  EXPECT_EQ(t.dtype(), Dtype::Int64);
  EXPECT_THAT(t.to_vector<double>(), ElementsAre(3.0, -1.0));
  EXPECT_THROW(zeros({2}).item(), Error);
  EXPECT_THROW(zeros({2}).data<double>(), DtypeError);
  EXPECT_EQ(zeros({2, 3}, {Dtype::Float64}).nbytes(), 48u);
  EXPECT_EQ(zeros({2}, {Dtype::BFloat16}).itemsize(), 2u);
  EXPECT_FALSE(Tensor().defined());
}

TEST(Tensor, FromBlobWrapsCallerMemory) {
  std::vector<double> buf = {1, 2, 3, 4};
  Tensor t = from_blob(buf.data(), {2, 2}, Dtype::Float64);
  EXPECT_EQ(t.data_ptr(), buf.data());
  fill_(t, 8.0);
  EXPECT_EQ(buf[3], 8.0);
}

}  // namespace
}  // namespace nn
