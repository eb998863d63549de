# deb-compress-man.cmake: CPack pre-build script — compresses every man page in the
# staging tree with gzip -9n, as dh_compress does for Debian packages, whatever way
# the install rules put them there. CPack sets CPACK_TEMPORARY_DIRECTORY.
if(NOT CPACK_TEMPORARY_DIRECTORY)
  message(FATAL_ERROR "deb-compress-man: CPACK_TEMPORARY_DIRECTORY is not set")
endif()
file(GLOB_RECURSE _pages LIST_DIRECTORIES false "${CPACK_TEMPORARY_DIRECTORY}/*/share/man/*")
foreach(_page IN LISTS _pages)
  if(_page MATCHES "/man[0-9][^/]*/[^/]+\\.[0-9][a-z]*$")
    execute_process(COMMAND gzip -9nf "${_page}" RESULT_VARIABLE _rc)
    if(NOT _rc EQUAL 0)
      message(FATAL_ERROR "deb-compress-man: gzip ${_page} failed")
    endif()
    message(STATUS "deb-compress-man: compressed ${_page}")
  endif()
endforeach()
