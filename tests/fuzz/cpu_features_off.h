/*
 * Forced into module/engine/cpu/dot.c for the fuzz build only: clang 14
 * does not know every feature name gcc accepts in __builtin_cpu_supports()
 * ("f16c"), and the fuzzers are after the loader and tokenizer, not the
 * SIMD kernels, so the portable kernels are picked.
 */
#define __builtin_cpu_supports(feature)  0
