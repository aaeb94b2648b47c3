# Dependencies, found the ordinary way. nn_link_dependencies() attaches them to the library.
find_package(Threads REQUIRED)
find_package(OpenMP COMPONENTS CXX)

# CPU GEMM: CBLAS, preferably OpenBLAS (Debian: libopenblas-dev).
set(BLA_VENDOR OpenBLAS)
find_package(BLAS)
if(NOT BLAS_FOUND)
  unset(BLA_VENDOR)
  find_package(BLAS REQUIRED)
endif()
find_path(NN_CBLAS_INCLUDE_DIR cblas.h
  PATH_SUFFIXES openblas openblas-pthread openblas-openmp x86_64-linux-gnu/openblas-pthread
                x86_64-linux-gnu/openblas-openmp aarch64-linux-gnu/openblas-pthread)
if(NOT NN_CBLAS_INCLUDE_DIR)
  message(FATAL_ERROR "cblas.h not found: install OpenBLAS (Debian: apt-get install libopenblas-dev)")
endif()

if(NN_WITH_CUDA)
  find_package(CUDAToolkit REQUIRED)
  find_package(CUDNN)  # CMake/FindCUDNN.cmake; optional until convolution needs it
  find_package(CCCL CONFIG HINTS "${CUDAToolkit_LIBRARY_DIR}/cmake")
endif()

function(nn_link_dependencies target)
  target_include_directories(${target} PRIVATE ${NN_CBLAS_INCLUDE_DIR})
  target_link_libraries(${target} PRIVATE BLAS::BLAS Threads::Threads)
  if(OpenMP_CXX_FOUND)
    target_link_libraries(${target} PRIVATE OpenMP::OpenMP_CXX)
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
