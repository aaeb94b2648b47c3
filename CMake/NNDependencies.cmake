# Dependencies, found the ordinary way. nn_link_dependencies() attaches them to the library.
find_package(Threads REQUIRED)

# CPU GEMM: CBLAS, preferably OpenBLAS (Debian: libopenblas-dev). NN_BLAS=AUTO uses it when
# found and otherwise the library's own blocked GEMM (GPU runners without a package registry);
# ON requires it; OFF always uses the built-in GEMM (the sanitizer build tests it that way).
set(NN_BLAS AUTO CACHE STRING "CPU GEMM through CBLAS: AUTO, ON or OFF")
string(TOUPPER "${NN_BLAS}" NN_BLAS)
set(NN_WITH_BLAS OFF)
if(NOT NN_BLAS STREQUAL "OFF")
  set(BLA_VENDOR OpenBLAS)
  find_package(BLAS)
  if(NOT BLAS_FOUND)
    unset(BLA_VENDOR)
    find_package(BLAS)
  endif()
  find_path(NN_CBLAS_INCLUDE_DIR cblas.h
    PATH_SUFFIXES openblas openblas-pthread openblas-openmp x86_64-linux-gnu/openblas-pthread
                  x86_64-linux-gnu/openblas-openmp aarch64-linux-gnu/openblas-pthread)
  if(BLAS_FOUND AND NN_CBLAS_INCLUDE_DIR)
    set(NN_WITH_BLAS ON)
  elseif(NN_BLAS STREQUAL "ON")
    message(FATAL_ERROR "NN_BLAS=ON but CBLAS (library and cblas.h) was not found: install "
                        "OpenBLAS (Debian: apt-get install libopenblas-dev) or use NN_BLAS=AUTO")
  else()
    message(WARNING "nn_cuda: no CBLAS found, the CPU matmul uses the built-in GEMM (slower); "
                    "install libopenblas-dev for speed")
  endif()
endif()
message(STATUS "nn_cuda: CBLAS ${NN_WITH_BLAS} (NN_BLAS=${NN_BLAS})")

# JSON (safetensors headers): nlohmann/json, header-only and private to the library. The
# installed package (Debian: nlohmann-json3-dev), else a copy that `./run.sh stage-deps` puts in
# .deps/nlohmann_json (a GPU runner with no package registry), else NN_JSON_INCLUDE_DIR.
find_package(nlohmann_json 3 QUIET)
if(NOT nlohmann_json_FOUND)
  find_path(NN_JSON_INCLUDE_DIR nlohmann/json.hpp
    HINTS "${PROJECT_SOURCE_DIR}/.deps/nlohmann_json/include")
  if(NOT NN_JSON_INCLUDE_DIR)
    message(FATAL_ERROR "nn_cuda: nlohmann/json was not found. Install it (Debian: apt-get "
            "install nlohmann-json3-dev), stage it with ./run.sh stage-deps, or pass "
            "-DNN_JSON_INCLUDE_DIR=<dir containing nlohmann/json.hpp>.")
  endif()
  add_library(nn_nlohmann_json INTERFACE)
  target_include_directories(nn_nlohmann_json SYSTEM INTERFACE "${NN_JSON_INCLUDE_DIR}")
  add_library(nlohmann_json::nlohmann_json ALIAS nn_nlohmann_json)
endif()

# zlib reads gzipped IDX files (Debian ships Fashion-MNIST gzipped). Optional: without it a
# .gz file gives an IoError that says to gunzip it.
find_package(ZLIB)
set(NN_WITH_ZLIB ${ZLIB_FOUND})

if(NN_WITH_CUDA)
  find_package(CUDAToolkit REQUIRED)
  find_package(CUDNN)  # CMake/FindCUDNN.cmake; optional until convolution needs it
  find_package(CCCL CONFIG HINTS "${CUDAToolkit_LIBRARY_DIR}/cmake")
endif()

