/* fannkuch-redux: flip counting (the hot loop) and whole blocks of permutations, a
 * portable loop and, on x86 with AVX2, a byte-shuffle loop chosen at run time.
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

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(AC_NO_DISPATCH)
#define AC_FANNKUCH_HAVE_X86_DISPATCH 1
#else
#define AC_FANNKUCH_HAVE_X86_DISPATCH 0
#endif

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

/* ---------------------------------------------------------------------------------------
 * Whole blocks: (checksum, max_flips) over permutation indices [start, stop).
 *
 * Permutations come in the Benchmarks Game order (rotations of the first i + 1 elements
 * driven by a factorial-base counter, count[i] being digit i of the index); the first
 * one is built directly from its index, as the benchmark's multi-threaded programs do,
 * so a block can start anywhere.
 */

/* The permutation with index `idx` into perm[0..15] (identity past n) and its digits
 * into count[0..15]. */
static inline void ac_fannkuch_unrank(int n, int64_t idx, uint8_t perm[16], int count[16]) {
    uint8_t scratch[16];
    int64_t fact[17];
    int i, k, d;
    fact[0] = 1;
    for (i = 1; i <= n; i++) fact[i] = fact[i - 1] * i;
    for (i = 0; i < 16; i++) {
        perm[i] = (uint8_t)i;
        count[i] = 0;
    }
    for (i = n - 1; i > 0; i--) {
        d = (int)(idx / fact[i]);
        count[i] = d;
        idx %= fact[i];
        memcpy(scratch, perm, 16);
        for (k = 0; k <= i; k++) perm[k] = k + d <= i ? scratch[k + d] : scratch[k + d - i - 1];
    }
}

/* The straightforward loop, one permutation at a time (the plain C reference's
 * algorithm with the flips above). */
static void ac_fannkuch_block_portable(int n, int64_t start, int64_t stop, int64_t *checksum,
                                       int *max_flips) {
    uint8_t perm[16], first;
    int count[16], i, k, flips, best = 0;
    int64_t index = start, sum = 0;
    *checksum = 0;
    *max_flips = 0;
    if (start >= stop) return;
    ac_fannkuch_unrank(n, start, perm, count);
    for (;;) {
        if (perm[0] != 0) {
            flips = ac_fannkuch_flips(perm);
            if (flips > best) best = flips;
            sum += index % 2 == 0 ? flips : -flips;
        }
        if (++index == stop) break;
        /* Next permutation: rotate the first i + 1 elements left while the counter
           carries. */
        first = perm[1];
        perm[1] = perm[0];
        perm[0] = first;
        i = 1;
        count[i]++;
        while (count[i] > i) {
            count[i] = 0;
            i++;
            first = perm[0];
            for (k = 0; k < i; k++) perm[k] = perm[k + 1];
            perm[i] = first;
            count[i]++;
        }
    }
    *checksum = sum;
    *max_flips = best;
}

/* ---------------------------------------------------------------------------------------
 * The shuffle loop (x86 with SSSE3's pshufb; compiled for AVX2, which every CPU that
 * has it pairs with SSSE3).
 *
 * The permutation lives in one 16-byte register. A flip of the first f + 1 elements is
 * one pshufb with a mask (bytes f..0, then identity), a rotation of the first i + 1
 * elements one pshufb with rotate[i]. Counting flips is a chain of dependent shuffles
 * that leaves most of the core idle, so permutations are counted in pairs, in the two
 * halves of one AVX2 register: the one at an even index and its successor, which is the
 * same permutation with its first two elements swapped (digit 1 of an even index is 0);
 * the pair's checksum is simply flips(even) - flips(odd). Two pairs (two registers) run
 * at once. Measured on a Xeon (AVX-512 class, GCC 12), n = 11: 0.58 s, against 2.4 s for
 * the plain C reference and 1.9 s for the portable loop; one pair at a time took 0.76 s,
 * and one permutation per register with the flip mask loaded from a table (the front
 * byte's trip through a general register and the load lengthen the chain) 1.2 s.
 */
#if AC_FANNKUCH_HAVE_X86_DISPATCH
#include <immintrin.h>

typedef struct {
    __m128i reverse[16]; /* reverse[f]: reverse bytes 0..f (reverse[0] is the identity) */
    __m128i rotate[16];  /* rotate[i]: bytes 0..i rotated left by one */
} ac_fannkuch_masks;

