// nn_cuda.data: datasets (TensorDataset, Subset, Python subclasses of Dataset), the DataLoader
// (iteration releases the GIL while the C++ loader prepares a batch), augmentation transforms,
// MNIST / Fashion-MNIST, IDX files and CSV files.
//
// Python callables as transforms or datasets are called with the GIL taken back, also from the
// loader's prefetch thread: they work, but they serialise with the Python thread.
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "python/bind.h"

namespace nn::python {

namespace {

using data::DataLoader;
using data::Dataset;
using data::Example;
using data::Transform;


// A Python object that may be dropped on any thread: the last owner takes the GIL to release it.
std::shared_ptr<py::object> shared_object(py::object obj) {
  return std::shared_ptr<py::object>(new py::object(std::move(obj)), [](py::object* p) {
    py::gil_scoped_acquire gil;
    delete p;
  });
}

class PyDataset : public Dataset {
 public:
  int64_t size() const override { PYBIND11_OVERRIDE_PURE_NAME(int64_t, Dataset, "__len__", size); }
  Example get(int64_t index) const override {
    py::gil_scoped_acquire gil;
    py::function override = py::get_override(static_cast<const Dataset*>(this), "__getitem__");
    NN_CHECK(override, ValueError, "Dataset: a Python subclass must define __getitem__");
    py::object item = override(index);
    NN_CHECK(py::isinstance<py::tuple>(item) && py::len(item) == 2, ValueError,
             "Dataset.__getitem__ must return an (input, target) tuple");
    auto pair = item.cast<py::tuple>();
    return Example{tensor_from(pair[0]), tensor_from(pair[1])};
  }
};

// The Transform of a Python object: a bound Transform, or a callable called as fn(inputs, seed)
// (or fn(inputs) when it takes one argument) that changes the Tensor in place or returns a new one.
struct TransformBox {
  Transform fn;
};

Transform transform_from(py::handle obj) {
  if (obj.is_none()) return {};
  if (py::isinstance<TransformBox>(obj)) return obj.cast<const TransformBox&>().fn;
  NN_CHECK(PyCallable_Check(obj.ptr()), ValueError,
           "transform: expected an nn_cuda.data transform or a callable, got ",
           py::str(py::type::handle_of(obj)).cast<std::string>());
  bool with_seed = true;
  try {
    py::module_::import("inspect").attr("signature")(obj).attr("bind")(py::none(), py::none());
  } catch (py::error_already_set&) {
    with_seed = false;
  }
  auto fn = shared_object(py::reinterpret_borrow<py::object>(obj));
  return [fn, with_seed](Tensor& inputs, uint64_t seed) {
    py::gil_scoped_acquire gil;
    py::object x = py::cast(variable_of(inputs));
    py::object r = with_seed ? (*fn)(x, seed) : (*fn)(x);
    if (!r.is_none() && !r.is(x)) inputs = tensor_from(r);
  };
}

// ---- the loader's Python iterator ----------------------------------------------------------

// Destroying a loader joins its prefetch thread, which may be waiting for the GIL inside a
// Python transform or dataset: the GIL is released around the destruction.
struct ReleasingDelete {
  void operator()(DataLoader* loader) const {
    py::gil_scoped_release nogil;
    delete loader;
  }
};
using LoaderHolder = std::unique_ptr<DataLoader, ReleasingDelete>;

struct LoaderIterator {
  DataLoader* loader;
  DataLoader::Iterator it;
  DataLoader::Iterator end;
  bool started = false;
};

py::tuple batch_tuple(const data::Batch& b) {
  return py::make_tuple(variable_of(b.inputs), variable_of(b.targets));
}

data::Split split_from(const std::string& s) {
  if (s == "train") return data::Split::Train;
  if (s == "test") return data::Split::Test;
  NN_THROW(ValueError, "split '", s, "' is unknown, expected 'train' or 'test'");
}

std::vector<double> doubles_from(py::handle v) {
  if (py::isinstance<py::float_>(v) || py::isinstance<py::int_>(v)) return {v.cast<double>()};
  return v.cast<std::vector<double>>();
}

// ---- IDX -----------------------------------------------------------------------------------

data::IdxType idx_type_from(const std::string& name) {
  using T = data::IdxType;
  for (T t : {T::UInt8, T::Int8, T::Int16, T::Int32, T::Float32, T::Float64})
    if (name == data::idx_type_name(t)) return t;
  NN_THROW(ValueError, "write_idx: unknown IDX type '", name,
           "', expected ubyte, sbyte, int16, int32, float32 or float64");
}

template <class T, class Src>
void pack(std::vector<unsigned char>& bytes, const std::vector<Src>& values) {
  bytes.resize(values.size() * sizeof(T));
  for (size_t i = 0; i < values.size(); ++i) {
    const T v = static_cast<T>(values[i]);
    std::memcpy(bytes.data() + i * sizeof(T), &v, sizeof(T));
  }
}

data::IdxArray idx_array_from(const Tensor& t, data::IdxType type) {
  data::IdxArray a;
  a.type = type;
  a.shape = t.shape();
  switch (type) {
    case data::IdxType::UInt8:
      pack<uint8_t>(a.bytes, t.to_vector<int64_t>());
      break;
    case data::IdxType::Int8:
      pack<int8_t>(a.bytes, t.to_vector<int64_t>());
      break;
    case data::IdxType::Int16:
      pack<int16_t>(a.bytes, t.to_vector<int64_t>());
      break;
    case data::IdxType::Int32:
      pack<int32_t>(a.bytes, t.to_vector<int64_t>());
      break;
    case data::IdxType::Float32:
      pack<float>(a.bytes, t.to_vector<double>());
      break;
    case data::IdxType::Float64:
      pack<double>(a.bytes, t.to_vector<double>());
      break;
  }
  return a;
}

Dtype natural_dtype(data::IdxType type) {
  if (type == data::IdxType::Float32) return Dtype::Float32;
  if (type == data::IdxType::Float64) return Dtype::Float64;
  return Dtype::Int64;
}

void bind_datasets(py::module_& d) {
  py::class_<Dataset, PyDataset, std::shared_ptr<Dataset>>(d, "Dataset", R"(
Indexable (input, target) examples. Subclass it in Python with __len__ and __getitem__(i)
returning an (input, target) pair of CPU Tensors (or arrays) of fixed shapes.)")
      .def(py::init<>())
      .def("__len__", &Dataset::size)
      .def(
          "__getitem__",
          [](const Dataset& ds, int64_t i) {
            const int64_t n = ds.size();
            if (i < 0) i += n;
            if (i < 0 || i >= n)
              throw py::index_error("dataset index " + std::to_string(i) + " out of range for " +
                                    std::to_string(n) + " examples");
            Example e = ds.get(i);
            return py::make_tuple(variable_of(e.input), variable_of(e.target));
          },
          py::arg("index"));

  py::class_<data::TensorDataset, Dataset, std::shared_ptr<data::TensorDataset>>(
      d, "TensorDataset", "Rows of two CPU Tensors sharing their first dimension")
      .def(py::init([](const Variable& inputs, const Variable& targets) {
             return std::make_shared<data::TensorDataset>(inputs.data(), targets.data());
           }),
           py::arg("inputs"), py::arg("targets"))
      .def_property_readonly("tensors", [](const data::TensorDataset& ds) {
        return py::make_tuple(variable_of(ds.inputs()), variable_of(ds.targets()));
      });

  py::class_<data::Subset, Dataset, std::shared_ptr<data::Subset>>(d, "Subset")
      .def(py::init([](std::shared_ptr<Dataset> base, std::vector<int64_t> indices) {
             return std::make_shared<data::Subset>(std::move(base), std::move(indices));
           }),
           py::arg("dataset"), py::arg("indices"), py::keep_alive<1, 2>())
      .def_property_readonly("indices", &data::Subset::indices);

  d.def(
      "random_split",
      [](py::object dataset, const std::vector<int64_t>& lengths, uint64_t seed) {
        auto parts = data::random_split(dataset.cast<std::shared_ptr<Dataset>>(), lengths, seed);
        py::list out;
        for (auto& p : parts) {
          py::object sub = py::cast(p);
          py::detail::keep_alive_impl(sub, dataset);
          out.append(sub);
        }
        return out;
      },
      py::arg("dataset"), py::arg("lengths"), py::arg("seed") = 0,
      "Disjoint Subsets of the given lengths after a permutation drawn from seed");
}

void bind_loader(py::module_& d) {
  py::class_<LoaderIterator>(d, "_LoaderIterator")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", [](LoaderIterator& s) {
        {
          py::gil_scoped_release nogil;
          if (s.started) ++s.it;
        }
        s.started = true;
        if (s.it == s.end) throw py::stop_iteration();
        return batch_tuple(*s.it);
      });

