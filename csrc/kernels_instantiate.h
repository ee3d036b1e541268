/*
 * Instantiates kernels.inc for float32 and float64 under the instruction set
 * the including file selected, and fills the kernel table TABLE_NAME.
 * The including file defines VBYTES, MR, ISA_SUFFIX and TABLE_NAME.
 */
#define CRNN_CAT3_(a, b, c) a##_##b##_##c
#define CRNN_CAT3(a, b, c) CRNN_CAT3_(a, b, c)

#define REAL float
#define IREAL int32_t
#define REAL_IS_F32 1
#define NAME(x) CRNN_CAT3(x, f32, ISA_SUFFIX)
#include "kernels.inc"
#include "gated.inc"
#include "jordan.inc"
#undef REAL
#undef IREAL
#undef REAL_IS_F32
#undef NAME

#define REAL double
#define IREAL int64_t
#define REAL_IS_F32 0
#define NAME(x) CRNN_CAT3(x, f64, ISA_SUFFIX)
#include "kernels.inc"
#include "gated.inc"
#include "jordan.inc"
#undef REAL
#undef IREAL
#undef REAL_IS_F32
#undef NAME
