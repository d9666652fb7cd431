/* 64-bit integer helpers shared by the kernels in native.pyx.
 *
 * Plain C because unsigned wrap-around and hex constants are awkward
 * to spell in Cython. Everything is static inline and GIL-free.
 */
#ifndef ALLCORES_ARITH_H
#define ALLCORES_ARITH_H

#include <stdint.h>
#include <math.h>

/* floor(sqrt(n)) for every 64-bit n: a double estimate, then exact correction. */
static inline uint64_t ac_isqrt64(uint64_t n) {
    uint64_t r = (uint64_t)sqrt((double)n);
    while (r > 0xFFFFFFFFull || (r > 0 && r * r > n)) r--;
    while (r < 0xFFFFFFFFull && (r + 1) * (r + 1) <= n) r++;
    return r;
}

/* SplitMix64's output function (Steele, Lea, Flood 2014). */
static inline uint64_t ac_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The k-th output of SplitMix64 seeded with `seed`, as a double in [0, 1). */
static inline double ac_uniform(uint64_t seed, uint64_t k) {
    return (double)(ac_mix64(seed + (k + 1) * 0x9E3779B97F4A7C15ull) >> 11) * 0x1.0p-53;
}

#endif