static void ac_fannkuch_make_masks(ac_fannkuch_masks *masks) {
    uint8_t bytes[16];
    int f, k;
    for (f = 0; f < 16; f++) {
        for (k = 0; k < 16; k++) bytes[k] = (uint8_t)(k <= f ? f - k : k);
        memcpy(&masks->reverse[f], bytes, 16);
        for (k = 0; k < 16; k++) bytes[k] = (uint8_t)(k < f ? k + 1 : k == f ? 0 : k);
        memcpy(&masks->rotate[f], bytes, 16);
    }
}

#define AC_FRONT(x) (_mm_cvtsi128_si32(x) & 0xff)

/* Flips of one permutation. */
static inline __attribute__((always_inline, target("avx2"))) int
ac_fannkuch_flips_shuffle(__m128i x, const __m128i *reverse) {
    int first = AC_FRONT(x), flips = 0;
    while (first != 0) {
        x = _mm_shuffle_epi8(x, _mm_load_si128(reverse + first));
        first = AC_FRONT(x);
        flips++;
    }
    return flips;
}

/* Flips of two permutations at once, one in each 128-bit half of an AVX2 register (byte
 * shuffles stay within their half). The reversal mask is computed, not loaded: with f
 * the front byte, broadcast (one shuffle), bytes k <= f take f - k and the others keep
 * their place; f - k wraps to >= 0x80 for k > f, which makes the shuffle write zero
 * there, so the kept bytes are OR-ed in. Four dependent single-cycle steps a flip, and
 * a half whose front reached 0 flips nothing more (f = 0 reverses one byte). */
static inline __attribute__((always_inline, target("avx2"))) void
ac_fannkuch_flips_pair(__m128i a, __m128i b, int *flips_a, int *flips_b) {
    const __m256i zero = _mm256_setzero_si256();
    const __m256i iota = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
                                          15, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
                                          14, 15);
    __m256i x = _mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1), front, kept;
    unsigned zero_fronts = (unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, zero));
    int fa = 0, fb = 0;
    while ((zero_fronts & 0x10001u) != 0x10001u) {
        fa += !(zero_fronts & 1u);
        fb += !(zero_fronts & 0x10000u);
        front = _mm256_shuffle_epi8(x, zero);
        kept = _mm256_and_si256(x, _mm256_cmpgt_epi8(iota, front));
        x = _mm256_or_si256(_mm256_shuffle_epi8(x, _mm256_sub_epi8(front, iota)), kept);
        zero_fronts = (unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, zero));
    }
    *flips_a = fa;
    *flips_b = fb;
}

/* Two pairs at once: two independent register chains. */
static inline __attribute__((always_inline, target("avx2"))) void
ac_fannkuch_flips_quad(__m128i a, __m128i b, __m128i c, __m128i d, int flips[4]) {
    const __m256i zero = _mm256_setzero_si256();
    const __m256i iota = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
                                          15, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
                                          14, 15);
    __m256i x = _mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1);
    __m256i y = _mm256_inserti128_si256(_mm256_castsi128_si256(c), d, 1), fx, fy, kx, ky;
    uint64_t zero_fronts, done = 0x0001000100010001ull;
    int f0 = 0, f1 = 0, f2 = 0, f3 = 0;
    zero_fronts = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, zero)) |
                  ((uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(y, zero)) << 32);
    while ((zero_fronts & done) != done) {
        f0 += !(zero_fronts & 1u);
        f1 += !((zero_fronts >> 16) & 1u);
        f2 += !((zero_fronts >> 32) & 1u);
        f3 += !((zero_fronts >> 48) & 1u);
        fx = _mm256_shuffle_epi8(x, zero);
        fy = _mm256_shuffle_epi8(y, zero);
        kx = _mm256_and_si256(x, _mm256_cmpgt_epi8(iota, fx));
        ky = _mm256_and_si256(y, _mm256_cmpgt_epi8(iota, fy));
        x = _mm256_or_si256(_mm256_shuffle_epi8(x, _mm256_sub_epi8(fx, iota)), kx);
        y = _mm256_or_si256(_mm256_shuffle_epi8(y, _mm256_sub_epi8(fy, iota)), ky);
        zero_fronts = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, zero)) |
                      ((uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(y, zero))
                       << 32);
    }
    flips[0] = f0;
    flips[1] = f1;
    flips[2] = f2;
    flips[3] = f3;
}