  py::class_<DataLoader, LoaderHolder>(d, "DataLoader", R"(
DataLoader(dataset, batch_size=1, shuffle=False, seed=0, drop_last=False, transform=None,
device="cpu", prefetch=False): iterating yields (inputs, targets) batches; each new iteration
is the next epoch (a fresh shuffle drawn from (seed, epoch)); set_epoch(e) picks one.)")
      .def(py::init([](std::shared_ptr<Dataset> dataset, int64_t batch_size, bool shuffle,
                       uint64_t seed, bool drop_last, py::handle transform, DeviceArg device,
                       bool prefetch) {
             data::LoaderOptions o;
             o.batch_size = batch_size;
             o.shuffle = shuffle;
             o.seed = seed;
             o.drop_last = drop_last;
             o.transform = transform_from(transform);
             o.device = device.value;
             o.prefetch = prefetch;
             return LoaderHolder(new DataLoader(std::move(dataset), std::move(o)));
           }),
           py::arg("dataset"), py::arg("batch_size") = 1, py::arg("shuffle") = false,
           py::arg("seed") = 0, py::arg("drop_last") = false, py::arg("transform") = py::none(),
           py::arg("device") = DeviceArg{}, py::arg("prefetch") = false, py::keep_alive<1, 2>())
      .def("__len__", &DataLoader::size)
      .def(
          "__iter__",
          [](DataLoader& loader) {
            LoaderIterator s{&loader, {}, {}, false};
            {
              py::gil_scoped_release nogil;
              s.it = loader.begin();
            }
            s.end = loader.end();
            return s;
          },
          py::keep_alive<0, 1>())
      .def_property_readonly("dataset", &DataLoader::dataset,
                             py::return_value_policy::reference_internal)
      .def_property_readonly("batch_size",
                             [](const DataLoader& l) { return l.options().batch_size; })
      .def_property_readonly("shuffle", [](const DataLoader& l) { return l.options().shuffle; })
      .def_property_readonly("seed", [](const DataLoader& l) { return l.options().seed; })
      .def_property_readonly("drop_last", [](const DataLoader& l) { return l.options().drop_last; })
      .def_property_readonly("device", [](const DataLoader& l) { return l.options().device; })
      .def_property_readonly("prefetch", [](const DataLoader& l) { return l.options().prefetch; })
      .def_property_readonly("epoch", &DataLoader::epoch)
      .def("set_epoch", &DataLoader::set_epoch, py::arg("epoch"))
      .def("order", &DataLoader::order, py::arg("epoch"),
           "The order in which that epoch visits the dataset's indices");
}

