// Secrets for the daemons (the JWT secret, the publishable key): from the environment variable
// NAME, or from the file named by NAME_FILE, which must not be readable by group or others (a
// container or systemd credential). The value is never logged or put in an error message.
// Thread-safe: reads the environment and the file system only.
#pragma once

#include <string>

namespace cogo::auth {

// NAME's value, else NAME_FILE's contents without the trailing newline. Throws
// std::invalid_argument naming the variable (never the value) when neither gives a non-empty
// secret, or when the file is unreadable or readable by group or others.
[[nodiscard]] std::string RequiredSecret(const std::string& name);

}  // namespace cogo::auth
