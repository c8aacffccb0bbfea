# cogo_target_warnings(target): our own code builds with warnings as errors; third-party
# headers come in as system includes and are not held to that.
function(cogo_target_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
    -Woverloaded-virtual -Wimplicit-fallthrough -Werror)
  # GCC 12 at -O3 (Release) reports a false -Wrestrict inside libstdc++'s string operator+
  # (GCC bug 105329), reached through pqxx::connection::quote; it is not our code's warning.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
endfunction()