/* Advance x (at an index whose digits are count[]) by rotating from digit `i` on:
 * rotate the first i + 1 elements, and carry while the digit overflows. */
static inline __attribute__((always_inline, target("avx2"))) __m128i
ac_fannkuch_advance(__m128i x, int i, int count[16], const __m128i *rotate) {
    x = _mm_shuffle_epi8(x, _mm_load_si128(rotate + i));
    count[i]++;
    while (count[i] > i) {
        count[i] = 0;
        i++;
        x = _mm_shuffle_epi8(x, _mm_load_si128(rotate + i));
        count[i]++;
    }
    return x;
}

static __attribute__((target("avx2"))) void
ac_fannkuch_block_avx2(int n, int64_t start, int64_t stop, int64_t *checksum,
                       int *max_flips) {
    ac_fannkuch_masks masks;
    uint8_t perm[16];
    int count[16], fa, fb, best = 0;
    int64_t index = start, sum = 0;
    __m128i x;
    *checksum = 0;
    *max_flips = 0;
    if (start >= stop) return;
    ac_fannkuch_make_masks(&masks);
    ac_fannkuch_unrank(n, start, perm, count);
    x = _mm_loadu_si128((const __m128i *)perm);
    if (index % 2 == 1) { /* an odd start: count it alone to reach a pair boundary */
        fb = ac_fannkuch_flips_shuffle(x, masks.reverse);
        best = fb;
        sum = -fb;
        if (++index == stop) goto done;
        x = ac_fannkuch_advance(x, 1, count, masks.rotate);
    }
    /* Here index is even (count[1] == 0) and x its permutation. */
    while (stop - index >= 4) {
        int q[4];
        __m128i swap = _mm_load_si128(masks.rotate + 1);
        __m128i x2 = ac_fannkuch_advance(x, 2, count, masks.rotate);
        ac_fannkuch_flips_quad(x, _mm_shuffle_epi8(x, swap), x2, _mm_shuffle_epi8(x2, swap),
                               q);
        sum += (q[0] - q[1]) + (q[2] - q[3]);
        best = q[0] > best ? q[0] : best;
        best = q[1] > best ? q[1] : best;
        best = q[2] > best ? q[2] : best;
        best = q[3] > best ? q[3] : best;
        index += 4;
        if (index == stop) goto done;
        x = ac_fannkuch_advance(x2, 2, count, masks.rotate);
    }
    while (stop - index >= 2) {
        ac_fannkuch_flips_pair(x, _mm_shuffle_epi8(x, _mm_load_si128(masks.rotate + 1)), &fa,
                               &fb);
        sum += fa - fb;
        if (fa > best) best = fa;
        if (fb > best) best = fb;
        index += 2;
        if (index == stop) goto done;
        /* From the odd one the step would swap back to x and carry into digit 2. */
        x = ac_fannkuch_advance(x, 2, count, masks.rotate);
    }
    fa = ac_fannkuch_flips_shuffle(x, masks.reverse); /* one even index left */
    sum += fa;
    if (fa > best) best = fa;
done:
    *checksum = sum;
    *max_flips = best;
}
#endif

/* ---------------------------------------------------------------------------------------
 * Dispatch. Instruction-set numbers are mandelbrot.h's enum ac_isa: "scalar" and
 * "baseline" run the portable loop (SSE2 has no byte shuffle), "avx2" and "avx512"
 * the shuffle loop (AVX-512 adds nothing it uses).
 */
static int ac_fannkuch_best_isa(void) {
#if AC_FANNKUCH_HAVE_X86_DISPATCH
    if (__builtin_cpu_supports("avx2")) return 2;
#endif
    return 1;
}

static void ac_fannkuch_block_isa(int isa, int n, int64_t start, int64_t stop,
                                  int64_t *checksum, int *max_flips) {
#if AC_FANNKUCH_HAVE_X86_DISPATCH
    if (isa >= 2) {
        ac_fannkuch_block_avx2(n, start, stop, checksum, max_flips);
        return;
    }
#endif
    (void)isa;
    ac_fannkuch_block_portable(n, start, stop, checksum, max_flips);
}

#endif
