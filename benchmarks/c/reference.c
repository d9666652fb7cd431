/* Plain-C reference implementations of allcores' five kernels, for the benchmark.
 *
 * Straightforward C99 (plus `unsigned __int128` for the 64-bit mulmod, as the library
 * uses), no intrinsics, no OpenMP, no tricks: the SAME algorithms as ext/native.pyx, so
 * that "native vs C" compares compilers and code generation, not algorithms.
 * Built by benchmarks/c_reference.py with the library's own flags:
 *     cc -O3 -ffp-contract=off -fPIC -shared
 * Every exported function takes plain C types; the Python side checks the arguments.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32)
#define REF_EXPORT __declspec(dllexport)
#else
#define REF_EXPORT __attribute__((visibility("default")))
#endif

/* ------------------------------------------------------------------------------------ */
/* mandelbrot: the plain scalar escape loop, one pixel at a time.                      */

REF_EXPORT void ref_mandelbrot_rows(uint32_t *out, int64_t rows, int64_t width,
                                    int64_t first_row, int64_t height, uint32_t max_iter,
                                    double xmin, double xmax, double ymin, double ymax) {
    double dx = xmax - xmin, dy = ymax - ymin;
    for (int64_t r = 0; r < rows; r++) {
        double ci = ymin + ((double)(first_row + r) * dy) / (double)height;
        uint32_t *row = out + r * width;
        for (int64_t x = 0; x < width; x++) {
            double cr = xmin + ((double)x * dx) / (double)width;
            double zr = 0.0, zi = 0.0, t;
            uint32_t n = 0;
            while (n < max_iter) {
                t = zr * zr - zi * zi + cr;
                zi = 2.0 * zr * zi + ci;
                zr = t;
                if (zr * zr + zi * zi > 4.0)
                    break;
                n++;
            }
            row[x] = n;
        }
    }
}

/* ------------------------------------------------------------------------------------ */
/* primes: trial division + deterministic Miller-Rabin; segmented odd-only sieve.        */

static const uint64_t TRIAL_PRIMES[12] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
static const uint64_t SMALL_BASES_LIMIT = 4759123141ULL;
static const uint64_t SMALL_BASES[3] = {2, 7, 61};
static const uint64_t LARGE_BASES[7] = {2, 325, 9375, 28178, 450775, 9780504, 1795265022};

__extension__ typedef unsigned __int128 u128;   /* GCC/Clang: the one non-C99 type */

static inline uint64_t mulmod(uint64_t a, uint64_t b, uint64_t m) {
    return (uint64_t)(((u128)a * b) % m);
}

static inline uint64_t powmod(uint64_t base, uint64_t exp, uint64_t m) {
    uint64_t result = 1;
    while (exp) {
        if (exp & 1)
            result = mulmod(result, base, m);
        base = mulmod(base, base, m);
        exp >>= 1;
    }
    return result;
}

/* One Miller-Rabin round for odd n, n - 1 == d * 2**s with d odd, base < n. */
static inline int strong_probable_prime(uint64_t n, uint64_t base, uint64_t d, int s) {
    uint64_t x = powmod(base, d, n);
    if (x == 1 || x == n - 1)
        return 1;
    for (int i = 1; i < s; i++) {
        x = mulmod(x, x, n);
        if (x == n - 1)
            return 1;
    }
    return 0;
}

/* Exact for odd n > 37**2 with no factor <= 37. */
static int miller_rabin(uint64_t n) {
    uint64_t d = n - 1;
    int s = 0;
    while (d % 2 == 0) {
        d /= 2;
        s++;
    }
    if (n < SMALL_BASES_LIMIT) {
        for (int i = 0; i < 3; i++)
            if (!strong_probable_prime(n, SMALL_BASES[i], d, s))
                return 0;
        return 1;
    }
    for (int i = 0; i < 7; i++)
        if (!strong_probable_prime(n, LARGE_BASES[i], d, s))
            return 0;
    return 1;
}

static int is_prime(uint64_t n) {
    if (n < 2)
        return 0;
    for (int i = 0; i < 12; i++)
        if (n % TRIAL_PRIMES[i] == 0)
            return n == TRIAL_PRIMES[i];
    if (n < 37 * 37)
        return 1;
    return miller_rabin(n);
}

