/* Counting primes in a window of odd numbers, for count_primes_range in native.pyx.
 *
 * ac_count_odd_primes(a, b, limit): the primes among the odd numbers a, a + 2, ..., b
 * (3 <= a <= b, both odd, up to 2**64 - 1), sieving with the primes up to `limit`
 * (<= 2**24) and confirming with Miller-Rabin (primality.h) any survivor >=
 * (limit + 1)**2, which the sieve alone cannot decide. The caller chooses `limit` (see
 * native.pyx); the count does not depend on it.
 *
 * The sieve (a segmented sieve of Eratosthenes on a mod-30 wheel, as primesieve's
 * EratSmall and EratMedium, Walisch 2010-):
 *   - byte k stands for the eight numbers 30k + {1, 7, 11, 13, 17, 19, 23, 29} (bit i
 *     for ac_wheel[i]), the only ones coprime to 30: 8 bits per 30 integers, against 15
 *     for one bit per odd number; a set bit is a candidate prime, so a popcount (of
 *     64-bit words, the segment padded with zero bytes) counts them; 3 and 5 are counted
 *     apart, and 1 lies below any window (a >= 3);
 *   - the first segment starts at the byte of a, the last ends at the byte of b, and the
 *     bits outside [a, b] in those two bytes are cleared before counting;
 *   - a segment has 2 * limit bytes rounded up to a power of 2, at least 128 KiB (3.9
 *     million integers) and at most 4 MiB; it is filled, in chunks of 48 KiB (the L1 data
 *     cache), from repeating patterns with the multiples of 7 .. 167 already crossed off
 *     (the byte of a multiple of p repeats every p bytes: 7*11*13*17 = 17017 bytes,
 *     19*23, 29*31, ..., 163*167; 175 KB in all), and each chunk is sieved by the primes
 *     below AC_SIEVE_SMALL_PRIME while it is in L1; the larger primes then sieve the
 *     whole segment (fewer, longer segments for larger primes: each costs a look, and a
 *     loop to leave, per segment); the presieving primes themselves are set back;
 *   - a sieving prime p = 30q + r crosses off p*m for m >= p coprime to 30, at byte
 *     q*m + floor(r*m / 30), bit fixed by (r mod 30, m mod 30): eight consecutive such m
 *     lie at offsets (q times a constant plus a constant) from the first, and the next
 *     eight p bytes further, so the primes with many multiples a segment cross off eight
 *     per step, offsets and masks immediates, one case for each r and first m mod 30;
 *     those with few (p >= segment / AC_SIEVE_EIGHT_FACTOR) one at a time from tables;
 *   - each sieving prime carries (the byte of its next multiple, relative to the
 *     segment's start; m mod 30) from one segment to the next, so byte indices stay small
 *     and never overflow, even for windows that end at 2**64 - 1; a prime whose first
 *     multiple lies beyond b never enters.
 * Everything is byte-addressed: nothing depends on the byte order.
 *
 * Everything is static plain C, GIL-free. The only shared state is the presieve patterns,
 * built once and published with an atomic compare-and-swap (threads that lose the race
 * free their copy).
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

/* The wheel: bit i of a byte stands for the residue ac_wheel[i] mod 30. */
static const uint8_t ac_wheel[8] = {1, 7, 11, 13, 17, 19, 23, 29};
/* ac_wheel_at[r]: the index of the first wheel residue >= r (r = 0 .. 29). */
static const uint8_t ac_wheel_at[30] = {
    0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 4, 4, 4, 4, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7};
/* The same as compile-time expressions, for masks that must be immediates. */
#define AC_W(i) ((i) == 0 ? 1 : (i) == 1 ? 7 : (i) == 2 ? 11 : (i) == 3 ? 13                \
                 : (i) == 4 ? 17 : (i) == 5 ? 19 : (i) == 6 ? 23 : 29)
#define AC_WIDX(x) ((x) == 1 ? 0 : (x) == 7 ? 1 : (x) == 11 ? 2 : (x) == 13 ? 3              \
                    : (x) == 17 ? 4 : (x) == 19 ? 5 : (x) == 23 ? 6 : 7)
/* The bit (as a clearing mask) of p * m, p = r (mod 30) with r = ac_wheel[J] and
 * m = ac_wheel[I] (mod 30). */
