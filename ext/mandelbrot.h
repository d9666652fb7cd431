/* Mandelbrot rows with several pixels in flight, and a choice of instruction set at
 * run time.
 *
 * The straightforward escape loop is latency-bound: each iteration waits for the
 * previous one's multiplies. Here AC_LANES neighbouring pixels of a row iterate
 * together; they are independent, so the compiler vectorizes the lane loop (2 doubles
 * per SSE2 register, 4 per AVX2, 8 per AVX-512) and the CPU overlaps their latencies.
 *
 * Results are bit-identical to the scalar loop (and to the pure-Python twin): every
 * lane does exactly the scalar operations in the same order (the build forbids FMA
 * contraction), a lane's count stops at its escape, and the lanes that escaped keep
 * iterating harmlessly (their values are never read again) until all have escaped or
 * max_iter is reached.
 *
 * One body, compiled several times: ac_mandelbrot_rows_<isa> for the baseline x86-64
 * (SSE2), AVX2 and AVX-512 where GCC or Clang can target them, chosen at run time by
 * what the CPU supports (ac_mandelbrot_best_isa). Elsewhere only the portable
 * baseline exists (define AC_NO_DISPATCH to build that portable variant anywhere).
 * One wheel thus serves every machine.
 */
#ifndef ALLCORES_MANDELBROT_H
#define ALLCORES_MANDELBROT_H

#include <stdint.h>
#include <string.h>

enum ac_isa { AC_ISA_SCALAR = 0, AC_ISA_BASELINE = 1, AC_ISA_AVX2 = 2, AC_ISA_AVX512 = 3 };

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(AC_NO_DISPATCH)
#define AC_HAVE_X86_DISPATCH 1
#define AC_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define AC_HAVE_X86_DISPATCH 0
#define AC_ALWAYS_INLINE static inline
#endif

/* The straightforward loop: one pixel at a time. */
static void ac_mandelbrot_rows_scalar(uint32_t *out, int64_t rows, int64_t width,
                                      int64_t first_row, int64_t height, uint32_t max_iter,
                                      double xmin, double xmax, double ymin, double ymax) {
    double dx = xmax - xmin, dy = ymax - ymin;
    for (int64_t r = 0; r < rows; r++) {
        double ci = ymin + ((double)(first_row + r) * dy) / (double)height;
        for (int64_t x = 0; x < width; x++) {
            double cr = xmin + ((double)x * dx) / (double)width;
            double zr = 0.0, zi = 0.0, t;
            uint32_t n = 0;
            while (n < max_iter) {
                t = zr * zr - zi * zi + cr;
                zi = 2.0 * zr * zi + ci;
                zr = t;
                if (zr * zr + zi * zi > 4.0) break;
                n++;
            }
            out[r * width + x] = n;
        }
    }
}

/* AC_LANES pixels starting at column x0 of a row (lanes past the row's end are computed
 * on a duplicate of the last pixel and not stored). Two spellings of the same
 * arithmetic, because compilers vectorize them differently well (measured on GCC 12,
 * 600x400 px, 256 iterations, vs the scalar loop): escape masks as doubles suit SSE2
 * (2.8x; as 64-bit integers only 1.5x), masks as 64-bit integers suit AVX2 and
 * AVX-512 (5.5x and 6.5x; as doubles 4.1x and 4.5x). 16 lanes beat 4, 8 and 32. */
#define AC_LANES 16

#define AC_LANES_PROLOGUE                                                                \
    double cr[AC_LANES], zr[AC_LANES], zi[AC_LANES];                                     \
    int lane;                                                                            \
    for (lane = 0; lane < AC_LANES; lane++) {                                            \
        int64_t x = x0 + lane < width ? x0 + lane : width - 1;                           \
        cr[lane] = xmin + ((double)x * dx) / (double)width;                              \
        zr[lane] = 0.0;                                                                  \
        zi[lane] = 0.0;                                                                  \
    }

/* One iteration of one lane: exactly the scalar loop's operations, in its order. */
#define AC_LANE_STEP(t, new_zi)                                                          \
    double t = zr[lane] * zr[lane] - zi[lane] * zi[lane] + cr[lane];                     \
    double new_zi = 2.0 * zr[lane] * zi[lane] + ci;                                      \
    zr[lane] = t;                                                                        \
    zi[lane] = new_zi;

AC_ALWAYS_INLINE void ac_lanes_double_masks(uint32_t *row_out, int64_t x0, int64_t width,
                                            double ci, uint32_t max_iter, double xmin,
                                            double dx) {
    double active[AC_LANES], count[AC_LANES];  /* counts < 2**32 are exact as doubles */
    AC_LANES_PROLOGUE
    for (lane = 0; lane < AC_LANES; lane++) {
        active[lane] = 1.0;
        count[lane] = 0.0;
    }
    for (uint32_t it = 0; it < max_iter; it++) {
        double any = 0.0;
        for (lane = 0; lane < AC_LANES; lane++) {
            AC_LANE_STEP(t, new_zi)
            /* The scalar test, |z|^2 > 4, stops the lane for good. */
            active[lane] = (t * t + new_zi * new_zi > 4.0) ? 0.0 : active[lane];
            count[lane] += active[lane];
            any += active[lane];
        }
        if (any == 0.0) break;
    }
    for (lane = 0; lane < AC_LANES && x0 + lane < width; lane++) {
        row_out[x0 + lane] = (uint32_t)count[lane];
    }
}

