/* Compile the functions that follow for the instruction set CRNN_TARGET
 * (a GCC/Clang target string); target_pop.h ends the region. System headers
 * must be included before this. */
#if defined(__clang__)
#define CRNN_PRAGMA_(x) _Pragma(#x)
#define CRNN_PRAGMA(x)  CRNN_PRAGMA_(x)
CRNN_PRAGMA(clang attribute push(__attribute__((target(CRNN_TARGET))), apply_to = function))
#else
#pragma GCC push_options
#define CRNN_PRAGMA_(x) _Pragma(#x)
#define CRNN_PRAGMA(x)  CRNN_PRAGMA_(x)
CRNN_PRAGMA(GCC target(CRNN_TARGET))
#endif