#define AC_WMASK(J, I) ((uint8_t) ~(1u << AC_WIDX((AC_W(J) * AC_W((I) & 7)) % 30)))
/* ac_wheel_step[J][I]: the byte step from p * m to p * m', m' the next number coprime
 * to 30 after m = ac_wheel[I] (mod 30), for p = 30q + r, r = ac_wheel[J], less q times
 * the gap m' - m (ac_wheel_gap[I]): floor(r*w' / 30) - floor(r*w / 30), w = m mod 30,
 * w' = w + the gap (31 after 29), as the byte of p * m is q*m + floor(r*m / 30). */
static const uint8_t ac_wheel_gap[8] = {6, 4, 2, 4, 2, 4, 6, 2};
#define AC_WSTEP(J, I) ((AC_W(J) * ((I) == 7 ? 31 : AC_W((I) + 1))) / 30                    \
                        - (AC_W(J) * AC_W(I)) / 30)
#define AC_WSTEP_ROW(J) {AC_WSTEP(J, 0), AC_WSTEP(J, 1), AC_WSTEP(J, 2), AC_WSTEP(J, 3),     \
                         AC_WSTEP(J, 4), AC_WSTEP(J, 5), AC_WSTEP(J, 6), AC_WSTEP(J, 7)}
static const uint8_t ac_wheel_step[8][8] = {
    AC_WSTEP_ROW(0), AC_WSTEP_ROW(1), AC_WSTEP_ROW(2), AC_WSTEP_ROW(3),
    AC_WSTEP_ROW(4), AC_WSTEP_ROW(5), AC_WSTEP_ROW(6), AC_WSTEP_ROW(7)};
#define AC_WMASK_ROW(J) {AC_WMASK(J, 0), AC_WMASK(J, 1), AC_WMASK(J, 2), AC_WMASK(J, 3),     \
                         AC_WMASK(J, 4), AC_WMASK(J, 5), AC_WMASK(J, 6), AC_WMASK(J, 7)}
static const uint8_t ac_wheel_mask[8][8] = {
    AC_WMASK_ROW(0), AC_WMASK_ROW(1), AC_WMASK_ROW(2), AC_WMASK_ROW(3),
    AC_WMASK_ROW(4), AC_WMASK_ROW(5), AC_WMASK_ROW(6), AC_WMASK_ROW(7)};

/* Segments (L2-sized) are sieved by the small primes (below AC_SIEVE_SMALL_PRIME) in
 * chunks of AC_SIEVE_CHUNK_BYTES (L1-sized), then by the others over the whole segment.
 * A segment has 2 * limit bytes (a power of 2), at least AC_SIEVE_SEG_BYTES and at most
 * AC_SIEVE_SEG_MAX_BYTES: each prime above the small ones costs a look (and a loop to
 * leave) per segment, so larger primes want longer segments, even beyond L2. Measured on
 * a Xeon (48 KiB L1d, 2 MiB L2): [0, 10**9) fastest with 96-192 KiB, 10**12 + [0, 10**9)
 * with 1-2 MiB, 10**14 + [0, 10**9) with 4 MiB. */
#ifndef AC_SIEVE_SEG_BYTES
#define AC_SIEVE_SEG_BYTES 131072
#ifndef AC_SIEVE_SEG_MAX_BYTES
#define AC_SIEVE_SEG_MAX_BYTES 4194304
#endif
#endif
#ifndef AC_SIEVE_SEG_MAX_BYTES
#define AC_SIEVE_SEG_MAX_BYTES AC_SIEVE_SEG_BYTES
#endif
#ifndef AC_SIEVE_CHUNK_BYTES
#define AC_SIEVE_CHUNK_BYTES 49152
#endif

/* Presieve patterns: byte k of a pattern has the multiples of its primes cleared among
 * 30k + ac_wheel[i]; as 30 is invertible mod p, its period (in bytes) is the product of
 * its primes. A segment is the AND of the patterns, four at a time. The tests shrink
 * AC_PRESIEVE_GROUPS (even to 0) so that the small primes go through the sieving loops. */
#define AC_PRESIEVE_MAX_GROUPS 17
#ifndef AC_PRESIEVE_GROUPS
#define AC_PRESIEVE_GROUPS AC_PRESIEVE_MAX_GROUPS
#endif
#define AC_PRESIEVE_PRIMES 36
static const uint32_t ac_presieve_period[AC_PRESIEVE_MAX_GROUPS] = {
    7 * 11 * 13 * 17, 19 * 23, 29 * 31, 37 * 41, 43 * 47, 53 * 59, 61 * 67, 71 * 73,
    79 * 83, 89 * 97, 101 * 103, 107 * 109, 113 * 127, 131 * 137, 139 * 149, 151 * 157,
    163 * 167};
