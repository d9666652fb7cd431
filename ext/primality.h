/* Exact primality of 64-bit integers, for is_prime_array in native.pyx.
 *
 * ac_is_prime64(n): a divisibility prefilter by the odd primes below 256 (one multiply
 * and one compare each, no division), then deterministic Miller-Rabin in Montgomery
 * form: bases {2, 7, 61} below 4,759,123,141 (Jaeschke 1993) and Jim Sinclair's seven
 * bases {2, 325, 9375, 28178, 450775, 9780504, 1795265022} above (exact for every
 * n < 2**64). Base 2 goes first (it rejects almost every composite) and is raised by
 * doublings, not multiplications. ac_is_prime64_array, what the kernel calls, also
 * overlaps independent work: base 2 for four values at once, then the remaining bases
 * of one value three at a time (a single exponentiation is bound by the latency of its
 * chain of products, not by the multiplier's throughput).
 *
 * Montgomery arithmetic with R = 2**64: x is held as x*R mod n, and a product costs
 * three 64x64->128 multiplies and no division (REDC, Montgomery 1985), against one
 * 128/64-bit division per product for ((unsigned __int128)a * b) % n.
 *
 * Where the compiler has unsigned __int128 it gives the high half of a product; else
 * (MSVC, or AC_PRIMALITY_PORTABLE defined, which the tests use to check that path) the
 * product is assembled from 32-bit halves: slower, equally exact.
 *
 * Everything is static inline plain C, GIL-free, no state.
 */
#ifndef ALLCORES_PRIMALITY_H
#define ALLCORES_PRIMALITY_H

#include <stdint.h>

#if defined(__SIZEOF_INT128__) && !defined(AC_PRIMALITY_PORTABLE)
#define AC_PRIMALITY_INT128 1
__extension__ typedef unsigned __int128 ac_u128;
#else
#define AC_PRIMALITY_INT128 0
#endif

/* The full 128-bit product a * b as (*hi, return value). */
static inline uint64_t ac_mul_full64(uint64_t a, uint64_t b, uint64_t *hi) {
#if AC_PRIMALITY_INT128
    ac_u128 p = (ac_u128)a * b;
    *hi = (uint64_t)(p >> 64);
    return (uint64_t)p;
#else
    uint64_t a_lo = a & 0xFFFFFFFFu, a_hi = a >> 32;
    uint64_t b_lo = b & 0xFFFFFFFFu, b_hi = b >> 32;
    uint64_t ll = a_lo * b_lo, lh = a_lo * b_hi, hl = a_hi * b_lo, hh = a_hi * b_hi;
    /* The middle column sums three values below 2**32: no overflow. */
    uint64_t mid = (ll >> 32) + (lh & 0xFFFFFFFFu) + (hl & 0xFFFFFFFFu);
    *hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
    return (mid << 32) | (ll & 0xFFFFFFFFu);
#endif
}

static inline uint64_t ac_mul_high64(uint64_t a, uint64_t b) {
    uint64_t hi;
    (void)ac_mul_full64(a, b, &hi);
    return hi;
}

/* Montgomery constants of one odd modulus n > 1 (R = 2**64). */
typedef struct {
    uint64_t n;
    uint64_t n_inv;      /* n**-1 mod 2**64 */
    uint64_t one;        /* R mod n: 1 in Montgomery form */
    uint64_t minus_one;  /* n - one: -1 in Montgomery form */
} ac_mont64;

static inline ac_mont64 ac_mont64_init(uint64_t n) {
    ac_mont64 m;
    /* Newton's iteration x <- x * (2 - n * x) doubles the correct low bits; (3 * n) XOR 2
     * is right to 5 bits for every odd n (Montgomery's trick), so 4 steps give 64. */
    uint64_t x = (3 * n) ^ 2;
    x *= 2 - n * x;
    x *= 2 - n * x;
    x *= 2 - n * x;
    x *= 2 - n * x;
    m.n = n;
    m.n_inv = x;
    m.one = (0 - n) % n;  /* 2**64 - n == R - n, reduced */
    m.minus_one = n - m.one;
    return m;
}

