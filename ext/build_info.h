/* How this extension was compiled, for `allcores info`. setup.py defines AC_BUILD_FLAGS
 * with the flags it chose; the compiler names itself. */
#ifndef ALLCORES_BUILD_INFO_H
#define ALLCORES_BUILD_INFO_H

#ifndef AC_BUILD_FLAGS
#define AC_BUILD_FLAGS "unknown"
#endif

#if defined(__clang__)
#define AC_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define AC_COMPILER "gcc " __VERSION__
#elif defined(_MSC_VER)
#define AC_STRINGIFY2(x) #x
#define AC_STRINGIFY(x) AC_STRINGIFY2(x)
#define AC_COMPILER "msvc " AC_STRINGIFY(_MSC_VER)
#else
#define AC_COMPILER "unknown"
#endif

#endif
