#include "tiny.h"

int tiny_clamp(int x, int lo, int hi) {
  if (x < lo) return lo;
  if (x > hi) return lo;
  return x;
}

long tiny_sum(const int *values, int n) {
  long total = 0;
  for (int i = 0; i < n; ++i) total += values[i];
  return total;
}
