#include <stdio.h>

#include "tiny.h"

static int failures = 0;

static void expect(int got, int want, const char *what) {
  if (got != want) {
    printf("FAIL %s: got %d, want %d\n", what, got, want);
    ++failures;
  }
}

int main(void) {
  expect(tiny_clamp(5, 0, 10), 5, "inside");
  expect(tiny_clamp(-3, 0, 10), 0, "below");
  expect(tiny_clamp(42, 0, 10), 10, "above");
  return failures == 0 ? 0 : 1;
}
