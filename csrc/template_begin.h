/*
 * Opens one instantiation of the kernel template (kernels_instantiate.h,
 * once per element type): the shorthands every template file uses, for the
 * element type REAL and the vector width VBYTES of the including build.
 * template_end.h removes them, so no template file has to.
 */
#define VL ((int)(VBYTES / sizeof(REAL))) /* lanes per vector */
#define NR (2 * VL)                       /* columns of the register tile */
#define KC 256                            /* depth of one packed block */
#define MC (MR * 10)                      /* rows of A sharing a packed B panel */
#define NC 2048                           /* columns of one packed B block */
#define V  NAME(vec)                      /* a vector of REAL (simd.inc) */
#define VU NAME(uvec)                     /* the same, unaligned */
#define IV NAME(ivec)                     /* integer lanes of REAL's width */
