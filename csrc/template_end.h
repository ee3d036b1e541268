/* Closes one instantiation of the kernel template (see template_begin.h). */
#undef VL
#undef NR
#undef KC
#undef MC
#undef NC
#undef V
#undef VU
#undef IV
