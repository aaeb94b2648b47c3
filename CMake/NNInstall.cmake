# Installs the library, its headers and an exported CMake package:
#   find_package(nn_cuda CONFIG REQUIRED)  ->  target nn::nn_cuda
include(CMakePackageConfigHelpers)
install(TARGETS nn_cuda EXPORT nn_cudaTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