AC_ALWAYS_INLINE void ac_lanes_integer_masks(uint32_t *row_out, int64_t x0, int64_t width,
                                             double ci, uint32_t max_iter, double xmin,
                                             double dx) {
    uint64_t active[AC_LANES], count[AC_LANES];
    AC_LANES_PROLOGUE
    for (lane = 0; lane < AC_LANES; lane++) {
        active[lane] = ~(uint64_t)0;
        count[lane] = 0;
    }
    for (uint32_t it = 0; it < max_iter; it++) {
        uint64_t any = 0;
        for (lane = 0; lane < AC_LANES; lane++) {
            AC_LANE_STEP(t, new_zi)
            active[lane] &= -(uint64_t)!(t * t + new_zi * new_zi > 4.0);
            count[lane] += active[lane] & 1;
            any |= active[lane];
        }
        if (!any) break;
    }
    for (lane = 0; lane < AC_LANES && x0 + lane < width; lane++) {
        row_out[x0 + lane] = (uint32_t)count[lane];
    }
}

#define AC_MANDELBROT_VARIANT(name, lanes_function, attributes)                          \
    static attributes void name(uint32_t *out, int64_t rows, int64_t width,             \
                                int64_t first_row, int64_t height, uint32_t max_iter,   \
                                double xmin, double xmax, double ymin, double ymax) {   \
        double dx = xmax - xmin, dy = ymax - ymin;                                      \
        for (int64_t r = 0; r < rows; r++) {                                            \
            double ci = ymin + ((double)(first_row + r) * dy) / (double)height;         \
            for (int64_t x0 = 0; x0 < width; x0 += AC_LANES) {                          \
                lanes_function(out + r * width, x0, width, ci, max_iter, xmin, dx);     \
            }                                                                           \
        }                                                                               \
    }

AC_MANDELBROT_VARIANT(ac_mandelbrot_rows_baseline, ac_lanes_double_masks, )
#if AC_HAVE_X86_DISPATCH
AC_MANDELBROT_VARIANT(ac_mandelbrot_rows_avx2, ac_lanes_integer_masks,
                      __attribute__((target("avx2"))))
AC_MANDELBROT_VARIANT(ac_mandelbrot_rows_avx512, ac_lanes_integer_masks,
                      __attribute__((target("avx512f"))))
#endif

/* Whether this build and this CPU can run an instruction set. */
static int ac_isa_available(int isa) {
    switch (isa) {
    case AC_ISA_SCALAR:
    case AC_ISA_BASELINE:
        return 1;
#if AC_HAVE_X86_DISPATCH
    case AC_ISA_AVX2:
        return __builtin_cpu_supports("avx2");
    case AC_ISA_AVX512:
        /* F for mandelbrot; DQ (64-bit multiplies and conversions) and VL for
         * monte_carlo.h. Every AVX-512 CPU but the Xeon Phi has all three. */
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl");
#endif
    default:
        return 0;
    }
}

static int ac_mandelbrot_best_isa(void) {
    if (ac_isa_available(AC_ISA_AVX512)) return AC_ISA_AVX512;
    if (ac_isa_available(AC_ISA_AVX2)) return AC_ISA_AVX2;
    return AC_ISA_BASELINE;
}

/* Run the variant for `isa` (which the caller checked with ac_isa_available). */
static void ac_mandelbrot_rows_isa(int isa, uint32_t *out, int64_t rows, int64_t width,
                                   int64_t first_row, int64_t height, uint32_t max_iter,
                                   double xmin, double xmax, double ymin, double ymax) {
    switch (isa) {
    case AC_ISA_SCALAR:
        ac_mandelbrot_rows_scalar(out, rows, width, first_row, height, max_iter, xmin, xmax,
                                  ymin, ymax);
        return;
#if AC_HAVE_X86_DISPATCH
    case AC_ISA_AVX2:
        ac_mandelbrot_rows_avx2(out, rows, width, first_row, height, max_iter, xmin, xmax,
                                ymin, ymax);
        return;
    case AC_ISA_AVX512:
        ac_mandelbrot_rows_avx512(out, rows, width, first_row, height, max_iter, xmin, xmax,
                                  ymin, ymax);
        return;
#endif
    default:
        ac_mandelbrot_rows_baseline(out, rows, width, first_row, height, max_iter, xmin,
                                    xmax, ymin, ymax);
    }
}

#endif