void bind_transforms(py::module_& d) {
  py::class_<TransformBox>(d, "Transform", R"(
A batch augmentation: t(inputs, seed=0) changes a float32 CPU batch [N, C, H, W] or [N, H, W]
in place and returns it. Pass it as DataLoader(transform=...).)")
      .def(
          "__call__",
          [](const TransformBox& t, py::object inputs, uint64_t seed) -> py::object {
            Tensor x = inputs.cast<const Variable&>().data();
            const void* before = x.defined() ? x.data_ptr() : nullptr;
            t.fn(x, seed);
            if (x.defined() && x.data_ptr() == before) return inputs;
            return py::cast(variable_of(x));
          },
          py::arg("inputs"), py::arg("seed") = 0);

  py::module_ tr = d.def_submodule("transforms", "Batch augmentations for DataLoader(transform=)");
  for (py::module_* mod : {&d, &tr}) {
    mod->def(
        "compose",
        [](const py::iterable& items) {
          std::vector<Transform> fns;
          for (py::handle h : items) fns.push_back(transform_from(h));
          return TransformBox{data::compose(std::move(fns))};
        },
        py::arg("transforms"), "Applies the transforms in order, each with its own seed");
    mod->def(
        "random_crop", [](int64_t padding) { return TransformBox{data::random_crop(padding)}; },
        py::arg("padding"), "Zero-pads by padding and crops back at a random offset");
    mod->def(
        "random_horizontal_flip",
        [](double p) { return TransformBox{data::random_horizontal_flip(p)}; }, py::arg("p") = 0.5);
    mod->def(
        "gaussian_noise", [](double std) { return TransformBox{data::gaussian_noise(std)}; },
        py::arg("std"));
    mod->def(
        "normalize",
        [](py::handle mean, py::handle std) {
          return TransformBox{data::normalize(doubles_from(mean), doubles_from(std))};
        },
        py::arg("mean"), py::arg("std"), "(x - mean[c]) / std[c] per channel");
  }
}