/* a * b / R mod n for a, b < n: REDC. With T = a * b = hi * 2**64 + lo and
 * q = lo * n**-1 mod 2**64, T - q * n has a zero low word, so (T - q * n) / 2**64 is
 * hi - high(q * n), which lies in (-n, n). */
static inline uint64_t ac_mont64_mul(const ac_mont64 *m, uint64_t a, uint64_t b) {
    uint64_t hi, lo = ac_mul_full64(a, b, &hi);
    uint64_t qn_hi = ac_mul_high64(lo * m->n_inv, m->n);
    uint64_t r = hi - qn_hi;
    return hi < qn_hi ? r + m->n : r;
}

/* (a + b) mod n for a, b < n, with no overflow even for n close to 2**64. */
static inline uint64_t ac_addmod64(uint64_t a, uint64_t b, uint64_t n) {
    uint64_t gap = n - b;
    return a >= gap ? a - gap : a + b;
}

/* a * R mod n for a < n: a's Montgomery form. Only the bases other than 2 need it,
 * that is, only values that already passed base 2 (nearly all primes). */
static inline uint64_t ac_mont64_from(const ac_mont64 *m, uint64_t a) {
#if AC_PRIMALITY_INT128
    return (uint64_t)((((ac_u128)a) << 64) % m->n);
#else
    /* a * 2**64 mod n by 64 modular doublings: exact without a 128-bit remainder. */
    int i;
    for (i = 0; i < 64; i++) a = ac_addmod64(a, a, m->n);
    return a;
#endif
}

/* The strong-probable-prime test's end: x = a**d (Montgomery form), n - 1 = d * 2**s. */
static inline int ac_sprp_finish(const ac_mont64 *m, uint64_t x, int s) {
    int i;
    if (x == m->one || x == m->minus_one) return 1;
    for (i = 1; i < s; i++) {
        x = ac_mont64_mul(m, x, x);
        if (x == m->minus_one) return 1;
        if (x == m->one) return 0;  /* 1 reached without passing -1: composite */
    }
    return 0;
}

/* Strong probable prime to base 2, for odd n > 2. Left-to-right powering where each
 * multiply by 2 is a modular doubling (in Montgomery form too: 2 * xR = (2x)R). */
static inline int ac_sprp2(const ac_mont64 *m, uint64_t d, int s) {
    int bit = 63;
    uint64_t x;
    while (!((d >> bit) & 1)) bit--;
    x = ac_addmod64(m->one, m->one, m->n);  /* the top bit of d: 2 */
    while (--bit >= 0) {
        x = ac_mont64_mul(m, x, x);
        /* Doubling by adding x or 0: the bits of d are random, a branch would miss. */
        x = ac_addmod64(x, x & (0 - ((d >> bit) & 1)), m->n);
    }
    return ac_sprp_finish(m, x, s);
}

/* Strong probable prime to every base in a_m[0 .. count - 1] (Montgomery forms, none 0
 * mod n; count <= AC_SPRP_LANES), odd n > 2. The bases are raised in lockstep: one
 * product's latency (three dependent multiplies) is what bounds a single chain, so
 * independent chains side by side run almost for free. The bases that come after base 2
 * mostly meet primes, which pass them all, so nothing is lost by not stopping early. */
#define AC_SPRP_LANES 3
static inline int ac_sprp_lanes(const ac_mont64 *m, const uint64_t *a_m, int count,
                                uint64_t d, int s) {
    uint64_t x[AC_SPRP_LANES];
    int bit = 63, j, ok = 1;
    while (!((d >> bit) & 1)) bit--;
    for (j = 0; j < count; j++) x[j] = a_m[j];  /* the top bit of d */
    while (--bit >= 0) {
        for (j = 0; j < count; j++) x[j] = ac_mont64_mul(m, x[j], x[j]);
        if ((d >> bit) & 1)
            for (j = 0; j < count; j++) x[j] = ac_mont64_mul(m, x[j], a_m[j]);
    }
    for (j = 0; j < count; j++) ok &= ac_sprp_finish(m, x[j], s);
    return ok;
}

