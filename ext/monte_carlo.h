/* Monte Carlo pi with several samples in flight, and a choice of instruction set at run
 * time (the same choice as mandelbrot.h: ac_isa_available, AC_ISA_*).
 *
 * Sample i is the point (uniform(seed, 2i), uniform(seed, 2i + 1)) of SplitMix64 (see
 * arith.h); it hits when u*u + v*v < 1.0. The one-sample loop is bound by the
 * throughput of its scalar work: four 64-bit multiplies and two int-to-double
 * conversions per sample. Here several consecutive samples run together: each lane keeps
 * its own SplitMix64 state and steps it by the lane count, so the lanes are independent
 * and the compiler vectorizes the lane loop (64-bit multiplies become vpmullq under
 * AVX-512DQ, and three 32-bit vpmuludq plus shifts and adds under AVX2), doing several
 * samples per instruction. SSE2's two lanes gain nothing over scalar multiplies.
 *
 * Counts are bit-identical to the scalar loop (and to the pure-Python twin): the state
 * arithmetic is the same modulo 2**64, and each uniform is the same double,
 * (z >> 11) * 2**-53 (under AVX2 computed without an int64-to-double conversion,
 * which only AVX-512DQ vectorizes, but exactly: see ac_mc_unit_bits); the hit test is
 * the scalar expression, in its order, with FMA contraction forbidden by the build.
 */
#ifndef ALLCORES_MONTE_CARLO_H
#define ALLCORES_MONTE_CARLO_H

#include <stdint.h>
#include <string.h>

#include "arith.h"
#include "mandelbrot.h" /* enum ac_isa, ac_isa_available, AC_ALWAYS_INLINE */

#define AC_MC_GAMMA 0x9E3779B97F4A7C15ull

/* The straightforward loop: one sample at a time (the yardstick). */
static uint64_t ac_monte_carlo_hits_scalar(uint64_t seed, uint64_t start, uint64_t stop) {
    uint64_t hits = 0;
    for (uint64_t i = start; i < stop; i++) {
        double u = ac_uniform(seed, 2 * i);
        double v = ac_uniform(seed, 2 * i + 1);
        hits += u * u + v * v < 1.0;
    }
    return hits;
}

