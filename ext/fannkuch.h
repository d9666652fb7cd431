/* Flip counting for fannkuch-redux, the kernel's hot loop.
 *
 * A permutation of n <= 16 elements is held as 16 bytes. Where the compiler has 128-bit
 * integers (GCC, Clang) on a little-endian machine, one flip (reversing the first m
 * elements) is a branch-free byte reversal of the whole 128-bit word, a shift and a
 * mask; elsewhere a plain swap loop does the same.
 */
#ifndef ALLCORES_FANNKUCH_H
#define ALLCORES_FANNKUCH_H

#include <stdint.h>
#include <string.h>

#if defined(__SIZEOF_INT128__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
typedef unsigned __int128 ac_u128;

/* Number of flips until element 0 is in front; byte i of perm is element i. */
static inline int ac_fannkuch_flips(const uint8_t perm[16]) {
    ac_u128 x, reversed, mask;
    uint64_t low, high;
    int first = perm[0], next_first, flips = 0, m;
    memcpy(&x, perm, 16);
    while (first != 0) {
        m = first + 1;                         /* 2 <= m <= 16 bytes to reverse */
        next_first = (uint8_t)(x >> (8 * first));
        low = (uint64_t)x;
        high = (uint64_t)(x >> 64);
        reversed = ((ac_u128)__builtin_bswap64(low) << 64) | __builtin_bswap64(high);
        mask = m == 16 ? ~(ac_u128)0 : (((ac_u128)1 << (8 * m)) - 1);
        x = (x & ~mask) | (reversed >> (8 * (16 - m)));
        /* The element at index `first` comes to the front; reading it from the old
           word keeps this off the longer reversal chain, which then runs in parallel. */
        first = next_first;
        flips++;
    }
    return flips;
}
#else
static inline int ac_fannkuch_flips(const uint8_t perm[16]) {
    uint8_t p[16];
    uint8_t t;
    int first = perm[0], flips = 0, lo, hi;
    memcpy(p, perm, 16);
    while (first != 0) {
        for (lo = 0, hi = first; lo < hi; lo++, hi--) {
            t = p[lo];
            p[lo] = p[hi];
            p[hi] = t;
        }
        first = p[0];
        flips++;
    }
    return flips;
}
#endif

#endif
