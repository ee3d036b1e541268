/* Ends the instruction-set region begun by target_push.h. */
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#undef CRNN_PRAGMA
#undef CRNN_PRAGMA_
#undef CRNN_TARGET