/* The bases after 2: {7, 61} below AC_MR_SMALL_LIMIT, Sinclair's other six above. */
static const uint64_t AC_MR_SMALL_LIMIT = 4759123141ULL;
static const uint64_t AC_MR_SMALL_BASES[2] = {7, 61};  /* after 2 */
static const uint64_t AC_MR_LARGE_BASES[6] = {325, 9375, 28178, 450775, 9780504,
                                               1795265022};  /* after 2 */

/* n - 1 = *d * 2**s with *d odd; returns s. */
static inline int ac_split_pow2(uint64_t n_minus_1, uint64_t *d) {
    int s = 0;
    while (!(n_minus_1 & 1)) {
        n_minus_1 >>= 1;
        s++;
    }
    *d = n_minus_1;
    return s;
}

/* The bases after 2, for odd n > 3 that passed base 2. */
static inline int ac_miller_rabin64_rest(const ac_mont64 *m, uint64_t d, int s) {
    uint64_t n = m->n, a, a_m[AC_SPRP_LANES];
    const uint64_t *bases;
    int i, count, lanes = 0;
    if (n < AC_MR_SMALL_LIMIT) {
        bases = AC_MR_SMALL_BASES;
        count = 2;
    } else {
        bases = AC_MR_LARGE_BASES;
        count = 6;
    }
    for (i = 0; i < count; i++) {
        /* A base that is a multiple of n says nothing (a**d == 0): skip it, as the
         * base sets' proofs do. A base above n counts as base mod n. */
        a = bases[i] < n ? bases[i] : bases[i] % n;
        if (a == 0) continue;
        a_m[lanes++] = ac_mont64_from(m, a);
        if (lanes == AC_SPRP_LANES) {
            if (!ac_sprp_lanes(m, a_m, lanes, d, s)) return 0;
            lanes = 0;
        }
    }
    return lanes == 0 || ac_sprp_lanes(m, a_m, lanes, d, s);
}

/* Deterministic Miller-Rabin for odd n > 3. */
static inline int ac_miller_rabin64(uint64_t n) {
    ac_mont64 m = ac_mont64_init(n);
    uint64_t d;
    int s = ac_split_pow2(n - 1, &d);
    return ac_sprp2(&m, d, s) && ac_miller_rabin64_rest(&m, d, s);
}

/* Divisibility by the odd primes below 256 without division: n is a multiple of odd p
 * iff n * p**-1 mod 2**64 <= (2**64 - 1) / p (Granlund & Montgomery 1994, sec. 9). */
typedef struct {
    uint64_t inverse;  /* p**-1 mod 2**64 */
    uint64_t limit;    /* (2**64 - 1) / p */
    uint64_t p;
} ac_trial_divisor;

