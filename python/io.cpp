// Top-level nn_cuda io: safetensors files (interchangeable with Python's `safetensors` package,
// hence with torch through safetensors.torch) and training checkpoints (optim/checkpoint.h).
// Files are written atomically by the C++ library; the GIL is released while it reads or writes.
#include <map>
#include <string>
#include <utility>

#include "python/bind.h"

namespace nn::python {

namespace {


io::Metadata metadata_from(py::handle metadata) {
  io::Metadata out;
  if (metadata.is_none()) return out;
  for (auto item : py::dict(py::reinterpret_borrow<py::object>(metadata)))
    out.emplace(py::str(item.first).cast<std::string>(), py::str(item.second).cast<std::string>());
  return out;
}

}  // namespace

void bind_io(py::module_& m) {
  m.def(
      "save_safetensors",
      [](py::handle path, py::handle tensors, py::handle metadata) {
        io::NamedTensors named;
        for (auto item : py::dict(py::reinterpret_borrow<py::object>(tensors)))
          named.emplace_back(item.first.cast<std::string>(), tensor_from(item.second));
        const io::Metadata meta = metadata_from(metadata);
        const std::string p = path_string(path);
        py::gil_scoped_release nogil;
        io::save_safetensors(p, named, meta);
      },
      py::arg("path"), py::arg("tensors"), py::arg("metadata") = py::none(),
      "Writes {name: Tensor} (any device; in the dict's order) and string metadata as a "
      "safetensors file, atomically");
  m.def(
      "load_safetensors",
      [](py::handle path, DeviceArg device) {
        const std::string p = path_string(path);
        io::SafetensorsFile file;
        {
          py::gil_scoped_release nogil;
          file = io::load_safetensors(p, device.value);
        }
        py::dict out;
        for (auto& [name, t] : file.tensors) out[py::str(name)] = variable_of(t);
        return out;
      },
      py::arg("path"), py::arg("device") = DeviceArg{},
      "{name: Tensor} of a safetensors file, in file order, on `device`");
  m.def(
      "safetensors_metadata",
      [](py::handle path) {
        const std::string p = path_string(path);
        py::gil_scoped_release nogil;
        return io::read_safetensors_metadata(p);
      },
      py::arg("path"), "The file's __metadata__ (a dict of strings); reads no tensor data");

  py::class_<CheckpointInfo>(m, "CheckpointInfo")
      .def_readonly("epoch", &CheckpointInfo::epoch)
      .def_readonly("metadata", &CheckpointInfo::metadata)
      .def("__repr__", [](const CheckpointInfo& c) {
        return "CheckpointInfo(epoch=" + std::to_string(c.epoch) +
               ", metadata=" + py::repr(py::cast(c.metadata)).cast<std::string>() + ")";
      });
  m.def(
      "save_checkpoint",
      [](py::handle path, const Module& model, const Optimizer& optimizer,
         const Scheduler* scheduler, int64_t epoch, py::handle metadata) {
        save_checkpoint(path_string(path), model, optimizer, scheduler, epoch,
                        metadata_from(metadata));
      },
      py::arg("path"), py::arg("model"), py::arg("optimizer"), py::arg("scheduler") = py::none(),
      py::kw_only(), py::arg("epoch") = 0, py::arg("metadata") = py::none(),
      "Model, optimizer, optional scheduler, epoch and string metadata in one safetensors "
      "file, written atomically");
  m.def(
      "load_checkpoint",
      [](py::handle path, Module& model, Optimizer& optimizer, Scheduler* scheduler) {
        return load_checkpoint(path_string(path), model, optimizer, scheduler);
      },
      py::arg("path"), py::arg("model"), py::arg("optimizer"), py::arg("scheduler") = py::none(),
      "Restores what save_checkpoint wrote (checked first: nothing changes on error); returns "
      "a CheckpointInfo (epoch, metadata)");
}

}  // namespace nn::python
