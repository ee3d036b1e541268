/* The portable build of the kernels: the compiler's baseline instruction
 * set (SSE2 on x86-64), used where no wider one is available or allowed. */
#include "internal.h"

int crnn_isa_generic_supported(void) { return 1; }

#define VBYTES     16
#define MR         6
#define ISA_SUFFIX generic
#include "kernels_instantiate.h"
