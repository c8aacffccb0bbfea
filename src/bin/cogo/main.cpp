// cogo: the operator command line (see include/cogo/cli/cli.h).
#include "cogo/cli/cli.h"

int main(int argc, char** argv) { return cogo::cli::Run(argc, argv); }