AC_ALWAYS_INLINE double ac_mc_bits_to_double(uint64_t bits) {
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* Two spellings of a uniform, (z >> 11) * 2**-53, giving the same double as ac_uniform.
 *
 * By conversion: what ac_uniform writes (as signed: z >> 11 < 2**53 converts exactly
 * either way, and the signed conversion is the one with instructions). AVX-512DQ
 * converts 64-bit integers to doubles in vectors (vcvtqq2pd); SSE2 and AVX2 cannot, and
 * the compiler goes scalar for it. */
AC_ALWAYS_INLINE double ac_mc_unit_convert(uint64_t z) {
    return (double)(int64_t)(z >> 11) * 0x1.0p-53;
}

/* By bits, with integer and double operations every vector unit has. With
 * m = z >> 11 = 2h + l (h = z >> 12, l its low bit): the double with exponent 0 and
 * mantissa h is 1 + h * 2**-52; subtracting 1.0 is exact (Sterbenz), and adding
 * l * 2**-53 is exact because the sum, m * 2**-53 with m < 2**53, is representable. */
AC_ALWAYS_INLINE double ac_mc_unit_bits(uint64_t z) {
    double high = ac_mc_bits_to_double(0x3FF0000000000000ull | (z >> 12)) - 1.0;
    double low = ac_mc_bits_to_double(0x3CA0000000000000ull & (0 - ((z >> 11) & 1)));
    return high + low;
}

/* `lanes` consecutive samples in flight; the lane loop is what the compiler vectorizes.
 * Lane j starts at sample start + j, whose x is output 2i of the stream: state
 * seed + (2i + 1) * gamma (all modulo 2**64, as in ac_uniform); each block of samples
 * steps every state by 2 * lanes * gamma. The last (stop - start) % lanes samples run
 * one at a time. */
#define AC_MC_MAX_LANES 16
#define AC_MC_LANES_BODY(lanes, unit)                                                    \
    uint64_t state[AC_MC_MAX_LANES], hits[AC_MC_MAX_LANES], total = 0;                   \
    uint64_t blocks = (stop - start) / (lanes), b;                                       \
    const uint64_t stride = 2 * (uint64_t)(lanes) * AC_MC_GAMMA;                         \
    int lane;                                                                            \
    for (lane = 0; lane < (lanes); lane++) {                                             \
        state[lane] = seed + (2 * (start + (uint64_t)lane) + 1) * AC_MC_GAMMA;           \
        hits[lane] = 0;                                                                  \
    }                                                                                    \
    for (b = 0; b < blocks; b++) {                                                       \
        for (lane = 0; lane < (lanes); lane++) {                                         \
            double u = unit(ac_mix64(state[lane]));                                      \
            double v = unit(ac_mix64(state[lane] + AC_MC_GAMMA));                        \
            hits[lane] += u * u + v * v < 1.0;                                           \
            state[lane] += stride;                                                       \
        }                                                                                \
    }                                                                                    \
    for (lane = 0; lane < (lanes); lane++) total += hits[lane];                          \
    return total + ac_monte_carlo_hits_scalar(seed, start + blocks * (lanes), stop);

/* Lane counts and spellings, measured with GCC 12 on a Xeon with AVX-512 (2 shared
 * cores; ns per sample, thread CPU time, best of 5 over 5e7 samples; scalar loop 3.07):
 *   baseline (SSE2): 4 lanes by conversion 3.02, 8 lanes 3.39, by bits 4.1-4.2: the
 *     three-pmuludq 64-bit multiply on 2 lanes does not beat scalar imul; no gain;
 *   AVX2: 8 lanes by bits 2.27 (hand-written intrinsics, 2 x 4 lanes: 2.20; by
 *     conversion 2.44-2.59);
 *   AVX-512DQ: 8 lanes by conversion 0.90 (hand-written 512-bit intrinsics, 2 x 8
 *     lanes: 0.87; 16 or 32 lanes: 0.89-0.90; by bits 1.17-1.19): 3.4x the scalar loop. */
#define AC_MONTE_CARLO_VARIANT(name, lanes, unit, attributes)                           \
    static attributes uint64_t name(uint64_t seed, uint64_t start, uint64_t stop) {      \
        AC_MC_LANES_BODY(lanes, unit)                                                    \
    }

AC_MONTE_CARLO_VARIANT(ac_monte_carlo_hits_baseline, 4, ac_mc_unit_convert, )
#if AC_HAVE_X86_DISPATCH
AC_MONTE_CARLO_VARIANT(ac_monte_carlo_hits_avx2, 8, ac_mc_unit_bits,
                       __attribute__((target("avx2"))))
AC_MONTE_CARLO_VARIANT(ac_monte_carlo_hits_avx512, 8, ac_mc_unit_convert,
                       __attribute__((target("avx512f,avx512dq,avx512vl"))))
#endif

/* Run the variant for `isa` (which the caller checked with ac_isa_available). */
static uint64_t ac_monte_carlo_hits_isa(int isa, uint64_t seed, uint64_t start,
                                        uint64_t stop) {
    switch (isa) {
    case AC_ISA_SCALAR:
        return ac_monte_carlo_hits_scalar(seed, start, stop);
#if AC_HAVE_X86_DISPATCH
    case AC_ISA_AVX2:
        return ac_monte_carlo_hits_avx2(seed, start, stop);
    case AC_ISA_AVX512:
        return ac_monte_carlo_hits_avx512(seed, start, stop);
#endif
    default:
        return ac_monte_carlo_hits_baseline(seed, start, stop);
    }
}

#endif