#define AC_TRIAL_COUNT 53
static const ac_trial_divisor AC_TRIAL_DIVISORS[AC_TRIAL_COUNT] = {
    {0xAAAAAAAAAAAAAAABULL, 0x5555555555555555ULL,   3},
    {0xCCCCCCCCCCCCCCCDULL, 0x3333333333333333ULL,   5},
    {0x6DB6DB6DB6DB6DB7ULL, 0x2492492492492492ULL,   7},
    {0x2E8BA2E8BA2E8BA3ULL, 0x1745D1745D1745D1ULL,  11},
    {0x4EC4EC4EC4EC4EC5ULL, 0x13B13B13B13B13B1ULL,  13},
    {0xF0F0F0F0F0F0F0F1ULL, 0x0F0F0F0F0F0F0F0FULL,  17},
    {0x86BCA1AF286BCA1BULL, 0x0D79435E50D79435ULL,  19},
    {0xD37A6F4DE9BD37A7ULL, 0x0B21642C8590B216ULL,  23},
    {0x34F72C234F72C235ULL, 0x08D3DCB08D3DCB08ULL,  29},
    {0xEF7BDEF7BDEF7BDFULL, 0x0842108421084210ULL,  31},
    {0x14C1BACF914C1BADULL, 0x06EB3E45306EB3E4ULL,  37},
    {0x8F9C18F9C18F9C19ULL, 0x063E7063E7063E70ULL,  41},
    {0x82FA0BE82FA0BE83ULL, 0x05F417D05F417D05ULL,  43},
    {0x51B3BEA3677D46CFULL, 0x0572620AE4C415C9ULL,  47},
    {0x21CFB2B78C13521DULL, 0x04D4873ECADE304DULL,  53},
    {0xCBEEA4E1A08AD8F3ULL, 0x0456C797DD49C341ULL,  59},
    {0x4FBCDA3AC10C9715ULL, 0x04325C53EF368EB0ULL,  61},
    {0xF0B7672A07A44C6BULL, 0x03D226357E16ECE5ULL,  67},
    {0x193D4BB7E327A977ULL, 0x039B0AD12073615AULL,  71},
    {0x7E3F1F8FC7E3F1F9ULL, 0x0381C0E070381C0EULL,  73},
    {0x9B8B577E613716AFULL, 0x033D91D2A2067B23ULL,  79},
    {0xA3784A062B2E43DBULL, 0x03159721ED7E7534ULL,  83},
    {0xF47E8FD1FA3F47E9ULL, 0x02E05C0B81702E05ULL,  89},
    {0xA3A0FD5C5F02A3A1ULL, 0x02A3A0FD5C5F02A3ULL,  97},
    {0x3A4C0A237C32B16DULL, 0x0288DF0CAC5B3F5DULL, 101},
    {0xDAB7EC1DD3431B57ULL, 0x027C45979C95204FULL, 103},
    {0x77A04C8F8D28AC43ULL, 0x02647C69456217ECULL, 107},
    {0xA6C0964FDA6C0965ULL, 0x02593F69B02593F6ULL, 109},
    {0x90FDBC090FDBC091ULL, 0x0243F6F0243F6F02ULL, 113},
    {0x7EFDFBF7EFDFBF7FULL, 0x0204081020408102ULL, 127},
    {0x03E88CB3C9484E2BULL, 0x01F44659E4A42715ULL, 131},
    {0xE21A291C077975B9ULL, 0x01DE5D6E3F8868A4ULL, 137},
    {0x3AEF6CA970586723ULL, 0x01D77B654B82C339ULL, 139},
    {0xDF5B0F768CE2CABDULL, 0x01B7D6C3DDA338B2ULL, 149},
    {0x6FE4DFC9BF937F27ULL, 0x01B2036406C80D90ULL, 151},
    {0x5B4FE5E92C0685B5ULL, 0x01A16D3F97A4B01AULL, 157},
    {0x1F693A1C451AB30BULL, 0x01920FB49D0E228DULL, 163},
    {0x8D07AA27DB35A717ULL, 0x01886E5F0ABB0499ULL, 167},
    {0x882383B30D516325ULL, 0x017AD2208E0ECC35ULL, 173},
    {0xED6866F8D962AE7BULL, 0x016E1F76B4337C6CULL, 179},
    {0x3454DCA410F8ED9DULL, 0x016A13CD15372904ULL, 181},
    {0x1D7CA632EE936F3FULL, 0x01571ED3C506B39AULL, 191},
    {0x70BF015390948F41ULL, 0x015390948F40FEACULL, 193},
    {0xC96BDB9D3D137E0DULL, 0x014CAB88725AF6E7ULL, 197},
    {0x2697CC8AEF46C0F7ULL, 0x0149539E3B2D066EULL, 199},
    {0xC0E8F2A76E68575BULL, 0x013698DF3DE07479ULL, 211},
    {0x687763DFDB43BB1FULL, 0x0125E22708092F11ULL, 223},
    {0x1B10EA929BA144CBULL, 0x0120B470C67C0D88ULL, 227},
    {0x1D10C4C0478BBCEDULL, 0x011E2EF3B3FB8744ULL, 229},
    {0x63FB9AEB1FDCD759ULL, 0x0119453808CA29C0ULL, 233},
    {0x64AFAA4F437B2E0FULL, 0x0112358E75D30336ULL, 239},
    {0xF010FEF010FEF011ULL, 0x010FEF010FEF010FULL, 241},
    {0x28CBFBEB9A020A33ULL, 0x0105197F7D734041ULL, 251},
};
/* Below the square of the next prime (257) a value with no factor in the table is prime. */
#define AC_TRIAL_PROVES_BELOW (257ULL * 257ULL)

