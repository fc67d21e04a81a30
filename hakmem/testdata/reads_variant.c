// Input of variant_independence_checker_test: a source that reads a variant
// define, which the checker must refuse.
#if HAKMEM_HARDENED
int hakmem_testdata_hardened = 1;
#else
int hakmem_testdata_hardened = 0;
#endif
