#include <stdio.h>

#include "tiny.h"

int main(void) {
  const int values[] = {1, 2, 3, 4};
  const long got = tiny_sum(values, 4);
  if (got != 10) {
    printf("FAIL sum: got %ld, want 10\n", got);
    return 1;
  }
  return 0;
}
