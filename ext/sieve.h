/* Counting primes in a window of odd numbers, for count_primes_range in native.pyx.
 *
 * ac_count_odd_primes(a, b, limit): the primes among the odd numbers a, a + 2, ..., b
 * (3 <= a <= b, both odd), sieving with the odd primes up to `limit` (<= 2**24) and
 * confirming with Miller-Rabin (primality.h) any survivor >= (limit + 1)**2, which the
 * sieve alone cannot decide. The caller chooses `limit` (see native.pyx); the count does
 * not depend on it.
 *
 * The sieve (a segmented sieve of Eratosthenes as in primesieve, Walisch 2010-):
 *   - one bit per odd number: bit k of word w stands for the odd number 2 * (64w + k) + 1
 *     ("odd index" 64w + k); a set bit is a candidate prime, so a popcount counts them;
 *   - segments of AC_SIEVE_SEG_WORDS words (48 KiB, 393,216 odd numbers) stay in the
 *     L1 data cache while every sieving prime crosses off its multiples there;
 *   - segments start on a multiple of 64 odd indices, so each word is filled from
 *     repeating patterns with the multiples of the primes 3 .. 73 already crossed off
 *     (3*5*7*11*13 = 15015 words, 17*19*23 words, 29*31 words, ...: the odd index of an
 *     odd multiple of p repeats every p); the bits outside [a, b] at both ends are
 *     cleared before counting, and the presieving primes themselves are set back;
 *   - each sieving prime carries the index of its next multiple from one segment to the
 *     next, relative to the segment's start, so indices stay small and never overflow,
 *     even for windows that end at 2**64 - 1;
 *   - small primes cross off eight multiples per step: for an odd-only bit sieve the
 *     multiples j, j + p, ..., j + 7p fall on eight fixed bit positions of bytes that
 *     advance by p bytes every eight multiples.
 *
 * Everything is static plain C, GIL-free. The only shared state is the presieve patterns
 * (314 KB), built once and published with an atomic compare-and-swap (threads that lose
 * the race free their copy).
 */
#ifndef ALLCORES_SIEVE_H
#define ALLCORES_SIEVE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "primality.h"

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static inline int ac_ctz64(uint64_t x) { unsigned long i; _BitScanForward64(&i, x); return (int)i; }
#else
static inline int ac_ctz64(uint64_t x) { return __builtin_ctzll(x); }
#endif

/* The set bits of words[0 .. n - 1]. Without -mpopcnt, GCC turns __builtin_popcountll
 * into a library call; on x86 the POPCNT instruction is used where the CPU has it. */
