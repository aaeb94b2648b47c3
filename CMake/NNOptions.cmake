# Build options: whether and how to use CUDA, warnings as errors, sanitizers.
include(GNUInstallDirs)

set(NN_CUDA AUTO CACHE STRING "Use CUDA: AUTO (when a CUDA compiler is found), ON (required), OFF")
set_property(CACHE NN_CUDA PROPERTY STRINGS AUTO ON OFF)
option(NN_BUILD_TESTS "Build the GoogleTest suite" ON)
option(NN_BUILD_BENCH "Build the Google Benchmark programs when Google Benchmark is found" ON)
option(NN_BUILD_APPS "Build the programs under apps/" ON)
option(NN_WERROR "Treat warnings in our own targets as errors" ON)
option(NN_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
set(NN_PYTHON AUTO CACHE STRING
    "Build the nn_cuda Python module (pybind11): AUTO (when pybind11 and Python headers are found), ON, OFF")
set_property(CACHE NN_PYTHON PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${NN_PYTHON}" NN_PYTHON)
if(NOT NN_PYTHON MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "NN_PYTHON must be AUTO, ON or OFF, got '${NN_PYTHON}'")
endif()

string(TOUPPER "${NN_CUDA}" NN_CUDA)
if(NOT NN_CUDA MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "NN_CUDA must be AUTO, ON or OFF, got '${NN_CUDA}'")
endif()

set(NN_WITH_CUDA OFF)
if(NOT NN_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # The user's CMAKE_CUDA_ARCHITECTURES (or the CUDAARCHS environment variable) wins.
    # Otherwise: sm_90 (H100/H200) plus any other GPU nvidia-smi reports, so configuring needs
    # no GPU (unlike "native") and a machine without one compiles for a single architecture.
    if((NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
       AND "$ENV{CUDAARCHS}" STREQUAL "")
      set(_nn_arch 90)
      find_program(NN_NVIDIA_SMI nvidia-smi)
      if(NN_NVIDIA_SMI)
        execute_process(COMMAND ${NN_NVIDIA_SMI} --query-gpu=compute_cap --format=csv,noheader
                        OUTPUT_VARIABLE _nn_caps RESULT_VARIABLE _nn_smi_rc ERROR_QUIET
                        OUTPUT_STRIP_TRAILING_WHITESPACE)
        if(_nn_smi_rc EQUAL 0 AND _nn_caps MATCHES "^[0-9]+\\.[0-9]+")
          string(REPLACE "\n" ";" _nn_caps "${_nn_caps}")
          foreach(_cap IN LISTS _nn_caps)
            string(STRIP "${_cap}" _cap)
            string(REPLACE "." "" _cap "${_cap}")
            list(APPEND _nn_arch ${_cap})
          endforeach()
          list(REMOVE_DUPLICATES _nn_arch)
        endif()
      endif()
      set(CMAKE_CUDA_ARCHITECTURES "${_nn_arch}" CACHE STRING "CUDA architectures" FORCE)
    endif()
    # One CUDA runtime for the whole process: the shared libcudart that CUDA::cudart names too.
    set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
    enable_language(CUDA)
    set(NN_WITH_CUDA ON)
  elseif(NN_CUDA STREQUAL "ON")
    message(FATAL_ERROR "NN_CUDA=ON but no CUDA compiler was found. Install the CUDA toolkit "
                        "(nvcc on PATH, or set CMAKE_CUDA_COMPILER), or configure with NN_CUDA=OFF.")
  else()
    message(STATUS "nn_cuda: no CUDA compiler found, building the CPU-only library")
  endif()
endif()
message(STATUS "nn_cuda: CUDA ${NN_WITH_CUDA} (NN_CUDA=${NN_CUDA}) architectures: ${CMAKE_CUDA_ARCHITECTURES}")

if(NN_SANITIZE)
  if(NN_WITH_CUDA)
    message(WARNING "nn_cuda: NN_SANITIZE with CUDA: AddressSanitizer's shadow memory clashes with "
                    "the CUDA driver's mappings (run with ASAN_OPTIONS=protect_shadow_gap=0), "
                    "and device code is not checked. The sanitizer build is meant for NN_CUDA=OFF.")
  endif()
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined>
                      $<$<COMPILE_LANGUAGE:CXX>:-fno-omit-frame-pointer>
                      $<$<COMPILE_LANGUAGE:CXX>:-fno-sanitize-recover=all>)
  add_link_options(-fsanitize=address,undefined)
endif()

# Warnings as errors for our own targets (never for third-party code).
function(nn_set_warnings target)
  set(_cxx -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wno-unused-parameter)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    # GCC 12 at -O2/-O3 reports std::string concatenation inside libstdc++ as a -Wrestrict
    # overlap (GCC bug 105651, fixed in 13): a false positive in code that is not ours.
    list(APPEND _cxx -Wno-restrict)
  endif()
  if(NN_WERROR)
    list(APPEND _cxx -Werror)
  endif()
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${_cxx}>)
  if(NN_WITH_CUDA)
    set(_cu -Xcompiler=-Wall,-Wextra,-Wno-unused-parameter --expt-relaxed-constexpr)
    if(NN_WERROR)
      list(APPEND _cu -Werror=all-warnings -Xcompiler=-Werror)
    endif()
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${_cu}>)
  endif()
endfunction()