static const uint8_t ac_presieve_prime[AC_PRESIEVE_PRIMES] = {
    7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167};
static const uint8_t ac_presieve_group[AC_PRESIEVE_PRIMES] = {
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
    13, 13, 14, 14, 15, 15, 16, 16};

/* Primes below this sieve each L1 chunk while it is in L1, eight multiples per step;
 * 8192: at least 48 multiples a 48 KiB chunk (measured: 4096 and 16384 slower). */
#ifndef AC_SIEVE_SMALL_PRIME
#define AC_SIEVE_SMALL_PRIME 8192
#endif
/* The other primes below seg_bytes / AC_SIEVE_EIGHT_FACTOR (8 * seg_bytes / p >= 32
 * multiples a segment) too cross off eight per step over the segment; the larger ones
 * (few multiples a segment, where the setup of the eight-per-step loop does not pay)
 * one at a time. */
#ifndef AC_SIEVE_EIGHT_FACTOR
#define AC_SIEVE_EIGHT_FACTOR 4
#endif
/* AC_SIEVE_PLAIN 1: every prime crosses off one multiple at a time (ac_cross_plain). */
#ifndef AC_SIEVE_PLAIN
#define AC_SIEVE_PLAIN 0
#endif

static uint8_t *ac_presieve_pattern_ptr = 0;

/* The presieve patterns, one after the other (the primes themselves cleared too);
 * NULL if out of memory. */
