# Finds cuDNN (9.x): sets CUDNN_FOUND, CUDNN_VERSION and the imported target CUDNN::cudnn.
# Looks in CUDNN_ROOT (variable or environment), the CUDA toolkit's directories, the system
# paths, and the layout of pip's nvidia-cudnn wheel (site-packages/nvidia/cudnn/{include,lib}).
# Also sets CUDNN_INCLUDE_DIR, CUDNN_LIBRARY and CUDNN_VERSION_{MAJOR,MINOR,PATCH}.

set(_cudnn_hints)
foreach(_root IN ITEMS "${CUDNN_ROOT}" "$ENV{CUDNN_ROOT}" "$ENV{CUDNN_PATH}")
  if(_root)
    list(APPEND _cudnn_hints "${_root}")
  endif()
endforeach()
if(CUDAToolkit_INCLUDE_DIRS OR CUDAToolkit_LIBRARY_DIR)
  foreach(_dir IN LISTS CUDAToolkit_INCLUDE_DIRS CUDAToolkit_LIBRARY_DIR)
    get_filename_component(_parent "${_dir}" DIRECTORY)
    list(APPEND _cudnn_hints "${_parent}")
  endforeach()
endif()
if(CUDAToolkit_ROOT)
  list(APPEND _cudnn_hints "${CUDAToolkit_ROOT}")
endif()

# pip's wheel: ask the Python on PATH where its site-packages are, if there is one.
# (find_program, not find_package(Python3): that would set Python3_* for the whole project.)
find_program(_cudnn_python NAMES python3 python)
mark_as_advanced(_cudnn_python)
if(_cudnn_python)
  execute_process(
    COMMAND "${_cudnn_python}" -c
            "import site, sys; print(';'.join(site.getsitepackages() + [site.getusersitepackages()]))"
    OUTPUT_VARIABLE _cudnn_site RESULT_VARIABLE _cudnn_site_rc ERROR_QUIET
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(_cudnn_site_rc EQUAL 0)
    foreach(_site IN LISTS _cudnn_site)
      if(EXISTS "${_site}/nvidia/cudnn")
        list(APPEND _cudnn_hints "${_site}/nvidia/cudnn")
      endif()
    endforeach()
  endif()
endif()
list(REMOVE_DUPLICATES _cudnn_hints)

find_path(CUDNN_INCLUDE_DIR cudnn.h
  HINTS ${_cudnn_hints}
  PATH_SUFFIXES include targets/x86_64-linux/include targets/sbsa-linux/include)
find_library(CUDNN_LIBRARY
  NAMES cudnn libcudnn.so.9 NAMES_PER_DIR
  HINTS ${_cudnn_hints}
  PATH_SUFFIXES lib64 lib lib/x64 targets/x86_64-linux/lib targets/sbsa-linux/lib)

# The version lives in cudnn_version.h since cuDNN 8 (in cudnn.h before).
set(CUDNN_VERSION "")
if(CUDNN_INCLUDE_DIR)
  set(_cudnn_version_header "${CUDNN_INCLUDE_DIR}/cudnn_version.h")
  if(NOT EXISTS "${_cudnn_version_header}")
    set(_cudnn_version_header "${CUDNN_INCLUDE_DIR}/cudnn.h")
  endif()
  file(STRINGS "${_cudnn_version_header}" _cudnn_defines
       REGEX "^#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) +[0-9]+")
  foreach(_part IN ITEMS MAJOR MINOR PATCHLEVEL)
    set(_cudnn_${_part} "")
    foreach(_line IN LISTS _cudnn_defines)
      if(_line MATCHES "^#define CUDNN_${_part} +([0-9]+)")
        set(_cudnn_${_part} "${CMAKE_MATCH_1}")
      endif()
    endforeach()
  endforeach()
  if(NOT _cudnn_MAJOR STREQUAL "")
    set(CUDNN_VERSION_MAJOR ${_cudnn_MAJOR})
    set(CUDNN_VERSION_MINOR ${_cudnn_MINOR})
    set(CUDNN_VERSION_PATCH ${_cudnn_PATCHLEVEL})
    set(CUDNN_VERSION "${_cudnn_MAJOR}.${_cudnn_MINOR}.${_cudnn_PATCHLEVEL}")
  endif()
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CUDNN
  REQUIRED_VARS CUDNN_LIBRARY CUDNN_INCLUDE_DIR CUDNN_VERSION
  VERSION_VAR CUDNN_VERSION)

if(CUDNN_FOUND AND NOT TARGET CUDNN::cudnn)
  add_library(CUDNN::cudnn UNKNOWN IMPORTED)
  set_target_properties(CUDNN::cudnn PROPERTIES
    IMPORTED_LOCATION "${CUDNN_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CUDNN_INCLUDE_DIR}")
  if(TARGET CUDA::cudart)
    set_property(TARGET CUDNN::cudnn APPEND PROPERTY INTERFACE_LINK_LIBRARIES CUDA::cudart)
  endif()
endif()
mark_as_advanced(CUDNN_INCLUDE_DIR CUDNN_LIBRARY)