static int64_t ac_popcount_words_plain(const uint64_t *words, uint64_t n) {
    int64_t count = 0;
    for (uint64_t i = 0; i < n; i++) {
#if defined(_MSC_VER) && !defined(__clang__)
        uint64_t x = words[i];                        /* SWAR: MSVC has no portable builtin */
        x -= (x >> 1) & 0x5555555555555555ull;
        x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
        x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
        count += (int64_t)((x * 0x0101010101010101ull) >> 56);
#else
        count += __builtin_popcountll(words[i]);
#endif
    }
    return count;
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(AC_NO_DISPATCH)
__attribute__((target("popcnt")))
static int64_t ac_popcount_words_popcnt(const uint64_t *words, uint64_t n) {
    int64_t count = 0;
    for (uint64_t i = 0; i < n; i++) count += __builtin_popcountll(words[i]);
    return count;
}

static int64_t ac_popcount_words(const uint64_t *words, uint64_t n) {
    return __builtin_cpu_supports("popcnt") ? ac_popcount_words_popcnt(words, n)
                                            : ac_popcount_words_plain(words, n);
}
#else
#define ac_popcount_words ac_popcount_words_plain
#endif

#ifndef AC_SIEVE_SEG_WORDS
/* 48 KiB of bits (393,216 odd numbers): the L1 data cache of recent x86 cores; measured
 * 10-15% faster than 32 KiB on a 48 KiB-L1 Xeon for [0, 10**9). */
#define AC_SIEVE_SEG_WORDS 6144
#endif
#define AC_SIEVE_SEG_BITS (AC_SIEVE_SEG_WORDS * 64)
/* Presieve patterns: word w of a pattern has the odd multiples of its primes cleared
 * in odd indices 64w .. 64w + 63; its period (in words) is the product of its primes.
 * The first is copied into a segment, the others ANDed in: one pass over 64 odd numbers
 * per pattern, against crossing off 64/p bits one at a time for each of its primes. */
#define AC_PRESIEVE_GROUPS 8
#define AC_PRESIEVE_PRIMES 20
#define AC_PRESIEVE_LAST 73              /* the largest prime in the patterns */
static const uint32_t ac_presieve_period[AC_PRESIEVE_GROUPS] = {
    3 * 5 * 7 * 11 * 13, 17 * 19 * 23, 29 * 31, 37 * 41, 43 * 47, 53 * 59, 61 * 67,
    71 * 73};
static const uint32_t ac_presieve_prime[AC_PRESIEVE_PRIMES] = {
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73};
static const uint8_t ac_presieve_group[AC_PRESIEVE_PRIMES] = {
    0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7};
#define AC_PRESIEVE_WORDS (15015 + 7429 + 899 + 1517 + 2021 + 3127 + 4087 + 5183)

/* Primes below this cross off eight multiples per step (see ac_cross_small), which
 * addresses the words' bytes: little-endian only. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define AC_SIEVE_SMALL_PRIME 0
#elif !defined(AC_SIEVE_SMALL_PRIME)
#define AC_SIEVE_SMALL_PRIME 8192
#endif

static uint64_t *ac_presieve_pattern_ptr = 0;

/* The presieve patterns, one after the other, with the primes themselves cleared too;
 * NULL if out of memory. */
static uint64_t *ac_presieve_patterns(void) {
    uint64_t *pattern, *expected = 0, offset[AC_PRESIEVE_GROUPS];
    int i;
#if defined(_MSC_VER) && !defined(__clang__)
    pattern = (uint64_t *)_InterlockedCompareExchangePointer(
        (void *volatile *)&ac_presieve_pattern_ptr, 0, 0);
#else
    pattern = __atomic_load_n(&ac_presieve_pattern_ptr, __ATOMIC_ACQUIRE);
#endif
    if (pattern) return pattern;
    pattern = (uint64_t *)malloc(AC_PRESIEVE_WORDS * sizeof(uint64_t));
    if (!pattern) return 0;
    memset(pattern, 0xff, AC_PRESIEVE_WORDS * sizeof(uint64_t));
    offset[0] = 0;
    for (i = 1; i < AC_PRESIEVE_GROUPS; i++)
        offset[i] = offset[i - 1] + ac_presieve_period[i - 1];
    for (i = 0; i < AC_PRESIEVE_PRIMES; i++) {
        uint64_t p = ac_presieve_prime[i], g = ac_presieve_group[i];
        uint64_t *words = pattern + offset[g], end = (uint64_t)ac_presieve_period[g] * 64;
        /* odd index j stands for 2j + 1, a multiple of p when j = (p - 1) / 2 (mod p) */
        for (uint64_t j = (p - 1) / 2; j < end; j += p)
            words[j >> 6] &= ~(1ull << (j & 63));
    }
#if defined(_MSC_VER) && !defined(__clang__)
    expected = (uint64_t *)_InterlockedCompareExchangePointer(
        (void *volatile *)&ac_presieve_pattern_ptr, pattern, 0);
    if (expected) { free(pattern); return expected; }
    return pattern;
#else
    if (__atomic_compare_exchange_n(&ac_presieve_pattern_ptr, &expected, pattern, 0,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return pattern;
    free(pattern);
    return expected;
#endif
}

/* seg[0 .. words - 1] = the AND of the patterns, at[g] (the word of pattern g for
 * seg[0]) advancing, and wrapping, by one per word. */
static inline void ac_presieve_fill(uint64_t *seg, uint64_t words, const uint64_t *pattern,
                                    uint64_t *at) {
    for (int g = 0; g < AC_PRESIEVE_GROUPS; g++) {
        const uint64_t period = ac_presieve_period[g];
        uint64_t k = at[g], w = 0;
        while (w < words) {
            uint64_t run = period - k < words - w ? period - k : words - w, i;
            if (g == 0)
                memcpy(seg + w, pattern + k, run * sizeof(uint64_t));
            else
                for (i = 0; i < run; i++) seg[w + i] &= pattern[k + i];
            w += run;
            k += run;
            if (k == period) k = 0;
        }
        at[g] = k;
        pattern += period;
    }
}

/* Odd primes 3 <= p <= limit (limit <= 2**24) in a malloc'd array, their number in
 * *count; NULL if out of memory. */
static uint32_t *ac_odd_primes_upto(uint64_t limit, int64_t *count) {
    int64_t half = (int64_t)(limit / 2) + 1;          /* index i stands for 2i + 1 */
    uint8_t *composite = (uint8_t *)calloc((size_t)half, 1);
    uint32_t *primes;
    int64_t i, j, n = 0;
    if (!composite) return 0;
    composite[0] = 1;                                 /* 1 is not prime */
    for (i = 1; (2 * i + 1) * (2 * i + 1) <= (int64_t)limit; i++)
        if (!composite[i])
            for (j = (2 * i + 1) * (2 * i + 1) / 2; j < half; j += 2 * i + 1)
                composite[j] = 1;
    for (i = 0; i < half; i++)
        n += !composite[i] && (uint64_t)(2 * i + 1) <= limit;
    primes = (uint32_t *)malloc((size_t)(n > 0 ? n : 1) * sizeof(uint32_t));
    if (primes) {
        n = 0;
        for (i = 0; i < half; i++)
            if (!composite[i] && (uint64_t)(2 * i + 1) <= limit)
                primes[n++] = (uint32_t)(2 * i + 1);
        *count = n;
    }
    free(composite);
    return primes;
}

/* Clear bits j, j + p, ... below `bits` of seg; the next multiple's index minus bits. */
static inline uint64_t ac_cross_plain(uint64_t *seg, uint64_t bits, uint64_t j, uint64_t p) {
    for (; j < bits; j += p)
        seg[j >> 6] &= ~(1ull << (j & 63));
    return j - bits;
}

/* Eight multiples per step: bytes o0..o7 (offsets of j + kp, k = 0..7, from s), their
 * bit (B + kQ) mod 8 with B = j mod 8, Q = p mod 8 as constants, so the masks are
 * immediates rather than eight more live registers. */
#define AC_MASK(B, Q, K) ((uint8_t)~(1u << (((B) + (K) * (Q)) & 7)))
#define AC_CROSS8(B, Q)                                                                 \
    for (; s < end; s += p) {                                                           \
        s[o0] &= AC_MASK(B, Q, 0); s[o1] &= AC_MASK(B, Q, 1);                          \
        s[o2] &= AC_MASK(B, Q, 2); s[o3] &= AC_MASK(B, Q, 3);                          \
        s[o4] &= AC_MASK(B, Q, 4); s[o5] &= AC_MASK(B, Q, 5);                          \
        s[o6] &= AC_MASK(B, Q, 6); s[o7] &= AC_MASK(B, Q, 7);                          \
    }                                                                                   \
    break;
#define AC_CROSS8_CASES(Q)                                                              \
    case Q * 8 + 0: AC_CROSS8(0, Q) case Q * 8 + 1: AC_CROSS8(1, Q)                    \
    case Q * 8 + 2: AC_CROSS8(2, Q) case Q * 8 + 3: AC_CROSS8(3, Q)                    \
    case Q * 8 + 4: AC_CROSS8(4, Q) case Q * 8 + 5: AC_CROSS8(5, Q)                    \
    case Q * 8 + 6: AC_CROSS8(6, Q) case Q * 8 + 7: AC_CROSS8(7, Q)

/* As ac_cross_plain, for small p: eight multiples per step. Multiples j + kp (k = 0..7)
 * lie in bytes (j + kp) >> 3 at bits that repeat, since j + 8p lies p bytes further at
 * the same bit. */
static inline uint64_t ac_cross_small(uint8_t *seg, uint64_t bits, uint64_t j, uint64_t p) {
    uint64_t bytes = bits >> 3;
    if (j + 7 * p < bits) {
        uint64_t o0 = j >> 3, o1 = (j + p) >> 3, o2 = (j + 2 * p) >> 3,
                 o3 = (j + 3 * p) >> 3, o4 = (j + 4 * p) >> 3, o5 = (j + 5 * p) >> 3,
                 o6 = (j + 6 * p) >> 3, o7 = (j + 7 * p) >> 3;
        /* o7 + k*p < bytes for every step taken, hence all eight bytes are inside. */
        uint8_t *s = seg, *end = seg + bytes - o7;
        switch ((p & 7) * 8 + (j & 7)) {              /* p is odd: Q in {1, 3, 5, 7} */
            AC_CROSS8_CASES(1)
            AC_CROSS8_CASES(3)
            AC_CROSS8_CASES(5)
            AC_CROSS8_CASES(7)
        default: break;
        }
        j += (uint64_t)(s - seg) * 8;
    }
    for (; j < bits; j += p)
        seg[j >> 3] &= (uint8_t)~(1u << (j & 7));
    return j - bits;
}

/* See the header comment. Returns -1 if out of memory. */
static int64_t ac_count_odd_primes(uint64_t a, uint64_t b, uint64_t limit) {
    const uint64_t ia = a >> 1, ib = b >> 1;          /* odd indices of a and b */
    const uint64_t base = ia & ~63ull;                /* odd index of the first bit */
    const uint64_t mr_from = (limit + 1) * (limit + 1);
    const int need_mr = mr_from <= b;
    uint64_t words_left = (ib >> 6) - (base >> 6) + 1;
    uint64_t seg_start = base;                        /* odd index of the segment's bit 0 */
    uint64_t at[AC_PRESIEVE_GROUPS];
    uint64_t *pattern = ac_presieve_patterns();
    uint32_t *primes = 0;
    uint64_t *next = 0, *seg = 0;
    int64_t nprimes = 0, first = 0, i, count = -1;
    if (!pattern) return -1;
    for (i = 0; i < AC_PRESIEVE_GROUPS; i++) at[i] = (base >> 6) % ac_presieve_period[i];
    primes = ac_odd_primes_upto(limit, &nprimes);
    if (!primes) return -1;
    next = (uint64_t *)malloc((size_t)(nprimes > 0 ? nprimes : 1) * sizeof(uint64_t));
    seg = (uint64_t *)malloc(AC_SIEVE_SEG_WORDS * sizeof(uint64_t));
    if (!next || !seg) goto done;
    while (first < nprimes && primes[first] <= AC_PRESIEVE_LAST) first++;
    /* next[i]: odd index, relative to the segment's bit 0, of the next odd multiple of
     * primes[i] to cross off: p * p, or the first odd multiple >= a. */
    for (i = first; i < nprimes; i++) {
        uint64_t p = primes[i], idx;
        if (p * p >= a) {
            idx = (p * p) >> 1;
        } else {
            uint64_t delta = (p - a % p) % p;         /* a + delta: a multiple of p */
            if (delta & 1) delta += p;                /* ... and odd */
            idx = ia + delta / 2;                     /* (a + delta) >> 1, no overflow */
        }
        next[i] = idx - base;
    }
    count = 0;
    while (words_left) {
        uint64_t words = words_left < AC_SIEVE_SEG_WORDS ? words_left : AC_SIEVE_SEG_WORDS;
        uint64_t bits = words * 64, w;
        ac_presieve_fill(seg, words, pattern, at);
        if (seg_start == 0)                           /* the presieving primes are prime */
            for (i = 0; i < AC_PRESIEVE_PRIMES; i++)
                seg[0] |= 1ull << (ac_presieve_prime[i] >> 1);
        for (i = first; i < nprimes; i++) {
            uint64_t p = primes[i];
            if (p < AC_SIEVE_SMALL_PRIME)
                next[i] = ac_cross_small((uint8_t *)seg, bits, next[i], p);
            else if (next[i] < bits)
                next[i] = ac_cross_plain(seg, bits, next[i], p);
            else
                next[i] -= bits;
        }
        if (seg_start == base)                        /* below a */
            seg[0] &= ~0ull << (ia - base);
        if (words == words_left && (ib & 63) != 63)   /* above b */
            seg[words - 1] &= (2ull << (ib & 63)) - 1;
        if (!need_mr) {
            count += ac_popcount_words(seg, words);
        } else {
            for (w = 0; w < words; w++) {
                uint64_t x = seg[w];
                while (x) {
                    uint64_t n = 2 * (seg_start + 64 * w + (uint64_t)ac_ctz64(x)) + 1;
                    x &= x - 1;
                    if (n < mr_from || ac_miller_rabin64(n)) count++;
                }
            }
        }
        words_left -= words;
        seg_start += bits;
    }
done:
    free(primes);
    free(next);
    free(seg);
    return count;
}

#endif