static uint8_t *ac_presieve_patterns(void) {
    uint8_t *pattern, *expected = 0;
    uint64_t offset[AC_PRESIEVE_MAX_GROUPS + 1], total;
    int i;
#if defined(_MSC_VER) && !defined(__clang__)
    pattern = (uint8_t *)_InterlockedCompareExchangePointer(
        (void *volatile *)&ac_presieve_pattern_ptr, 0, 0);
#else
    pattern = __atomic_load_n(&ac_presieve_pattern_ptr, __ATOMIC_ACQUIRE);
#endif
    if (pattern) return pattern;
    offset[0] = 0;
    for (i = 0; i < AC_PRESIEVE_MAX_GROUPS; i++)
        offset[i + 1] = offset[i] + ac_presieve_period[i];
    total = offset[AC_PRESIEVE_MAX_GROUPS];
    pattern = (uint8_t *)malloc((size_t)total);
    if (!pattern) return 0;
    memset(pattern, 0xff, (size_t)total);
    for (i = 0; i < AC_PRESIEVE_PRIMES; i++) {
        uint64_t p = ac_presieve_prime[i], g = ac_presieve_group[i];
        uint8_t *bytes = pattern + offset[g];
        for (uint64_t k = 0; k < ac_presieve_period[g]; k++)
            for (int w = 0; w < 8; w++)
                if ((30 * k + ac_wheel[w]) % p == 0) bytes[k] &= (uint8_t) ~(1u << w);
    }
#if defined(_MSC_VER) && !defined(__clang__)
    expected = (uint8_t *)_InterlockedCompareExchangePointer(
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

/* seg[0 .. bytes - 1] = the AND of the first AC_PRESIEVE_GROUPS patterns, at[g] (the byte
 * of pattern g for seg[0]) advancing, and wrapping, by one per byte; four patterns a pass,
 * in runs up to the next wrap of one of them. */
static inline void ac_presieve_fill(uint8_t *seg, uint64_t bytes, const uint8_t *pattern,
                                    uint64_t *at) {
    const uint8_t *start[AC_PRESIEVE_MAX_GROUPS + 1];
    int g0;
    start[0] = pattern;
    for (int g = 0; g < AC_PRESIEVE_MAX_GROUPS; g++)
        start[g + 1] = start[g] + ac_presieve_period[g];
    if (AC_PRESIEVE_GROUPS == 0) memset(seg, 0xff, (size_t)bytes);
    for (g0 = 0; g0 < AC_PRESIEVE_GROUPS; g0 += 4) {
        const int n = AC_PRESIEVE_GROUPS - g0 < 4 ? AC_PRESIEVE_GROUPS - g0 : 4;
        uint64_t w = 0;
        while (w < bytes) {
            uint64_t run = bytes - w, i;
            const uint8_t *p0, *p1, *p2, *p3;
            uint8_t *s = seg + w;
            for (int g = g0; g < g0 + n; g++)
                if (ac_presieve_period[g] - at[g] < run) run = ac_presieve_period[g] - at[g];
            p0 = start[g0] + at[g0];
            p1 = n > 1 ? start[g0 + 1] + at[g0 + 1] : p0;
            p2 = n > 2 ? start[g0 + 2] + at[g0 + 2] : p0;
            p3 = n > 3 ? start[g0 + 3] + at[g0 + 3] : p0;
            if (g0 == 0)
                for (i = 0; i < run; i++) s[i] = p0[i] & p1[i] & p2[i] & p3[i];
            else
                for (i = 0; i < run; i++) s[i] &= p0[i] & p1[i] & p2[i] & p3[i];
            for (int g = g0; g < g0 + n; g++) {
                at[g] += run;
                if (at[g] == ac_presieve_period[g]) at[g] = 0;
            }
            w += run;
        }
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

/* The sieving state of a prime, one uint64: (the byte of its next multiple, relative to
 * the segment's byte 0) * 8 + (the wheel index of that multiple's cofactor m). */

/* Cross off the multiples of p = 30q + ac_wheel[j] from byte `pos` (cofactor's wheel
 * index i) to the end of the segment, one at a time; its next state. */
static inline uint64_t ac_cross_plain(uint8_t *seg, uint64_t bytes, uint64_t pos, unsigned i,
                                      uint64_t q, unsigned j) {
    const uint8_t *mask = ac_wheel_mask[j], *step = ac_wheel_step[j];
    while (pos < bytes) {
        seg[pos] &= mask[i];
        pos += q * ac_wheel_gap[i] + step[i];
        i = (i + 1) & 7;
    }
    return ((pos - bytes) << 3) | i;
}

/* Eight multiples per step. The byte of p * m (p = 30q + r) is q*m + floor(r*m / 30):
 * for m = m_0 .. m_7, eight consecutive numbers coprime to 30 from m_0 = ac_wheel[I]
 * (mod 30), the offsets from p * m_0's byte are q * (m_k - m_0) + floor(r*m_k / 30) -
 * floor(r*m_0 / 30), the bits are fixed by (J, I) (r = ac_wheel[J]), and m_8 = m_0 + 30
 * lies p bytes further: offsets (q times a constant, plus a constant) and masks are
 * immediates, one case per (J, I). While all eight multiples fall inside the segment they
 * go at once; then those of the next eight that still fall inside, one at a time, and
 * the first outside is the prime's next state. */
#define AC_WM(I, K) (AC_W(((I) + (K)) & 7) + 30 * (((I) + (K)) >> 3))   /* m_k mod 60 */
#define AC_WOFF(J, I, K) (q * (uint64_t)(AC_WM(I, K) - AC_W(I))                          \
                          + (uint64_t)((AC_W(J) * AC_WM(I, K)) / 30 - (AC_W(J) * AC_W(I)) / 30))
#define AC_WTAIL(J, I, K)                                                                 \
    if (pos + AC_WOFF(J, I, K) >= bytes) { pos += AC_WOFF(J, I, K); i = ((I) + (K)) & 7; break; } \
    seg[pos + AC_WOFF(J, I, K)] &= AC_WMASK(J, (I) + (K));
#define AC_WCROSS8(J, I)                                                                  \
    case J * 8 + I: {                                                                     \
        const uint64_t p = 30 * q + AC_W(J), o7 = AC_WOFF(J, I, 7);                       \
        const uint64_t stop = bytes > o7 ? bytes - o7 : 0;                               \
        for (; pos < stop; pos += p) {                                                    \
            uint8_t *s = seg + pos;                                                       \
            s[0] &= AC_WMASK(J, I);                       s[AC_WOFF(J, I, 1)] &= AC_WMASK(J, I + 1); \
            s[AC_WOFF(J, I, 2)] &= AC_WMASK(J, I + 2); s[AC_WOFF(J, I, 3)] &= AC_WMASK(J, I + 3); \
            s[AC_WOFF(J, I, 4)] &= AC_WMASK(J, I + 4); s[AC_WOFF(J, I, 5)] &= AC_WMASK(J, I + 5); \
            s[AC_WOFF(J, I, 6)] &= AC_WMASK(J, I + 6); s[o7] &= AC_WMASK(J, I + 7);       \
        }                                                                                 \
        AC_WTAIL(J, I, 0) AC_WTAIL(J, I, 1) AC_WTAIL(J, I, 2) AC_WTAIL(J, I, 3)           \
        AC_WTAIL(J, I, 4) AC_WTAIL(J, I, 5) AC_WTAIL(J, I, 6)                             \
        pos += o7; i = ((I) + 7) & 7;                 /* pos + o7 >= bytes: see `stop` */ \
        break;                                                                            \
    }
#define AC_WCROSS8_CASES(J)                                                               \
    AC_WCROSS8(J, 0) AC_WCROSS8(J, 1) AC_WCROSS8(J, 2) AC_WCROSS8(J, 3)                   \
    AC_WCROSS8(J, 4) AC_WCROSS8(J, 5) AC_WCROSS8(J, 6) AC_WCROSS8(J, 7)

/* As ac_cross_plain, eight multiples per step while all eight fall inside. */
static inline uint64_t ac_cross_small(uint8_t *seg, uint64_t bytes, uint64_t pos, unsigned i,
                                      uint64_t q, unsigned j) {
    if (AC_SIEVE_PLAIN) return ac_cross_plain(seg, bytes, pos, i, q, j);
    switch (j * 8 + i) {
        AC_WCROSS8_CASES(0)
        AC_WCROSS8_CASES(1)
        AC_WCROSS8_CASES(2)
        AC_WCROSS8_CASES(3)
        AC_WCROSS8_CASES(4)
        AC_WCROSS8_CASES(5)
        AC_WCROSS8_CASES(6)
        AC_WCROSS8_CASES(7)
    default: break;
    }
    return ((pos - bytes) << 3) | i;
}

/* Cross off the multiples of primes[from .. to - 1] (states next[]) in seg[0 .. bytes-1]. */
static inline void ac_cross_primes(uint8_t *seg, uint64_t bytes, const uint32_t *primes,
                                   uint64_t *next, int64_t from, int64_t to, int eight) {
    for (int64_t i = from; i < to; i++) {
        uint64_t st = next[i], p, q;
        if ((st >> 3) >= bytes) {
            next[i] = st - (bytes << 3);
            continue;
        }
        p = primes[i];
        q = p / 30;
        if (eight)
            next[i] = ac_cross_small(seg, bytes, st >> 3, (unsigned)st & 7, q,
                                     ac_wheel_at[p - 30 * q]);
        else
            next[i] = ac_cross_plain(seg, bytes, st >> 3, (unsigned)st & 7, q,
                                     ac_wheel_at[p - 30 * q]);
    }
}

/* ac_wheel_ge[r] / ac_wheel_le[r]: the bits of a byte whose residues are >= r / <= r. */
static inline uint8_t ac_wheel_ge(unsigned r) {
    uint8_t m = 0;
    for (int i = 0; i < 8; i++) if (ac_wheel[i] >= r) m |= (uint8_t)(1u << i);
    return m;
}
static inline uint8_t ac_wheel_le(unsigned r) {
    uint8_t m = 0;
    for (int i = 0; i < 8; i++) if (ac_wheel[i] <= r) m |= (uint8_t)(1u << i);
    return m;
}

/* See the header comment. Returns -1 if out of memory. */
static int64_t ac_count_odd_primes(uint64_t a, uint64_t b, uint64_t limit) {
    const uint64_t ka = a / 30, kb = b / 30;          /* the bytes of a and b */
    const uint64_t mr_from = (limit + 1) * (limit + 1);
    const int need_mr = mr_from <= b;
    uint64_t bytes_left = kb - ka + 1;
    uint64_t seg_start = ka;                          /* the byte of the segment's byte 0 */
    uint64_t seg_bytes = AC_SIEVE_SEG_BYTES;
    uint64_t at[AC_PRESIEVE_MAX_GROUPS];
    uint8_t *pattern = ac_presieve_patterns();
    uint32_t *primes = 0;
    uint64_t *next = 0, *seg = 0, presieve_last = 5;
    int64_t nprimes = 0, first = 0, split, split2, i, count = -1;
    if (!pattern) return -1;
    for (i = 0; i < AC_PRESIEVE_MAX_GROUPS; i++) at[i] = ka % ac_presieve_period[i];
    for (i = 0; i < AC_PRESIEVE_PRIMES; i++)
        if (ac_presieve_group[i] < AC_PRESIEVE_GROUPS) presieve_last = ac_presieve_prime[i];
    primes = ac_odd_primes_upto(limit, &nprimes);
    if (!primes) return -1;
    next = (uint64_t *)malloc((size_t)(nprimes > 0 ? nprimes : 1) * sizeof(uint64_t));
    while (seg_bytes < AC_SIEVE_SEG_MAX_BYTES && seg_bytes < 2 * limit) seg_bytes *= 2;
    if (seg_bytes > AC_SIEVE_SEG_MAX_BYTES) seg_bytes = AC_SIEVE_SEG_MAX_BYTES;
    if (seg_bytes > bytes_left) seg_bytes = bytes_left;
    seg = (uint64_t *)malloc((size_t)((seg_bytes + 7) / 8) * sizeof(uint64_t));
    if (!next || !seg) goto done;
    while (first < nprimes && primes[first] <= presieve_last) first++;
    split = first;
    while (split < nprimes && primes[split] < AC_SIEVE_SMALL_PRIME) split++;
    split2 = split;
    while (split2 < nprimes && primes[split2] < seg_bytes / AC_SIEVE_EIGHT_FACTOR) split2++;
    /* The first multiple p * m to cross off: m >= p, p * m >= a, m coprime to 30. */
    for (i = first; i < nprimes; i++) {
        uint64_t p = primes[i], m = a / p + (a % p != 0), w;
        if (m < p) m = p;
        w = ac_wheel_at[m % 30];
        m = m - m % 30 + ac_wheel[w];
        if (m > b / p)                                /* p * m > b: no multiple in [a, b] */
            next[i] = ~0ull >> 1 & ~7ull;             /* (a byte beyond any window) * 8 */
        else
            next[i] = ((p * m / 30 - ka) << 3) | w;
    }
    count = (a <= 3 && 3 <= b) + (a <= 5 && 5 <= b);
    while (bytes_left) {
        uint64_t bytes = bytes_left < seg_bytes ? bytes_left : seg_bytes;
        uint64_t words = (bytes + 7) / 8;
        uint8_t *s8 = (uint8_t *)seg;
        for (uint64_t c = 0; c < bytes; c += AC_SIEVE_CHUNK_BYTES) {
            uint64_t cb = bytes - c < AC_SIEVE_CHUNK_BYTES ? bytes - c : AC_SIEVE_CHUNK_BYTES;
            ac_presieve_fill(s8 + c, cb, pattern, at);
            ac_cross_primes(s8 + c, cb, primes, next, first, split, 1);
        }
        ac_cross_primes(s8, bytes, primes, next, split, split2, 1);
        ac_cross_primes(s8, bytes, primes, next, split2, nprimes, 0);
        if (seg_start * 30 <= presieve_last)          /* the presieving primes are prime */
            for (i = 0; i < AC_PRESIEVE_PRIMES; i++) {
                uint64_t p = ac_presieve_prime[i];
                if (ac_presieve_group[i] < AC_PRESIEVE_GROUPS && p / 30 >= seg_start
                    && p / 30 < seg_start + bytes)
                    s8[p / 30 - seg_start] |= (uint8_t)(1u << ac_wheel_at[p % 30]);
            }
        if (seg_start == ka)                          /* below a */
            s8[0] &= ac_wheel_ge((unsigned)(a - 30 * ka));
        if (bytes == bytes_left)                      /* above b */
            s8[bytes - 1] &= ac_wheel_le((unsigned)(b - 30 * kb));
        memset(s8 + bytes, 0, (size_t)(words * 8 - bytes));
        if (!need_mr) {
            count += ac_popcount_words(seg, words);
        } else {
            for (uint64_t k = 0; k < bytes; k++) {
                uint64_t x = s8[k];
                while (x) {
                    uint64_t n = 30 * (seg_start + k) + ac_wheel[ac_ctz64(x)];
                    x &= x - 1;
                    if (n < mr_from || ac_miller_rabin64(n)) count++;
                }
            }
        }
        bytes_left -= bytes;
        seg_start += bytes;
    }
done:
    free(primes);
    free(next);
    free(seg);
    return count;
}

#endif