REF_EXPORT void ref_is_prime_array(const uint64_t *values, uint8_t *out, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        out[i] = (uint8_t)is_prime(values[i]);
}

/* floor(sqrt(n)) for every 64-bit n, integers only (digit by digit). */
static uint64_t isqrt64(uint64_t n) {
    uint64_t root = 0, bit = (uint64_t)1 << 62;
    while (bit > n)
        bit >>= 2;
    while (bit) {
        if (n >= root + bit) {
            n -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    return root;
}

enum { SEGMENT_LEN = 1 << 18 };               /* odd numbers per segment */
static const uint64_t MIN_BASE = 1u << 16;
static const uint64_t MAX_BASE = 1u << 24;

/* Odd primes <= limit, malloc'd; NULL if out of memory. */
static uint32_t *odd_primes_upto(uint64_t limit, int64_t *count) {
    size_t half = (size_t)(limit / 2) + 1;   /* index i stands for 2*i + 1 */
    uint8_t *composite = malloc(half);
    uint32_t *primes;
    int64_t n = 0;
    if (composite == NULL)
        return NULL;
    memset(composite, 0, half);
    composite[0] = 1;
    for (uint64_t i = 1; (2 * i + 1) * (2 * i + 1) <= limit; i++)
        if (!composite[i])
            for (uint64_t j = (2 * i + 1) * (2 * i + 1) / 2; j < half; j += 2 * i + 1)
                composite[j] = 1;
    for (size_t i = 0; i < half; i++)
        if (!composite[i] && 2 * (uint64_t)i + 1 <= limit)
            n++;
    primes = malloc((n > 0 ? (size_t)n : 1) * sizeof(uint32_t));
    if (primes == NULL) {
        free(composite);
        return NULL;
    }
    n = 0;
    for (size_t i = 0; i < half; i++)
        if (!composite[i] && 2 * (uint64_t)i + 1 <= limit)
            primes[n++] = (uint32_t)(2 * i + 1);
    free(composite);
    *count = n;
    return primes;
}

/* Primes among the odd numbers a, a + 2, ..., b (3 <= a <= b, both odd); -1 if OOM. */
static int64_t count_odd_primes(uint64_t a, uint64_t b) {
    uint64_t width = (b - a) / 2 + 1;
    uint64_t limit = isqrt64(b);
    uint64_t cap = 2 * (width < MAX_BASE / 2 ? width : MAX_BASE / 2);
    if (cap < MIN_BASE)
        cap = MIN_BASE;
    if (limit > cap)
        limit = cap;
    uint64_t mr_from = (limit + 1) * (limit + 1);
    int64_t nprimes = 0, count = 0;
    uint32_t *primes = odd_primes_upto(limit, &nprimes);
    uint64_t *next_index = malloc((nprimes > 0 ? (size_t)nprimes : 1) * sizeof(uint64_t));
    uint8_t *segment = malloc(SEGMENT_LEN);
    if (primes == NULL || next_index == NULL || segment == NULL) {
        free(primes);
        free(next_index);
        free(segment);
        return -1;
    }
    /* next_index[i]: the next odd multiple of primes[i] to cross off, as an index of
       odd numbers counted from the current segment's start. */
    for (int64_t i = 0; i < nprimes; i++) {
        uint64_t p = primes[i];
        if (p * p >= a) {
            next_index[i] = (p * p - a) / 2;
        } else {
            uint64_t delta = (p - a % p) % p;
            if (delta % 2)
                delta += p;
            next_index[i] = delta / 2;
        }
    }
    uint64_t s = a, remaining = width;
    while (remaining) {
        uint64_t seg_len = remaining < SEGMENT_LEN ? remaining : SEGMENT_LEN;
        memset(segment, 0, (size_t)seg_len);
        for (int64_t i = 0; i < nprimes; i++) {
            uint64_t j = next_index[i], p = primes[i];
            while (j < seg_len) {
                segment[j] = 1;
                j += p;
            }
            next_index[i] = j - seg_len;
        }
        for (uint64_t j = 0; j < seg_len; j++) {
            if (!segment[j]) {
                uint64_t n = s + 2 * j;
                if (n < mr_from || miller_rabin(n))
                    count++;
            }
        }
        remaining -= seg_len;
        if (remaining)
            s += 2 * seg_len;
    }
    free(primes);
    free(next_index);
    free(segment);
    return count;
}

/* Primes in the CLOSED range [a, b]; -1 if out of memory. */
REF_EXPORT int64_t ref_count_primes_range(uint64_t a, uint64_t b) {
    int64_t count = 0, odd_count;
    uint64_t lo, hi;
    if (a > b)
        return 0;
    if (a <= 2 && 2 <= b)
        count = 1;
    lo = (a < 3 ? 3 : a) | 1;                 /* a <= 2**64 - 1 is odd: no overflow */
    hi = (b % 2) ? b : b - 1;                 /* b >= a >= 0; b == 0 gives lo > hi */
    if (b == 0 || lo > hi)
        return count;
    odd_count = count_odd_primes(lo, hi);
    return odd_count < 0 ? -1 : count + odd_count;
}

/* ------------------------------------------------------------------------------------ */
/* fannkuch-redux: the Benchmarks Game's algorithm, flips by a plain swap loop.          */

static int count_flips(const uint8_t *perm, int n) {
    uint8_t p[16];
    int first = perm[0], flips = 0;
    memcpy(p, perm, (size_t)n);
    while (first != 0) {
        for (int lo = 0, hi = first; lo < hi; lo++, hi--) {
            uint8_t t = p[lo];
            p[lo] = p[hi];
            p[hi] = t;
        }
        first = p[0];
        flips++;
    }
    return flips;
}

REF_EXPORT void ref_fannkuch_block(int n, int64_t start, int64_t stop, int64_t *checksum,
                                   int *max_flips) {
    uint8_t perm[16], scratch[16];
    int count[16];
    int64_t fact[17];
    int64_t idx = start, index = start, sum = 0;
    int best = 0;
    *checksum = 0;
    *max_flips = 0;
    if (start >= stop || n < 1 || n > 16)
        return;
    fact[0] = 1;
    for (int i = 1; i <= n; i++)
        fact[i] = fact[i - 1] * i;
    for (int i = 0; i < 16; i++) {
        perm[i] = (uint8_t)i;
        count[i] = 0;
    }
    /* The first permutation, from its index in factorial base. */
    for (int i = n - 1; i > 0; i--) {
        int d = (int)(idx / fact[i]);
        count[i] = d;
        idx %= fact[i];
        memcpy(scratch, perm, (size_t)(i + 1));
        for (int k = 0; k <= i; k++)
            perm[k] = k + d <= i ? scratch[k + d] : scratch[k + d - i - 1];
    }
    for (;;) {
        if (perm[0] != 0) {
            int flips = count_flips(perm, n);
            if (flips > best)
                best = flips;
            sum += (index % 2 == 0) ? flips : -flips;
        }
        if (++index == stop)
            break;
        /* Next permutation: rotate the first i + 1 elements left while the counter
           carries. */
        uint8_t first = perm[1];
        perm[1] = perm[0];
        perm[0] = first;
        int i = 1;
        count[i]++;
        while (count[i] > i) {
            count[i] = 0;
            i++;
            first = perm[0];
            for (int k = 0; k < i; k++)
                perm[k] = perm[k + 1];
            perm[i] = first;
            count[i]++;
        }
    }
    *checksum = sum;
    *max_flips = best;
}

/* ------------------------------------------------------------------------------------ */
/* Monte Carlo pi with counter-based SplitMix64.                                         */

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline double uniform(uint64_t seed, uint64_t k) {
    return (double)(mix64(seed + (k + 1) * 0x9E3779B97F4A7C15ULL) >> 11) * 0x1.0p-53;
}

REF_EXPORT uint64_t ref_monte_carlo_hits(uint64_t seed, uint64_t start, uint64_t stop) {
    uint64_t hits = 0;
    for (uint64_t i = start; i < stop; i++) {
        double u = uniform(seed, 2 * i);
        double v = uniform(seed, 2 * i + 1);
        hits += u * u + v * v < 1.0;
    }
    return hits;
}
