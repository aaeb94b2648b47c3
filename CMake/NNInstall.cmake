# Installs the library, its public headers and an exported CMake package:
#   find_package(nn_cuda CONFIG REQUIRED)  ->  target nn::nn_cuda
#
# Layout under the prefix:
#   lib/libnn_cuda.so*                          the library
#   include/nn/nn.h                             umbrella header
#   include/nn/core/*.h, include/nn/kernels/*.h the public headers (they include "core/x.h", so
#                                               the target puts include/nn and include on the path)
#   lib/cmake/nn_cuda/                          nn_cudaConfig.cmake, ...Version.cmake, ...Targets.cmake
#
# Only headers a user needs are installed. Internal ones (core/cuda_context.h,
# core/cudnn_context.h, kernels/backend.h, kernels/math.h, kernels/indexing.h, kernels/cpu,
# kernels/cuda) stay in the source tree: they name CUDA types or implementation details.
include(CMakePackageConfigHelpers)

set(NN_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/nn_cuda" CACHE STRING
    "Where the exported CMake package goes, relative to the install prefix")

# Public headers, by folder. A new public header is added here (and to nn.h).
set(NN_PUBLIC_CORE_HEADERS
  core/allocator.h core/device.h core/dtype.h core/error.h core/macros.h core/rng.h
  core/storage.h core/stream.h core/tensor.h core/event.h core/io.h core/safetensors.h
  core/atomic_file.h)
set(NN_PUBLIC_KERNEL_HEADERS
  kernels/ops.h kernels/shape_ops.h kernels/nn_ops.h kernels/conv_ops.h)
# layers/ headers include these (Variable, the differentiable ops).
set(NN_PUBLIC_GRAPH_HEADERS graph/functions.h graph/variable.h)
set(NN_PUBLIC_LAYER_HEADERS
  layers/activation.h layers/batchnorm.h layers/conv.h layers/dropout.h layers/flatten.h
  layers/init.h layers/linear.h layers/loss.h layers/models.h layers/module.h layers/pool.h
  layers/residual.h layers/sequential.h)
set(NN_PUBLIC_OPTIM_HEADERS
  optim/adam.h optim/checkpoint.h optim/clip.h optim/early_stopping.h optim/metric.h
  optim/optimizer.h optim/regularization.h optim/rmsprop.h optim/scheduler.h optim/sgd.h)
set(NN_PUBLIC_DATA_HEADERS
  data/augment.h data/csv.h data/dataset.h data/file_reader.h data/idx.h data/loader.h
  data/mnist.h)

# The installed library finds the CUDA libraries it links where the build found them.
set_target_properties(nn_cuda PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)

install(TARGETS nn_cuda EXPORT nn_cudaTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES nn.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/nn)
install(FILES ${NN_PUBLIC_CORE_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/nn/core)
install(FILES ${NN_PUBLIC_KERNEL_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/nn/kernels)
install(FILES ${NN_PUBLIC_GRAPH_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/nn/graph)
install(FILES ${NN_PUBLIC_LAYER_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/nn/layers)
install(FILES ${NN_PUBLIC_OPTIM_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/nn/optim)
install(FILES ${NN_PUBLIC_DATA_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/nn/data)

install(EXPORT nn_cudaTargets
  NAMESPACE nn::
  FILE nn_cudaTargets.cmake
  DESTINATION ${NN_INSTALL_CMAKEDIR})

configure_package_config_file(
  "${CMAKE_CURRENT_LIST_DIR}/nn_cudaConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/nn_cudaConfig.cmake"
  INSTALL_DESTINATION ${NN_INSTALL_CMAKEDIR})
# 0.x: a minor version may change the interface, so only the same minor version is compatible.
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/nn_cudaConfigVersion.cmake"
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  "${PROJECT_BINARY_DIR}/nn_cudaConfig.cmake"
  "${PROJECT_BINARY_DIR}/nn_cudaConfigVersion.cmake"
  DESTINATION ${NN_INSTALL_CMAKEDIR})
