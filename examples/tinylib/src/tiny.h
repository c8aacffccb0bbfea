#ifndef TINY_H
#define TINY_H

/* x limited to [lo, hi]. */
int tiny_clamp(int x, int lo, int hi);
/* The sum of the first n values. */
long tiny_sum(const int *values, int n);

#endif