function(nn_link_dependencies target)
  # Threads is public: the headers use std::mutex, and the exported package finds it again.
  target_link_libraries(${target} PUBLIC Threads::Threads)
  if(NN_WITH_BLAS)
    target_compile_definitions(${target} PRIVATE NN_WITH_BLAS)
    target_include_directories(${target} SYSTEM PRIVATE ${NN_CBLAS_INCLUDE_DIR})
    target_link_libraries(${target} PRIVATE BLAS::BLAS)
  endif()
  target_link_libraries(${target} PRIVATE $<BUILD_INTERFACE:nlohmann_json::nlohmann_json>)
  if(NN_WITH_ZLIB)
    target_compile_definitions(${target} PRIVATE NN_WITH_ZLIB)
    target_link_libraries(${target} PRIVATE ZLIB::ZLIB)
  endif()
  if(NN_WITH_CUDA)
    target_compile_definitions(${target} PUBLIC NN_WITH_CUDA)
    target_link_libraries(${target} PRIVATE CUDA::cudart CUDA::cublas CUDA::cublasLt)
    if(CUDNN_FOUND)
      target_compile_definitions(${target} PRIVATE NN_WITH_CUDNN)
      target_link_libraries(${target} PRIVATE CUDNN::cudnn)
    endif()
    if(TARGET CCCL::CCCL)
      target_link_libraries(${target} PRIVATE CCCL::CCCL)
    endif()
  endif()
endfunction()

# ---- GoogleTest -----------------------------------------------------------------------------
# The installed package first (Debian: libgtest-dev). Failing that, a GoogleTest source tree
# built with our project: NN_GTEST_SOURCE_DIR, by default the copy of Debian's /usr/src/googletest
# that `./run.sh stage-deps` puts in the git-ignored .deps/ (so a machine with no package
# registry, such as a GPU runner, can still build the tests), else /usr/src/googletest itself.
# Either way the targets are GTest::gtest, GTest::gtest_main, and GTest::gmock when present.
if(NN_BUILD_TESTS)
  find_package(GTest QUIET)
  if(NOT GTest_FOUND OR NOT TARGET GTest::gtest_main)
    set(_nn_gtest_default "")
    foreach(_dir "${PROJECT_SOURCE_DIR}/.deps/googletest" "/usr/src/googletest")
      if(EXISTS "${_dir}/CMakeLists.txt")
        set(_nn_gtest_default "${_dir}")
        break()
      endif()
    endforeach()
    set(NN_GTEST_SOURCE_DIR "${_nn_gtest_default}" CACHE PATH
        "GoogleTest source tree to build when no installed GoogleTest is found")
    if(NOT EXISTS "${NN_GTEST_SOURCE_DIR}/CMakeLists.txt")
      message(FATAL_ERROR "nn_cuda: NN_BUILD_TESTS=ON but GoogleTest was not found. Install it "
              "(Debian: apt-get install libgtest-dev), pass -DNN_GTEST_SOURCE_DIR=<googletest "
              "source tree> (./run.sh stage-deps copies one into .deps/), or configure with "
              "-DNN_BUILD_TESTS=OFF.")
    endif()
    message(STATUS "nn_cuda: building GoogleTest from ${NN_GTEST_SOURCE_DIR}")
    set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)  # never install it next to our package
    set(BUILD_GMOCK ON CACHE BOOL "" FORCE)
    add_subdirectory("${NN_GTEST_SOURCE_DIR}" "${PROJECT_BINARY_DIR}/_deps/googletest"
                     EXCLUDE_FROM_ALL)
    foreach(_t gtest gtest_main gmock gmock_main)
      if(TARGET ${_t})
        # Its headers are third-party: keep our warnings-as-errors out of them.
        get_target_property(_inc ${_t} INTERFACE_INCLUDE_DIRECTORIES)
        if(_inc)
          set_target_properties(${_t} PROPERTIES INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${_inc}")
        endif()
        if(NOT TARGET GTest::${_t})
          add_library(GTest::${_t} ALIAS ${_t})
        endif()
      endif()
    endforeach()
  endif()
endif()