/* 1 if n is prime, 0 if not, -1 if Miller-Rabin must decide (odd n > 257**2). */
static inline int ac_trial_verdict64(uint64_t n) {
    int i;
    if (!(n & 1)) return n == 2;
    if (n < 3) return 0;  /* 1 */
    for (i = 0; i < AC_TRIAL_COUNT; i++) {
        if (n * AC_TRIAL_DIVISORS[i].inverse <= AC_TRIAL_DIVISORS[i].limit)
            return n == AC_TRIAL_DIVISORS[i].p;
    }
    return n < AC_TRIAL_PROVES_BELOW ? 1 : -1;
}

/* 1 if n is prime, else 0; exact for every 64-bit n. */
static inline int ac_is_prime64(uint64_t n) {
    int verdict = ac_trial_verdict64(n);
    return verdict >= 0 ? verdict : ac_miller_rabin64(n);
}

/* Base 2 for several moduli in lockstep (see ac_sprp_lanes): lane j raises 2 to d[j]
 * mod m[j].n. A lane whose d has fewer bits squares 1 (its Montgomery one) until its
 * top bit comes, so all lanes share one loop. ok[j]: the verdict. */
#define AC_BASE2_LANES 4
static inline void ac_sprp2_lanes(const ac_mont64 *m, const uint64_t *d, const int *s,
                                  int count, int *ok) {
    uint64_t x[AC_BASE2_LANES], all_bits = 0;
    int bit = 63, j;
    for (j = 0; j < count; j++) {
        x[j] = m[j].one;
        all_bits |= d[j];
    }
    while (!((all_bits >> bit) & 1)) bit--;
    for (; bit >= 0; bit--) {
        for (j = 0; j < count; j++) {
            x[j] = ac_mont64_mul(&m[j], x[j], x[j]);
            x[j] = ac_addmod64(x[j], x[j] & (0 - ((d[j] >> bit) & 1)), m[j].n);
        }
    }
    for (j = 0; j < count; j++) ok[j] = ac_sprp_finish(&m[j], x[j], s[j]);
}

/* out[i] = ac_is_prime64(values[i]) for i < count. The values that trial division
 * leaves undecided wait in a queue of AC_BASE2_LANES, which then meets base 2 together;
 * the survivors (nearly all primes) go on to the other bases one value at a time.
 * A verdict may be written after later values are read: out must not overlap values
 * (is_prime_array's validation makes sure). */
static inline void ac_is_prime64_array(const uint64_t *values, uint8_t *out,
                                       int64_t count) {
    ac_mont64 m[AC_BASE2_LANES];
    uint64_t d[AC_BASE2_LANES];
    int s[AC_BASE2_LANES], ok[AC_BASE2_LANES];
    int64_t where[AC_BASE2_LANES], i = 0;
    int queued, j, verdict;
    while (i < count) {
        queued = 0;
        for (; i < count && queued < AC_BASE2_LANES; i++) {
            verdict = ac_trial_verdict64(values[i]);
            if (verdict >= 0) {
                out[i] = (uint8_t)verdict;
            } else {
                m[queued] = ac_mont64_init(values[i]);
                s[queued] = ac_split_pow2(values[i] - 1, &d[queued]);
                where[queued++] = i;
            }
        }
        if (queued == 0) break;
        ac_sprp2_lanes(m, d, s, queued, ok);
        for (j = 0; j < queued; j++)
            out[where[j]] = (uint8_t)(ok[j] && ac_miller_rabin64_rest(&m[j], d[j], s[j]));
    }
}

#endif
