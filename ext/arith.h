/* 64-bit integer helpers shared by the kernels in native.pyx.
 *
 * Plain C because unsigned wrap-around, 128-bit products and hex constants are awkward
 * to spell in Cython. Everything is static inline and GIL-free.
 */
#ifndef ALLCORES_ARITH_H
#define ALLCORES_ARITH_H

#include <stdint.h>
#include <math.h>

/* (a * b) mod m, for a, b < m. */
#if defined(__SIZEOF_INT128__)
static inline uint64_t ac_mulmod64(uint64_t a, uint64_t b, uint64_t m) {
    return (uint64_t)(((unsigned __int128)a * b) % m);
}
#else
/* Portable fallback (e.g. MSVC): double-and-add, never overflows. */
static inline uint64_t ac_mulmod64(uint64_t a, uint64_t b, uint64_t m) {
    uint64_t r = 0;
    while (b) {
        if (b & 1) r = (r >= m - a) ? r - (m - a) : r + a;
        b >>= 1;
        a = (a >= m - a) ? a - (m - a) : a + a;
    }
    return r;
}
#endif

/* Trial division by the primes up to 37: 1 if that proves n prime, 0 if composite (or
 * n < 2), -1 if undecided (n > 37**2 with no such factor). The divisors are compile-time
 * constants, so the compiler turns each test into a multiply, not a 64-bit division. */
static const uint64_t AC_TRIAL_PRIMES[12] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};

static inline int ac_trial_division(uint64_t n) {
    int i;
    if (n < 2) return 0;
    for (i = 0; i < 12; i++) {
        if (n % AC_TRIAL_PRIMES[i] == 0) return n == AC_TRIAL_PRIMES[i];
    }
    return n < 37 * 37 ? 1 : -1;
}

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
