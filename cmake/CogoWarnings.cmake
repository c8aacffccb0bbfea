# cogo_target_warnings(target): our own code builds with warnings as errors; third-party
# headers come in as system includes and are not held to that.
function(cogo_target_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
    -Woverloaded-virtual -Wimplicit-fallthrough -Werror)
endfunction()