void bind_files(py::module_& d) {
  d.def("fashion_mnist_search_dirs", &data::fashion_mnist_search_dirs);
  d.def("find_fashion_mnist_dir", &data::find_fashion_mnist_dir,
        "The Fashion-MNIST directory (NN_FASHION_MNIST_DIR or Debian's dataset-fashion-mnist); "
        "IoError when there is none");
  d.def(
      "load_fashion_mnist",
      [](std::optional<py::object> dir, const std::string& split) {
        const std::string path = dir && !dir->is_none() ? path_string(*dir) : std::string();
        const data::Split s = split_from(split);
        data::LabelledImages li;
        {
          py::gil_scoped_release nogil;
          li = data::load_fashion_mnist(path, s);
        }
        return py::make_tuple(variable_of(li.images), variable_of(li.labels));
      },
      py::arg("dir") = py::none(), py::arg("split") = "train",
      "(images float32 [N, 1, 28, 28] in [0, 1], labels int64 [N])");
  d.def(
      "load_mnist",
      [](py::handle dir, const std::string& split) {
        const std::string path = path_string(dir);
        const data::Split s = split_from(split);
        data::LabelledImages li;
        {
          py::gil_scoped_release nogil;
          li = data::load_mnist(path, s);
        }
        return py::make_tuple(variable_of(li.images), variable_of(li.labels));
      },
      py::arg("dir"), py::arg("split") = "train");
  d.def(
      "read_idx",
      [](py::handle path, std::optional<DtypeArg> dtype) {
        const std::string p = path_string(path);
        Tensor t;
        {
          py::gil_scoped_release nogil;
          data::IdxArray a = data::read_idx(p);
          t = a.to_tensor(dtype ? dtype->value : natural_dtype(a.type));
        }
        return variable_of(t);
      },
      py::arg("path"), py::arg("dtype") = py::none(),
      "An IDX file (gzipped or not) as a CPU Tensor: int64 for integer files, float32/float64 "
      "for float files, unless dtype says otherwise");
  d.def(
      "write_idx",
      [](py::handle path, const Variable& tensor, const std::string& type, bool gzip) {
        const std::string p = path_string(path);
        data::IdxArray a = idx_array_from(tensor.data(), idx_type_from(type));
        py::gil_scoped_release nogil;
        data::write_idx(p, a, gzip);
      },
      py::arg("path"), py::arg("tensor"), py::arg("type") = "ubyte", py::arg("gzip") = false,
      "Writes a Tensor as an IDX file of the given type (values converted with C casts)");

  py::class_<data::CsvData>(d, "CsvData")
      .def_property_readonly("values", [](const data::CsvData& c) { return variable_of(c.values); })
      .def_property_readonly("labels",
                             [](const data::CsvData& c) -> py::object {
                               return c.labels.defined() ? py::cast(variable_of(c.labels))
                                                         : py::none();
                             })
      .def_readonly("header", &data::CsvData::header)
      .def_readonly("label_name", &data::CsvData::label_name);
  d.def(
      "read_csv",
      [](py::handle path, const std::string& delimiter, bool has_header,
         std::optional<int64_t> label_column, DtypeArg dtype, uint64_t max_bytes) {
        NN_CHECK(delimiter.size() == 1, ValueError,
                 "read_csv: delimiter must be one character, got '", delimiter, "'");
        data::CsvOptions o;
        o.delimiter = delimiter[0];
        o.has_header = has_header;
        o.label_column = label_column;
        o.dtype = dtype.value;
        o.max_bytes = max_bytes;
        const std::string p = path_string(path);
        py::gil_scoped_release nogil;
        return data::read_csv(p, o);
      },
      py::arg("path"), py::arg("delimiter") = ",", py::arg("has_header") = false,
      py::arg("label_column") = py::none(), py::arg("dtype") = DtypeArg{Dtype::Float64},
      py::arg("max_bytes") = uint64_t(1) << 32,
      "A numeric CSV file: .values [rows, cols] (and .labels int64 when label_column is set)");
}

}  // namespace

void bind_data(py::module_& m) {
  py::module_ d = m.def_submodule("data", "Datasets, DataLoader, augmentation, MNIST/IDX and CSV");
  bind_datasets(d);
  bind_loader(d);
  bind_transforms(d);
  bind_files(d);
  py::module_::import("sys").attr("modules")["nn_cuda.data.transforms"] = d.attr("transforms");
}

}  // namespace nn::python
